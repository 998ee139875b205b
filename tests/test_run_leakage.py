"""No leakage by construction: the test subject's samples never reach fit(), validation or tuning."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from bench.training import engine
from bench.protocols.folds import LeakageError, assert_disjoint
from bench.training.units import UnitTask, run_unit


def _task(tmp_path, tuning=None, validation=None):
    n_sub, per = 6, 6
    n = n_sub * per
    # Each sample is a constant image whose value is its own index: whatever reaches fit() says
    # exactly which samples it saw.
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None, None, None], 3, axis=1)
    x = np.broadcast_to(x, (n, 3, 12, 12)).copy()
    y = np.tile(np.arange(3), n // 3).astype(np.int64)
    subjects = np.repeat([f"s{i}" for i in range(n_sub)], per)
    test = np.where(subjects == "s2")[0]
    train = np.where(subjects != "s2")[0]
    cfg = {
        "model": {"name": "ststnet"},
        "trainer": {"epochs": 2, "batch_size": 8, "lr": 1e-3},
        "protocol": {"name": "loso", "validation": validation or {"mode": "none"}},
        "tuning": tuning or {"n_trials": 0},
        "representation": {"name": "single_phase"},
    }
    return UnitTask(study="t", labels={"dataset": "d", "flow": "f", "representation": "r", "model": "m"},
                    names={"representation": "single_phase", "model": "ststnet"}, seed=0, fold="s2",
                    train_idx=train, test_idx=test, x=x, y=y, subjects=subjects,
                    clips=np.array([f"c{i}" for i in range(n)]), source_datasets=np.array(["d"] * n),
                    channels=("u1", "v1", "m1"), n_classes=3, cell_cfg=cfg, cell_hash="h", unit_key="k",
                    run_dir=str(tmp_path))


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
    task = _task(tmp_path, validation=validation)
    rec = run_unit(task)
    assert rec["row"]["status"] == "ok", rec["row"]["error"]
    test = set(task.test_idx.tolist())
    assert spy and all(s.isdisjoint(test) for s in spy)
    assert {p["subject"] for p in rec["predictions"]} == {"s2"}


def test_nested_tuning_never_sees_the_test_subject(tmp_path, spy):
    tuning = {"n_trials": 2, "inner_folds": 2, "sampler_seed": 0, "storage": "journal", "metric": "uf1",
              "space": {"trainer": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}}}
    task = _task(tmp_path, tuning=tuning)
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
    task = _task(tmp_path)
    task.train_idx = np.arange(len(task.y))  # includes the test subject
    rec = run_unit(task)
    assert rec["row"]["status"] == "failed"
    assert "LeakageError" in rec["row"]["error"] and "s2" in rec["row"]["error"]
    # a caller guarding with `except AssertionError` (as tests and asserts do) catches a leak too
    with pytest.raises(AssertionError, match="s2") as e:
        assert_disjoint({"s1", "s2"}, {"s2"}, what="a fold")
    assert isinstance(e.value, LeakageError)
