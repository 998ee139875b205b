"""The report's "What common shortcuts would have reported" section (bench/report/sections/shortcuts.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.evaluation.audit import AUDIT_COLUMNS, shortcut_scores, summarize
from bench.report import ReportInputError, ReportOptions, load_run, make_report
from bench.report import sections as sections_pkg
from bench.report.build import build_section
from bench.report.context import ReportContext
from bench.report.markdown import render
from bench.report.sections import shortcuts
from tests.helpers.fabricate import fabricate_run

OPTS = ReportOptions(n_boot=20, pdf=False)
TITLE = "## What common shortcuts would have reported"


def add_audit(run, n_epochs=4, rng_seed=1):
    """An audit.parquet for a fabricated run: random earlier epochs, the last epoch = the honest predictions."""
    rng = np.random.default_rng(rng_seed)
    preds = pd.read_parquet(run / "predictions.parquet")
    parts = []
    for e in range(n_epochs):
        y = preds["y_pred"] if e == n_epochs - 1 else np.where(rng.random(len(preds)) < 0.5, preds["y_true"],
                                                               rng.integers(0, 3, len(preds)))
        parts.append(preds.assign(epoch=e, y_pred=np.asarray(y, dtype=np.int64)))
    audit = pd.concat(parts, ignore_index=True)[AUDIT_COLUMNS]
    audit.to_parquet(run / "audit.parquet")
    return audit


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """The section alone, built from a fabricated audited run (a whole report is a slow test's job)."""
    root = tmp_path_factory.mktemp("audited")
    run = fabricate_run(root, aux=False, examples=False)
    add_audit(run)
    out = root / "reports"
    section = render(build_section(shortcuts, ReportContext(load_run(run), out, OPTS)))
    return run, out, section


def test_the_section_comes_right_after_the_significance_tests():
    names = [m.__name__.rsplit(".", 1)[-1] for m in sections_pkg.SECTIONS]
    assert names.index("shortcuts") == names.index("significance") + 1
    assert names.index("shortcuts") > names.index("headline")


@pytest.mark.slow
def test_whole_report_with_the_audit(tmp_path):
    run = fabricate_run(tmp_path, aux=False, examples=False, seeds=(0,))
    add_audit(run)
    md = (make_report(run, tmp_path / "reports", OPTS) / "report.md").read_text()
    assert md.index("## Verdicts against") < md.index(TITLE) < md.index("## Per-subject")
    headline = md[md.index("## Headline"):md.index(TITLE)]
    assert "LEAKY" not in headline and "leaky" not in headline


def test_section_reports_every_cell(audited):
    run, out, section = audited
    assert section.startswith(TITLE)
    assert "**Every number in this section is LEAKY**" in section
    for rep in ("single-phase flow", "COF[theta1=0.3]"):  # display names (bench.report.names)
        for model in ("STSTNet", "FMANet"):
            assert f"| {rep} | {model} | **honest (headline)** |" in section
    assert section.count("| LEAKY: best test epoch per subject |") == 4
    assert section.count("LEAKY: UAR as mean precision") == 4
    assert (out / "figures" / "shortcuts.png").stat().st_size > 10_000
    # nothing leaky reaches the headline or significance tables
    for p in (out / "tables").glob("*.csv"):
        if not p.name.startswith("shortcuts"):
            assert "leaky" not in p.read_text(), p.name


def test_section_numbers_are_the_audit_functions(audited):
    run, out, _ = audited
    data = load_run(run)
    per_seed = shortcut_scores(data.audit, data.predictions, 3, ("dataset", "flow", "representation", "model"))
    want = summarize(per_seed, ("dataset", "flow", "representation", "model"))
    got = pd.read_csv(out / "tables" / "shortcuts.csv")
    assert len(got) == 4
    for _, g in got.iterrows():
        w = want[(want["representation"] == g["representation"]) & (want["model"] == g["model"])].iloc[0]
        for c in ("uf1", "uf1_leaky_subject_best_epoch", "uar_leaky_overall_best_epoch", "uf1_leaky_fold_mean",
                  "uar_leaky_mean_precision", "uf1_leaky_subject_best_epoch_inflation",
                  "uf1_leaky_subject_best_epoch_sd"):
            assert g[c] == pytest.approx(w[c], abs=1e-5), c
        assert g["n_seeds"] == 2
    # the last epoch is the honest one, so shortcut 1 is never below honest per subject; pooled it may go either way
    seeds = pd.read_csv(out / "tables" / "shortcuts_per_seed.csv")
    assert len(seeds) == 8 and set(seeds["seed"]) == {0, 1}


def test_no_audit_no_section(tmp_path):
    run = load_run(fabricate_run(tmp_path, aux=False, examples=False, seeds=(0,)))
    assert run.audit.empty
    assert build_section(shortcuts, ReportContext(run, tmp_path / "r", OPTS)) == []


def test_a_bad_audit_table_names_the_file_and_row(tmp_path):
    run = fabricate_run(tmp_path, aux=False, examples=False, seeds=(0,))
    audit = add_audit(run, n_epochs=2)
    audit.loc[5, "y_pred"] = 7
    audit.to_parquet(run / "audit.parquet")
    with pytest.raises(ReportInputError, match=r"audit.parquet: row 5: column 'y_pred' must be an integer in \[0, 3\)"):
        load_run(run)
    audit.loc[5, "y_pred"] = 0
    audit.iloc[3:].to_parquet(run / "audit.parquet")  # an audit that misses epoch 0 of a fold's clips
    ctx = ReportContext(load_run(run), tmp_path / "r", OPTS)
    with pytest.raises(ReportInputError, match=r"audit.parquet: fold s00: clip s00/s00_c0 has no audit prediction at ep"):
        build_section(shortcuts, ctx)
    audit.drop(columns="epoch").to_parquet(run / "audit.parquet")
    with pytest.raises(ReportInputError, match=r"audit.parquet: missing column\(s\) epoch"):
        load_run(run)


def test_a_family_of_configurations_gets_the_grid_table_figure_and_stacked_protocols(tmp_path):
    """Two representations of one registry name (a θ sweep) make a family of K = 2 per model; with
    inner scores the honest pick is shown; CausalNet's stacked protocol reports one figure per family."""
    from bench.evaluation.grid_audit import INNER_COLUMNS, config_choice, families

    run = fabricate_run(tmp_path, aux=False, examples=False, seeds=(0,))
    add_audit(run)
    res = pd.read_parquet(run / "results.parquet")
    res.assign(representation_name="cof").to_parquet(run / "results.parquet")
    units = res[["study", "dataset", "flow", "representation", "model", "seed", "fold"]].drop_duplicates()
    # inner UF1: the COF configuration always looks better on the training subjects
    inner = units.assign(inner_uf1=np.where(units["representation"] == "single_phase", 0.4, 0.6), inner_uar=0.5,
                         n_val=4, validation="hand-made")[INNER_COLUMNS]
    inner.to_parquet(run / "audit_inner.parquet")
    out = tmp_path / "reports"
    data = load_run(run)
    md = render(build_section(shortcuts, ReportContext(data, out, OPTS)))
    assert "### Configuration chosen on the test folds" in md and "inner validation: hand-made" in md
    assert (out / "figures" / "shortcuts_grid_k.png").stat().st_size > 5_000
    grid = pd.read_csv(out / "tables" / "shortcuts_grid.csv")
    assert sorted(grid["K"]) == [2, 2]
    cell = ("setting", "representation", "model")
    want, _ = config_choice(data.predictions, inner.assign(setting="synthetic"), families(data.results, cell), 3, cell)
    for _, w in want.iterrows():  # the honest pick is the COF configuration's own pooled score
        g = grid[grid["family"] == " × ".join(w["family"])].iloc[0]
        assert g["honest"] == pytest.approx(w["uf1_inner_pick"], abs=1e-6)
        assert g["inflation"] == pytest.approx(w["uf1_leaky_best_of_k"] - w["uf1_inner_pick"], abs=1e-6)
    summ = pd.read_csv(out / "tables" / "shortcuts.csv")
    for model in ("ststnet", "fmanet"):  # honest = the COF cell's own pooled UF1 (inner scores always pick it)
        cof = summ[(summ["representation"] == "cof[theta1=0.3]") & (summ["model"] == model)]["uf1"].iloc[0]
        assert grid[grid["family"] == f"synthetic × cof × {model}"]["honest"].iloc[0] == pytest.approx(cof, abs=1e-5)
    assert md.count("under CausalNet's protocol (best epoch per subject + best of K configurations, K = 2) the family") == 2
    for _, w in want.iterrows():  # each best-of-K line gives its Δ against the honest inner pick too
        name = " × ".join(map(str, w["family"][-2:]))
        line = next(ln for ln in md.splitlines() if "CausalNet's protocol" in ln and f"family {name} " in ln)
        assert f"against the honest inner pick, {w['uf1_inner_pick']:.3f})" in line
    assert "under HTNet's protocol (best epoch per subject) single-phase flow × STSTNet would have reported UF1" in md
    assert "under STSTNet (paper)'s protocol (UAR as mean precision)" in md and "would have reported UAR" in md
    prot = pd.read_csv(out / "tables" / "shortcuts_protocols.csv")
    assert set(prot["protocol"]) == {"HTNet", "CausalNet", "MER-CLIP", "STSTNet (paper)"}
