"""No leakage by construction: the test subject's samples never reach fit(), validation or tuning."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from bench.training import engine
from bench.protocols.folds import LeakageError, assert_disjoint
from bench.training.units import UnitTask, run_unit  # noqa: F401
from tests.helpers.tasks import make_task


@pytest.fixture
def spy(monkeypatch):
    """Records the sample ids of every tensor given to fit (incl. val) and, separately, to predict."""
    seen = []
    real_fit, real_predict = engine.fit, engine.predict_proba

    def fit(model, x, y, cfg, *, val=None, **kw):
        seen.append(set(x[:, 0, 0, 0].round().int().tolist()))
        if val is not None:
            seen.append(set(val[0][:, 0, 0, 0].round().int().tolist()))
        return real_fit(model, x, y, cfg, val=val, **kw)

    def predict_proba(model, x, *a, **kw):
        seen.predicted.append(set(x[:, 0, 0, 0].round().int().tolist()))
        return real_predict(model, x, *a, **kw)

    class Seen(list):
        predicted: list

    seen = Seen()
    seen.predicted = []
    monkeypatch.setattr(engine, "fit", fit)
    monkeypatch.setattr(engine, "predict_proba", predict_proba)
    return seen


def test_fit_has_no_test_argument():
    params = set(inspect.signature(engine.fit).parameters)
    assert not {p for p in params if "test" in p}


@pytest.mark.parametrize("validation", [{"mode": "none"}, {"mode": "subjects", "val_fraction": 0.25}])
def test_outer_training_never_sees_the_test_subject(tmp_path, spy, validation):
    task = make_task(tmp_path, validation=validation)
    rec = run_unit(task)
    assert rec["row"]["status"] == "ok", rec["row"]["error"]
    test = set(task.test_idx.tolist())
    assert spy and all(s.isdisjoint(test) for s in spy)
    assert {p["subject"] for p in rec["predictions"]} == {"s2"}


def test_nested_tuning_never_sees_the_test_subject(tmp_path, spy):
    tuning = {"n_trials": 2, "inner_folds": 2, "sampler_seed": 0, "storage": "journal", "metric": "uf1",
              "space": {"trainer": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}}}
    task = make_task(tmp_path, tuning=tuning)
    rec = run_unit(task)
    assert rec["row"]["status"] == "ok", rec["row"]["error"]
    test = set(task.test_idx.tolist())
    # 2 trials x 2 inner folds + the final retrain on all training subjects
    assert len(spy) == 2 * 2 + 1
    assert all(s.isdisjoint(test) for s in spy)
    # every inner-CV prediction is on training subjects; the test subject is predicted once, at the end
    inner, final = spy.predicted[:-1], spy.predicted[-1]
    assert len(inner) == 4 and all(s.isdisjoint(test) for s in inner)
    assert final == test
    assert (tmp_path / "optuna.journal").exists()


def test_a_leaking_fold_is_refused(tmp_path):
    task = make_task(tmp_path)
    task.train_idx = np.arange(len(task.y))  # includes the test subject
    rec = run_unit(task)
    assert rec["row"]["status"] == "failed"
    assert "LeakageError" in rec["row"]["error"] and "s2" in rec["row"]["error"]
    # a caller guarding with `except AssertionError` (as tests and asserts do) catches a leak too
    with pytest.raises(AssertionError, match="s2") as e:
        assert_disjoint({"s1", "s2"}, {"s2"}, what="a fold")
    assert isinstance(e.value, LeakageError)
