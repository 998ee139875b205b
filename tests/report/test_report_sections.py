"""The report's section registry, the parameter columns it groups by, and the generic explanations channel."""

from __future__ import annotations

import pkgutil
import re
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import ReportOptions, load_run, make_report
from bench.report import sections as sections_pkg
from bench.report.build import build_section
from bench.report.context import PerSetting, ReportContext
from bench.report.document import Heading, Para
from bench.report.markdown import render
from bench.report.words import slug
from tests.helpers.fabricate import fabricate_run

OPTS = ReportOptions(n_boot=20, pdf=False)
ORDER = ["answer", "intro", "composite", "definitions", "headline", "noise_floor", "breakdown", "significance",
         "shortcuts", "ranks", "per_subject", "confusions", "sweeps", "selected_hparams", "explanations",
         "learning_curves", "examples", "costs", "failures", "reproducibility"]


def _name(module) -> str:
    return module.__name__.rsplit(".", 1)[-1]


def test_registry_is_ordered_and_lists_every_section_module():
    registered = [_name(m) for m in sections_pkg.SECTIONS]
    assert registered == ORDER
    on_disk = {m.name for m in pkgutil.iter_modules(sections_pkg.__path__) if not m.name.startswith("_")}
    assert on_disk == set(registered)  # a section module that is not registered would never be rendered
    # every section builds whole (build) or per setting (PER_SETTING + build_setting; bench.report.build)
    assert all(callable(m.build_setting) if getattr(m, "PER_SETTING", None) else callable(m.build)
               for m in sections_pkg.SECTIONS)


def test_a_section_added_to_the_registry_appears_in_the_report(tmp_path, monkeypatch):
    run = fabricate_run(tmp_path, aux=False, examples=False, seeds=(0,))
    tiny = types.SimpleNamespace(build=lambda ctx: [Heading("Tiny section"),
                                                    Para(f"{len(ctx.reps)} representations.")])
    at = ORDER.index("headline") + 1
    registry = sections_pkg.SECTIONS
    monkeypatch.setattr(sections_pkg, "SECTIONS", [*registry[:at], tiny, *registry[at:]])
    md = (make_report(run, tmp_path / "r", OPTS) / "report.md").read_text()
    assert "## Tiny section\n\n2 representations." in md
    assert md.index("## Headline results") < md.index("## Tiny section") < md.index("## Verdicts against")


def test_sections_do_not_depend_on_each_others_order(tmp_path):
    run = load_run(fabricate_run(tmp_path, examples=False, seeds=(0,)))
    forward = ReportContext(run, tmp_path / "a", OPTS)
    backward = ReportContext(run, tmp_path / "b", OPTS)
    got_f = {_name(m): build_section(m, forward) for m in sections_pkg.SECTIONS}
    got_b = {_name(m): build_section(m, backward) for m in reversed(sections_pkg.SECTIONS)}
    for name in ORDER:
        if name != "reproducibility":  # names its own output directory
            assert got_f[name] == got_b[name], name


def _per_setting_section(headings: bool):
    """A section the framework facets: a lead, one table per setting (its cells), a close that counts them."""
    def build_setting(ctx, f):
        if f.setting.endswith("tvl1") and not headings:
            return []  # a setting with nothing to show gets no block (and no heading)
        cells = f.predictions.groupby(["representation", "model"]).ngroups
        return [Para(f"{f.setting}: {cells} cells, stem {f.stem('tiny')}{f.suffix}.")]

    return types.SimpleNamespace(
        PER_SETTING=PerSetting(headings=headings), lead=lambda ctx: [Heading("Tiny faceted")],
        build_setting=build_setting, close=lambda ctx, faceted: [Para(f"{len(faceted)} faceted blocks.")])


