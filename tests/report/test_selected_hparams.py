"""The report's "Selected hyper-parameters" (issue 28): per cell, each tuned hyper-parameter's median
[min, max] over the outer folds, from the units' ``hparams["tuned"]``; no section for an untuned run.
End to end: a tiny tuned study's journal carries the objective's name, the notes and the trials'
attributes, its report's table holds the values the journal's best trials chose, and the console
prints the optuna-dashboard command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.report import ReportOptions, make_report
from bench.report.context import ReportContext
from bench.report.load import load_run
from bench.report.sections import SECTIONS, selected_hparams
from tests.helpers.fabricate import fabricate_run, scan_clean

OPTS = ReportOptions(n_boot=50, pdf=False)
LR = [1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3]  # fold s00..s05 of single_phase; cof's folds choose twice these


def _tuned(run):
    """Every unit of a fabricated run records tuned values with a known spread over its six folds."""
    res = pd.read_parquet(run / "results.parquet")
    hp = []
    for r in res.itertuples():
        i, k = int(r.fold[1:]), 2 if r.representation.startswith("cof") else 1
        hp.append(json.dumps({"trainer": {"lr": LR[i] * k}, "model": {}, "tuned": {
            "trainer.lr": LR[i] * k, "trainer.epochs": 20, "model.act": "relu" if i < 4 else "gelu",
            "inner_score": 0.3 + 0.02 * i, "n_trials": 8, "objective": "inner_cv_uf1"}}))
    res.assign(hparams=hp, tune_seconds=12.0).to_parquet(run / "results.parquet")
    return run


def test_the_section_is_registered():
    assert selected_hparams in SECTIONS


def test_selected_values_median_min_max_over_outer_folds(tmp_path):
    run = load_run(_tuned(fabricate_run(tmp_path, models=("ststnet",), seeds=(0,), aux=False, examples=False)))
    sel = selected_hparams.selections(ReportContext(run, tmp_path / "r", OPTS)).set_index(["representation",
                                                                                          "parameter"])
    lr = sel.loc[("single_phase", "trainer.lr")]
    assert (lr["median"], lr["min"], lr["max"], lr["folds"]) == pytest.approx((3.5e-3, 1e-3, 6e-3, 6))
    assert lr["shown"] == "0.0035 [0.001, 0.006]"
    assert sel.loc[("cof[theta1=0.3]", "trainer.lr"), "shown"] == "0.007 [0.002, 0.012]"
    assert sel.loc[("single_phase", "trainer.epochs"), "shown"] == "20"  # every fold agreed
    assert sel.loc[("single_phase", "model.act"), "shown"] == "relu (4/6), gelu (2/6)"
    assert sel.loc[("single_phase", "inner_score"), "shown"] == "0.35 [0.3, 0.4]"

    out = make_report(run.run_dir, tmp_path / "rep", OPTS)
    md = (out / "report.md").read_text()
    assert "## Selected hyper-parameters" in md
    part = md.split("## Selected hyper-parameters")[1].split("\n## ")[0]
    assert "`trainer.lr`" in part and "0.0035 [0.001, 0.006]" in part and "Best inner_cv_uf1" in part
    assert "relu (4/6), gelu (2/6)" in part and "training subjects only" in part
    csv = pd.read_csv(out / "tables" / "selected_hparams.csv")
    assert set(csv["parameter"]) == {"trainer.lr", "trainer.epochs", "model.act", "inner_score"}
    scan_clean(out)


def test_an_untuned_run_has_no_section(tmp_path):
    run = load_run(fabricate_run(tmp_path, models=("ststnet",), seeds=(0,), aux=False, examples=False))
    assert selected_hparams.build(ReportContext(run, tmp_path / "r", OPTS)) == []  # [] leaves the section out


def _journal_best(run_dir) -> dict[str, dict]:
    """Per study name: its best trial's params, its metric names, note and the trials' user attrs."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(run_dir / "optuna.journal")))
    out = {}
    for s in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        try:
            from optuna_dashboard import get_note
            note = get_note(study)
        except ImportError:
            note = study.user_attrs["note"]
        out[s.study_name] = {"best": study.best_params, "metric_names": study.metric_names, "note": note,
                             "attrs": study.user_attrs, "trials": [t.user_attrs for t in study.trials]}
    return out


@pytest.mark.slow
@pytest.mark.ci
def test_a_tuned_study_end_to_end(run_overrides, tmp_path, capsys):
    from bench.results.tables import read_tables
    from bench.run import run_study

    run_dir = run_study([
        "study=smoke",
        "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
        "study.representations=[single_phase]", "trainer.epochs=1", "flow.size=32", "tuning=optuna",
        "tuning.n_trials=2", "tuning.inner_folds=2", "~tuning.space.trainer.epochs", "tracking=none",
        "report_options.pdf=false", "report_options.n_boot=50", "progress=false", *run_overrides])
    console = capsys.readouterr().out
    results, _ = read_tables(run_dir)
    assert (results["status"] == "ok").all(), results["error"].tolist()
    studies = _journal_best(run_dir)
    assert set(studies) == {f"{r.cell} / fold {r.fold}" for r in results.itertuples()} and len(studies) == 3
    for name, s in studies.items():
        cell, fold = name.split(" / fold ")
        assert s["metric_names"] == ["inner_cv_uf1"]
        assert f"`{cell}`" in s["note"] and f"outer test subject(s) {fold}" in s["note"]
        assert s["attrs"]["outer_test_subjects"] == [fold] and s["attrs"]["cell"] == cell
        assert all(len(t["inner_fold_uf1"]) == 2 and t["epochs_run"] == [1, 1] and t["seconds"] > 0
                   for t in s["trials"])

    assert "tuning: 3 outer fold(s) tuned by Optuna, 2 trial(s) each, objective inner_cv_uf1" in console
    assert f"optuna-dashboard {(run_dir / 'optuna.journal').as_posix()}" in console

    # The report's table: the median [min, max] of the learning rates the three studies' best trials chose.
    lrs = np.array([s["best"]["trainer.lr"] for s in studies.values()])
    # (every fold's TPE starts from the same seed, so with 2 trials the folds may well agree: one value)
    want = f"{np.median(lrs):.3g}" + (f" [{lrs.min():.3g}, {lrs.max():.3g}]" if lrs.min() < lrs.max() else "")
    md = (tmp_path / "reports" / "smoke" / "report.md").read_text()
    part = md.split("## Selected hyper-parameters")[1].split("\n## ")[0]
    assert f"| {want} |" in part and "optuna-dashboard runs/smoke/optuna.journal" in part
    csv = pd.read_csv(tmp_path / "reports" / "smoke" / "tables" / "selected_hparams.csv")
    row = csv[csv["parameter"] == "trainer.lr"].iloc[0]
    assert (row["median"], row["min"], row["max"]) == pytest.approx((np.median(lrs), lrs.min(), lrs.max()), rel=1e-5)
