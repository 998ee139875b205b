"""Formatting of report tables (Markdown, LaTeX, PDF column fitting) and input validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.report import ReportInputError, ReportOptions, make_report
from bench.report.words import duration as _duration
from bench.report.words import value as _value
from bench.report.document import Table, plain
from bench.report.markdown import table_md
from bench.report.pdf import _glue, inline, tstr
from bench.report.tables import headline_table, significance_table, tex_escape, to_latex


def _head():
    return pd.DataFrame([
        dict(representation="single_phase", model="stst", n_seeds=2, failed_folds=0,
             uf1=0.4, uf1_std=0.05, uf1_ci_lo=0.3, uf1_ci_hi=0.5, uar=0.45, uar_std=0.01, uar_ci_lo=0.35,
             uar_ci_hi=0.55, acc=0.5, acc_std=0.0, acc_ci_lo=0.4, acc_ci_hi=0.6),
        dict(representation="cof[theta1=0.3]", model="stst", n_seeds=2, failed_folds=1,
             uf1=0.6, uf1_std=0.02, uf1_ci_lo=0.5, uf1_ci_hi=0.7, uar=0.45, uar_std=0.03, uar_ci_lo=0.3,
             uar_ci_hi=0.6, acc=0.4, acc_std=0.1, acc_ci_lo=0.3, acc_ci_hi=0.5),
    ])


def test_headline_table_marks_best_and_ties():
    t = headline_table(_head())
    assert t.rows[0][2] == "0.400 ± 0.050 [0.300, 0.500]"
    assert t.rows[1][1] == "stst †"  # incomplete cell flagged
    # UF1: row 1; UAR: tie at 0.450 -> both rows; accuracy: row 0
    assert t.bold == {(1, 2), (0, 3), (1, 3), (0, 4)}
    md = table_md(t)
    assert "| cof[theta1=0.3] | stst † | **0.600 ± 0.020 [0.500, 0.700]** |" in md
    assert md.splitlines()[1] == "|:---|:---|---:|---:|---:|"


def test_latex_escaping_and_bold():
    assert tex_escape("single_phase 50% a&b") == r"single\_phase 50\% a\&b"
    tex = to_latex(headline_table(_head(), caption="x_y"), "headline")
    assert r"\textbf{0.600 $\pm$ 0.020 [0.500, 0.700]}" in tex
    assert r"single\_phase & stst & 0.400 $\pm$ 0.050" in tex
    assert r"stst $^\dagger$" in tex and r"\caption{x\_y}" in tex and r"\label{tab:headline}" in tex
    assert tex.count(r"\\") == 3  # header + 2 rows


def test_significance_table_untested_rows_in_words():
    df = pd.DataFrame([dict(model="m", representation="cof", n_subjects=6, n_nonzero=0, median_diff=0.0,
                            rank_biserial=None, statistic=None, p=None, p_holm=None, status="all_zero",
                            result="not tested: no difference on any of the 6 subjects")])
    t = significance_table(df, "cap.")
    row = t.rows[0]
    assert row[5] == "undefined" and row[6:9] == ["—"] * 3 and row[9].startswith("not tested")
    assert "—: not tested" in t.caption
    assert not any("nan" in c.lower() or "none" in c.lower() for c in row)


def test_value_and_duration_words():
    assert _value(float("nan")) == "not recorded" and _value(None) == "not recorded"
    assert _value({"a": 1, "b": [1, 2]}) == "a=1; b=1, 2" and _value("none") == "none"
    assert _duration(3725) == "1 h 02 min 05 s" and _duration(65) == "1 min 05 s"
    assert _duration(2.25) == "2.2 s" and _duration(None) == "not recorded"


def test_plain_strips_markdown():
    assert plain("**Bold** and `code` and *it*") == "Bold and code and it"


def test_pdf_glue_and_typst_escaping():
    # The PDF is typeset by Typst now (issue 17): the hand layout's wrapping and column fitting
    # (wrap, _fit_columns) are gone, Typst breaks lines and sizes columns. What remains ours: numbers
    # glued to their spread and interval, and user text that never turns into Typst markup.
    assert _glue("0.602 ± 0.030 [0.485, 0.676]") == "0.602\u00a0±\u00a00.030 [0.485,\u00a00.676]"
    assert tstr('a_b#c*d$e\\f"g') == '"a_b#c*d$e\\\\f\\"g"'
    assert inline("**Bold** and `x_1` in cof[theta1=0.3]") == (
        '[#strong([#"Bold"])#" and "#raw("x_1")#" in cof[theta1=0.3]"]')


def test_aux_rows_must_match_labels(tmp_path):
    from tests.helpers.fabricate import fabricate_run

    run = fabricate_run(tmp_path, examples=False)
    aux = dict(np.load(run / "aux.npz"))
    key = next(k for k in aux if k.endswith("/attention"))
    aux[key] = aux[key][:-1]
    np.savez(run / "aux.npz", **aux)
    with pytest.raises(ReportInputError, match=r"aux.npz: .*/attention has \d+ rows but .*/y_true has"):
        make_report(run, tmp_path / "r", ReportOptions(n_boot=10, pdf=False))


def test_options_validation():
    with pytest.raises(ValueError, match="unknown report option"):
        ReportOptions.from_mapping({"n_bot": 10})
    with pytest.raises(ValueError, match="dpi"):
        ReportOptions(dpi=100)
    assert ReportOptions.from_mapping({"n_boot": 5}).n_boot == 5


def test_find_sweeps_theta_grid_and_tied_parameters():
    from bench.report.sections.sweeps import find_sweeps

    # label -> (option, parameters), as load.axis_params reads them from the p_representation* columns
    params = {"single_phase": ("single_phase", {}),
              "cof[theta1=0,theta2=1]": ("cof", {"theta1": 0, "theta2": 1}),
              "cof[theta1=0.5,theta2=0.5]": ("cof", {"theta1": 0.5, "theta2": 0.5}),
              "cof[theta1=1,theta2=0]": ("cof", {"theta1": 1, "theta2": 0}),
              "mm_cof[modulation=threshold,tau=0.1]": ("mm_cof", {"modulation": "threshold", "tau": 0.1}),
              "mm_cof[modulation=threshold,tau=0.3]": ("mm_cof", {"modulation": "threshold", "tau": 0.3}),
              "mm_cof[modulation=soft]": ("mm_cof", {"modulation": "soft"}),
              "x[a=1,b=1]": ("x", {"a": 1, "b": 1}), "x[a=2,b=1]": ("x", {"a": 2, "b": 1}),
              "x[a=1,b=2]": ("x", {"a": 1, "b": 2}), "x[a=2,b=2]": ("x", {"a": 2, "b": 2})}
    labels = list(params)
    sweeps = {(s.name, s.key): s for s in find_sweeps(params, labels)}
    # theta2 = 1 - theta1: one figure over theta1, theta2 noted as tied, a single line
    assert set(sweeps) == {("cof", "theta1"), ("mm_cof", "tau"), ("x", "a"), ("x", "b")}
    cof = sweeps[("cof", "theta1")]
    assert cof.tied == ["theta2"] and set(cof.tags.values()) == {""}
    assert sorted(cof.x.values()) == [0.0, 0.5, 1.0]
    assert set(sweeps[("mm_cof", "tau")].x) == {labels[4], labels[5]}  # 'soft' has no tau
    # independent grid: one line per value of the other parameter
    assert set(sweeps[("x", "a")].tags.values()) == {"b=1", "b=2"}
