"""A real small study end to end: synthetic data, TV-L1 flow, training, the results table, a real
MLflow sqlite store, a real Optuna storage, the report; then resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.results.tables import read_tables
from bench.run import run_study

pytestmark = pytest.mark.integration


def _mlflow_runs(run_dir):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("smoke")
    return client, exp, client.search_runs([exp.experiment_id], max_results=1000)


def test_smoke_study_end_to_end_and_resume(run_overrides, tmp_path, capsys):
    run_dir = run_study(["study=smoke", *run_overrides])
    out = capsys.readouterr().out
    assert "Pooled over all folds" in out and "UF1" in out
    results, preds = read_tables(run_dir)
    # 2 representations x 1 model x 1 seed x 4 LOSO folds
    assert len(results) == 8 and (results["status"] == "ok").all(), results["error"].tolist()
    assert set(results["fold"]) == {f"synthetic/s{i:02d}" for i in range(4)} or results["fold"].nunique() == 4
    assert not results.isna().any().any()
    assert len(preds) == 2 * results.groupby("representation")["n_test"].sum().iloc[0]
    probs = preds.filter(like="prob_").to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    facts = json.loads((run_dir / "run.json").read_text())
    assert facts["units"]["ran"] == 8 and facts["mlflow"]["logged"]

    # MLflow: study -> cell -> fold nested runs in a real sqlite store
    client, exp, runs = _mlflow_runs(run_dir)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    cells = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    folds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in {c.info.run_id for c in cells}]
    assert len(parents) == 1 and len(cells) == 2 and len(folds) == 8
    assert all("uf1" in c.data.metrics for c in cells)
    from bench.evaluation.metrics import pooled_scores

    for c in cells:  # each cell run carries the pooled score of its own predictions
        g = preds[preds["representation"] == c.data.params["representation"]]
        want = pooled_scores(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), 3)["uf1"]
        assert c.data.metrics["uf1"] == pytest.approx(want, abs=1e-12)
    hist = client.get_metric_history(folds[0].info.run_id, "train_loss")
    assert len(hist) == 3  # one per epoch
    assert (tmp_path / "reports" / "smoke" / "report.md").exists()

    # Resume: the same command runs nothing and yields the same table.
    run_study(["study=smoke", *run_overrides])
    out = capsys.readouterr().out
    assert "resume: 8 finished unit(s)" in out
    results2, preds2 = read_tables(run_dir)
    pd.testing.assert_frame_equal(results, results2)
    pd.testing.assert_frame_equal(preds, preds2)
    _, _, runs2 = _mlflow_runs(run_dir)
    assert len(runs2) == len(runs)  # identical results are not logged twice


def test_smoke_with_nested_optuna_tuning(run_overrides, tmp_path):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    run_dir = run_study(["study=smoke", "study.representations=[two_phase_stack]", "tuning=optuna",
                         "tuning.n_trials=2", "tuning.inner_folds=2", "~tuning.space.trainer.epochs", "tracking=none", "report=false",
                         *run_overrides])
    results, _ = read_tables(run_dir)
    assert (results["status"] == "ok").all(), results["error"].tolist()
    chosen = [json.loads(h)["tuned"] for h in results["hparams"]]
    assert all("trainer.lr" in c and c["n_trials"] == 2 for c in chosen)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(run_dir / "optuna.journal")))
    summaries = optuna.get_all_study_summaries(storage)
    assert len(summaries) == len(results)  # one Optuna study per outer fold
