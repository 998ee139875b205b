"""What a tuned unit leaves in its Optuna storage for optuna-dashboard (issue 28): the objective's name,
each trial's inner-fold scores, epochs and seconds, and a study note naming the cell and its outer test
subject; a resumed unit adds nothing. Read back with optuna's own JournalStorage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.training.tuning import JOURNAL, dashboard_commands, study_name, tuned_params, tuning_line
from bench.training.units import run_unit
from tests.helpers.tasks import make_task

TUNING = {"n_trials": 2, "inner_folds": 2, "sampler_seed": 0, "storage": "journal", "metric": "uf1",
          "space": {"trainer": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}}}


def _storage(run_dir):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(run_dir / JOURNAL)))


def _note(study) -> str:
    try:
        from optuna_dashboard import get_note
    except ImportError:
        return study.user_attrs["note"]
    return get_note(study)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tuned")
    task = make_task(run_dir, tuning=TUNING)
    rec = run_unit(task)
    assert rec["row"]["status"] == "ok", rec["row"]["error"]
    return run_dir, task, rec


def test_the_study_names_its_objective_cell_and_test_subject(tuned):
    import optuna

    run_dir, task, _ = tuned
    study = optuna.load_study(study_name=study_name(task), storage=_storage(run_dir))
    assert study.study_name == "d|f|r|m|0 / fold s2"
    assert study.metric_names == ["inner_cv_uf1"]
    attrs = study.user_attrs
    assert attrs["cell"] == task.cell and attrs["fold"] == "s2" and attrs["unit_key"] == "k"
    assert attrs["outer_test_subjects"] == ["s2"] and attrs["n_train_subjects"] == 5 and attrs["inner_folds"] == 2
    note = _note(study)
    assert "`d|f|r|m|0`" in note and "outer test subject(s) s2" in note
    assert "never sees the outer test subject(s) s2" in note and "inner_cv_uf1" in note


def test_each_trial_carries_its_inner_fold_scores_epochs_and_seconds(tuned):
    import optuna

    run_dir, task, rec = tuned
    study = optuna.load_study(study_name=study_name(task), storage=_storage(run_dir))
    assert len(study.trials) == 2
    for t in study.trials:
        a = t.user_attrs
        assert len(a["inner_fold_uf1"]) == 2 and all(0.0 <= s <= 1.0 for s in a["inner_fold_uf1"])
        assert a["epochs_run"] == [2, 2]  # make_task's trainer: 2 epochs, no early stopping
        assert a["seconds"] > 0
    chosen = json.loads(rec["row"]["hparams"])["tuned"]
    assert chosen["objective"] == "inner_cv_uf1" and chosen["n_trials"] == 2
    assert chosen["inner_score"] == pytest.approx(study.best_value)
    assert tuned_params(chosen) == {"trainer.lr": study.best_params["trainer.lr"]}


def test_a_resumed_unit_adds_no_trial_and_no_note_version(tuned):
    import optuna

    run_dir, task, _ = tuned
    before = (run_dir / JOURNAL).read_bytes()
    rec = run_unit(task)
    assert rec["row"]["status"] == "ok", rec["row"]["error"]
    study = optuna.load_study(study_name=study_name(task), storage=_storage(run_dir))
    assert len(study.trials) == 2
    after = (run_dir / JOURNAL).read_bytes()
    assert after == before  # nothing to tune, nothing to describe again: not one record appended


def test_console_line_and_dashboard_command(tuned, tmp_path, monkeypatch):
    run_dir, _, rec = tuned
    results = pd.DataFrame([rec["row"]])
    line = tuning_line(results)
    assert line.startswith("tuning: 1 outer fold(s) tuned by Optuna, 2 trial(s) each, objective inner_cv_uf1")
    assert "never its test subject" in line
    assert dashboard_commands(run_dir) == [f"optuna-dashboard {(run_dir / JOURNAL).as_posix()}"]
    monkeypatch.chdir(run_dir.parent)  # a relative run directory stays relative
    assert dashboard_commands(run_dir.name) == [f"optuna-dashboard {run_dir.name}/{JOURNAL}"]
    (tmp_path / "optuna.db").write_bytes(b"")
    assert dashboard_commands(tmp_path, shown="runs/x") == ["optuna-dashboard sqlite:///runs/x/optuna.db"]
    untuned = results.assign(hparams=json.dumps({"trainer": {}, "tuned": {}}))
    assert tuning_line(untuned) is None and tuning_line(results.iloc[:0]) is None
    assert np.isfinite(results["tune_seconds"]).all()
