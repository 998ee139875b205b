"""The leakage audit in a real (tiny) study: the headline is bit-identical with and without
``audit=true``, the audit table is written apart from it, and resuming with the audit on reruns
only what lacks per-epoch predictions."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from bench.results.tables import read_tables
from bench.run import run_study

TINY = [
    "study=smoke",
    "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
    "study.representations=[single_phase]", "trainer.epochs=3", "flow.size=32", "tracking=none", "report=false",
    "progress=false", "executor.workers=1",
]


def _headline(run_dir):
    """The results and predictions tables without wall-clock columns (the only ones that may differ)."""
    results, preds = read_tables(run_dir)
    clock = [c for c in results.columns if c.endswith("_seconds") or c.endswith("_at")]
    return results.drop(columns=clock), preds


@pytest.mark.slow
@pytest.mark.ci
def test_headline_is_bit_identical_with_and_without_the_audit(tmp_path, session_cache):
    from bench.core.config import ConfigError

    ovs = [*TINY, f"paths.cache={session_cache}", f"paths.runs={tmp_path / 'runs'}"]
    with pytest.raises(ConfigError, match="audit must be true or false"):
        run_study([*ovs, "audit=sometimes"], out=io.StringIO())
    run_dir = run_study([*ovs, "audit=false"], out=io.StringIO())
    off_results, off_preds = _headline(run_dir)
    assert not (run_dir / "audit.parquet").exists()
    assert all("audit" not in json.loads(p.read_text()) for p in (run_dir / "units").glob("*.json"))

    # The same run directory with the audit on: the units lack per-epoch predictions, so they run
    # again (same seeds); the keys do not change (audit is not part of a cell's config).
    out = io.StringIO()
    run_study([*ovs, "audit=true"], out=out)
    assert "audit: 3 finished unit(s) were run without audit=true" in out.getvalue()
    on_results, on_preds = _headline(run_dir)
    pd.testing.assert_frame_equal(on_results, off_results, check_exact=True)
    pd.testing.assert_frame_equal(on_preds, off_preds, check_exact=True)
    assert on_results.equals(off_results) and on_preds.equals(off_preds)  # to the bit, hashes included

    audit = pd.read_parquet(run_dir / "audit.parquet")
    assert sorted(audit["epoch"].unique()) == [0, 1, 2]
    assert not ({"prob_0", "fold_uf1"} & set(audit.columns))  # the audit table holds predictions only
    last = audit[audit["epoch"] == 2].merge(on_preds, on=["seed", "fold", "subject", "clip"], suffixes=("", "_h"))
    assert len(last) == len(on_preds)
    assert (last["y_pred"] == last["y_pred_h"]).all()  # fixed budget: the last epoch IS the headline model
    assert (last["y_true"] == last["y_true_h"]).all()
    assert json.loads((run_dir / "run.json").read_text())["audit"] is True

    # Back to audit=false: everything resumes, nothing trains, and the leaky table goes.
    out = io.StringIO()
    run_study([*ovs, "audit=false"], out=out)
    assert "resume: 3 finished unit(s) found" in out.getvalue() and "0 to run" in out.getvalue()
    assert not (run_dir / "audit.parquet").exists()
    back_results, back_preds = _headline(run_dir)
    assert back_results.equals(off_results) and back_preds.equals(off_preds)
    off_metrics = _mlflow_metrics(run_dir, tmp_path / "off.db")

    # audit=grid: every unit also needs an inner-validation score (one extra fit after the headline),
    # so they run again; the headline, and the MLflow metrics logged from it, stay bit-identical.
    out = io.StringIO()
    run_study([*ovs, "audit=grid"], out=out)
    grid_results, grid_preds = _headline(run_dir)
    assert grid_results.equals(off_results) and grid_preds.equals(off_preds)
    inner = pd.read_parquet(run_dir / "audit_inner.parquet")
    assert len(inner) == 3 and inner["inner_uf1"].between(0, 1).all() and (inner["n_val"] > 0).all()
    assert set(inner["validation"]) == {"an extra fit holding out 20% of the training subjects (audit=grid)"}
    assert _mlflow_metrics(run_dir, tmp_path / "grid.db") == off_metrics
    run_study([*ovs, "audit=false"], out=io.StringIO())
    assert not (run_dir / "audit_inner.parquet").exists()


def _mlflow_metrics(run_dir, db) -> dict:
    """Every MLflow run's metrics (wall-clock ones left out) as logged from the run directory's tables."""
    from mlflow.tracking import MlflowClient

    from bench.tracking import mlflow_store as tracking

    uri = f"sqlite:///{db}"
    tracking.log_run(run_dir, {"uri": uri, "experiment": "smoke"})
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("smoke")
    return {r.info.run_name: {k: v for k, v in r.data.metrics.items() if "seconds" not in k and not k.endswith("_at")}
            for r in client.search_runs([exp.experiment_id], max_results=1000)}

