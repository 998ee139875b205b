"""Every shipped study runs from the command line entry point (tiny data, 1 epoch)."""

from __future__ import annotations

import pytest

from bench.results.tables import read_tables
from bench.run import main
from studies import list_studies

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TINY = ["dataset.n_subjects=3", "dataset.clips_per_class=1", "dataset.size=48", "dataset.n_frames=[8,10]",
        "flow.size=32", "input_size=20", "trainer.epochs=1", "tracking=none", "report=false", "progress=false"]


def _real_data(study: str, tmp_path) -> list[str] | None:
    """A study of real data runs on a tiny fixture of its release's layout instead (no synthetic keys)."""
    if study not in ("megc2019_phases", "leakage_audit_megc2019", "stored_scale"):
        return None
    from benchmarks.composite_fixture import TINY_ROWS, write_release_fixture

    root = write_release_fixture(tmp_path / "htnet", "htnet", rows=TINY_ROWS)
    # seeds: auto runs its first round only here (3 seeds); the rounds are tested in tests/runner
    auto = ["study.max_seeds=3"] if study in ("stored_scale", "megc2019_phases", "leakage_audit_megc2019") else []
    return [f"dataset.root={root}", *auto, *(o for o in TINY if not o.startswith(("dataset.", "flow.")))]


@pytest.mark.ci
@pytest.mark.parametrize("study", list_studies())
def test_every_study_runs(study, run_overrides, capsys, tmp_path):
    extra = ["tuning.n_trials=1", "tuning.inner_folds=2", "~tuning.space.trainer.epochs"] if study.endswith("_tuned") else []
    tiny = _real_data(study, tmp_path) or TINY
    if study == "leakage_audit_grid":  # its items differ by trainer.epochs, which the command line would override
        tiny = [o for o in tiny if not o.startswith("trainer.epochs=")]
    assert main([f"study={study}", *tiny, *extra, *run_overrides]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "Pooled over all folds" in out
    run_dir = next(a.split("=", 1)[1] for a in run_overrides if a.startswith("paths.runs="))
    results, preds = read_tables(f"{run_dir}/{study}")
    assert len(results) and (results["status"] == "ok").all(), results["error"].tolist()
    assert len(preds) == results.groupby("cell")["n_test"].sum().iloc[0] * results["cell"].nunique()