@pytest.mark.parametrize("flows", [("farneback", "tvl1"), ("farneback",)])
def test_a_per_setting_section_appears_once_per_setting(tmp_path, flows):
    ctx = ReportContext(load_run(fabricate_run(tmp_path, flows=flows, seeds=(0,), aux=False, examples=False)),
                        tmp_path / "r", OPTS)
    md = render(build_section(_per_setting_section(headings=True), ctx))
    if len(flows) == 1:  # one setting: no heading, no suffix, the bare stem
        assert md.count("4 cells") == 1 and "###" not in md and "stem tiny." in md
        assert md.endswith("1 faceted blocks.\n")
        return
    for s in ("synthetic · farneback", "synthetic · tvl1"):
        assert md.count(f"### {s}") == 1 and md.count(f"{s}: 4 cells") == 1
        assert f"stem tiny_{slug(s)} — {s}." in md
    assert md.index("## Tiny faceted") < md.index("### synthetic · farneback") < md.index("### synthetic · tvl1")
    assert md.endswith("4 faceted blocks.\n")  # two headings, two paragraphs
    quiet = render(build_section(_per_setting_section(headings=False), ctx))
    assert "###" not in quiet and quiet.count("4 cells") == 1 and quiet.endswith("1 faceted blocks.\n")


def test_a_per_setting_section_whose_lead_is_empty_is_left_out(tmp_path):
    ctx = ReportContext(load_run(fabricate_run(tmp_path, seeds=(0,), aux=False, examples=False)), tmp_path / "r", OPTS)
    section = _per_setting_section(headings=True)
    section.lead = lambda ctx: []
    assert build_section(section, ctx) == []


def test_the_real_sections_facet_every_setting_once(tmp_path):
    run = fabricate_run(tmp_path, flows=("farneback", "tvl1"), aux=False, examples=False)
    out = make_report(run, tmp_path / "r", OPTS)
    md = (out / "report.md").read_text()
    for title in ("Headline results", "Noise floor", "Verdicts against the baseline"):
        part = md.split(f"## {title}")[1].split("\n## ")[0]
        assert [h for h in part.splitlines() if h.startswith("### ")] == \
            ["### synthetic · farneback", "### synthetic · tvl1"], title
    settings = [slug(s) for s in ("synthetic · farneback", "synthetic · tvl1")]
    for stem in ("scores_bars", "noise_floor", "per_subject_acc", "confusion"):
        assert all(md.count(f"figures/{stem}_{s}.png") == 1 for s in settings), stem
    for stem in ("headline", "verdicts", "significance", "mcnemar"):
        assert all((out / "tables" / f"{stem}_{s}.csv").exists() for s in settings), stem


def test_sweeps_and_baseline_come_from_the_parameter_columns(tmp_path):
    # Labels that say nothing: the sweep over theta1 and the baseline are found through p_representation*.
    specs = {"base": ("single_phase", {}), "A": ("cof", {"theta1": 0.3}), "B": ("cof", {"theta1": 0.7})}
    run = fabricate_run(tmp_path, reps=tuple(specs), rep_params=specs, models=("ststnet",), seeds=(0,),
                        aux=False, examples=False)
    out = make_report(run, tmp_path / "r", OPTS)
    md = (out / "report.md").read_text()
    assert (out / "figures" / "sweep_cof_theta1.png").exists() and "θ sweep of cof over θ" in md
    assert "dashed: the baseline base with the same model" in md
    sig = pd.read_csv(out / "tables" / "significance.csv")
    assert set(sig["baseline"]) == {"base"} and set(sig["representation"]) == {"A", "B"}


def test_settings_are_derived_without_rewriting_the_dataset_column(tmp_path):
    run = load_run(fabricate_run(tmp_path, flows=("farneback", "tvl1"), seeds=(0,), examples=False))
    assert set(run.predictions["dataset"]) == {"synthetic"} and set(run.results["dataset"]) == {"synthetic"}
    assert set(run.predictions["setting"]) == {"synthetic · farneback", "synthetic · tvl1"}


def _add_aux(run: Path, name: str, make) -> None:
    """Add ``<cell_hash>/<name>`` for every cell that already has aux arrays."""
    aux = dict(np.load(run / "aux.npz"))
    for key in [k for k in aux if k.endswith("/y_true")]:
        cell = key.rpartition("/")[0]
        aux[f"{cell}/{name}"] = make(len(aux[key]))
    np.savez(run / "aux.npz", **aux)


def test_explanations_draw_any_aux_name_by_its_shape(tmp_path):
    run = fabricate_run(tmp_path, examples=False, seeds=(0,))
    rng = np.random.default_rng(1)
    _add_aux(run, "foo", lambda n: rng.normal(size=(n, 3)))  # a vector output no model has today
    _add_aux(run, "bar", lambda n: rng.random((n, 4, 5)))  # a map
    _add_aux(run, "baz", lambda n: rng.random((n, 2, 3, 3)))  # no figure for 3-D per-sample arrays
    out = make_report(run, tmp_path / "r", OPTS)
    md = (out / "report.md").read_text()
    assert (out / "figures" / "foo.png").exists() and (out / "figures" / "bar_maps.png").exists()
    assert "](figures/foo.png)" in md
    assert "foo of single-phase flow × FMANet, COF[theta1=0.3] × FMANet: mean ± std" in md
    assert "bar of single-phase flow × FMANet, COF[theta1=0.3] × FMANet: mean map" in md
    assert "No figure for `baz` (single-phase flow × FMANet, COF[theta1=0.3] × FMANet): no figure is drawn for " \
           "shape (N, 2, 3, 3)" in md
    assert not (out / "figures" / "baz.png").exists() and not (out / "figures" / "baz_maps.png").exists()


def test_the_reporter_names_no_model_output():
    root = Path(__file__).resolve().parents[2] / "bench" / "report"
    for p in root.rglob("*.py"):
        hit = re.search(r"fmanet|\bfusion|attention", p.read_text(), re.IGNORECASE)
        assert hit is None, f"{p.relative_to(root)} names {hit.group(0)!r}: model outputs reach it only via aux.npz"


def test_old_run_directory_without_parameter_columns(tmp_path):
    # Written before p_* columns and cell-hash aux keys: the option and parameters come from rep_params
    # JSON; explanations keyed by cell label are skipped with a note, everything else is reported.
    specs = {"sp": ("single_phase", {}), "c3": ("cof", {"theta1": 0.3}), "c6": ("cof", {"theta1": 0.6})}
    run = fabricate_run(tmp_path, reps=tuple(specs), rep_params=specs, seeds=(0,), examples=False,
                        legacy=True)
    res = pd.read_parquet(run / "results.parquet")
    assert not [c for c in res.columns if c.startswith("p_")] and "cell_hash" not in res.columns
    out = make_report(run, tmp_path / "r", OPTS)
    md = (out / "report.md").read_text()
    assert (out / "figures" / "sweep_cof_theta1.png").exists()
    assert set(pd.read_csv(out / "tables" / "significance.csv")["baseline"]) == {"sp"}
    assert "## Model explanations" in md and "their keys name no cell_hash of the results table" in md
    assert not (out / "figures" / "fusion_weights.png").exists()
    assert len(pd.read_csv(out / "tables" / "headline.csv")) == 6  # every cell still reported


def test_aux_validation_names_file_and_key(tmp_path):
    from bench.report import ReportInputError

    run = fabricate_run(tmp_path, examples=False, seeds=(0,))
    aux = dict(np.load(run / "aux.npz"))
    key = next(k for k in aux if k.endswith("/fusion_weights"))
    aux[key] = aux[key].copy()
    aux[key][3, 1] = np.nan
    np.savez(run / "aux.npz", **aux)
    msg = rf"aux.npz: {re.escape(key)} has non-finite values \(first at sample 3\)"
    with pytest.raises(ReportInputError, match=msg):
        make_report(run, tmp_path / "r", OPTS)
