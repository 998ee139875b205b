"""Worker faults (issue 7): a unit that raises or whose worker process dies fails alone, with its
traceback (or the reason) recorded, while the rest of the study goes on (``on_error: continue``) or
the study stops with a clear error (``on_error: stop``); never a hang.

The crash is real: a test-only model (``tests/helpers/crashing_model.py``) whose construction calls
``os._exit(13)`` or SIGKILLs its own process inside a spawned worker.
"""

from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import pytest

from tests.helpers.crashing_model import CRASH_MODEL, RegisterOnUnpickle
from bench.runtime.executors import LocalExecutor, StudyStopped
from bench.results.tables import read_tables
from bench.run import run_study
from bench.plan.planner import plan_study
from bench.training.units import UnitTask

TINY = [
    "study=smoke",
    "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
    "study.representations=[single_phase]",
    "trainer.epochs=1", "flow.size=32", "tracking=none", "report=false", "progress=false",
]
HANG_LIMIT_S = 240  # far above the few seconds these take; reaching it means the executor hung


@pytest.fixture(scope="module")
def cell_cfg():
    return plan_study(["study=smoke", "trainer.epochs=1", "trainer.batch_size=8"]).cells[0].cfg


def make_tasks(cell_cfg, models: list[dict], run_dir: str = "") -> list[UnitTask]:
    """One LOSO fold per model config on a random 3-subject set (content irrelevant, shape real)."""
    rng = np.random.default_rng(0)
    n = 12
    subjects = np.repeat(["s1", "s2", "s3"], 4)
    x = rng.random((n, 3, 28, 28), dtype=np.float32)
    y = np.tile(np.arange(3), 4).astype(np.int64)
    tasks = []
    for i, model in enumerate(models):
        test = f"s{i % 3 + 1}"
        # unpickling the marker (in the worker) registers the crashing families
        cfg = {**cell_cfg, "model": model, "_register": RegisterOnUnpickle()}
        tasks.append(UnitTask(
            study="faults", labels={"dataset": "rand", "flow": "none", "representation": "single_phase",
                                    "model": f"{model['name']}#{i}"},
            names={"representation": "single_phase", "model": model["name"]}, seed=0, fold=test,
            train_idx=np.flatnonzero(subjects != test), test_idx=np.flatnonzero(subjects == test), x=x, y=y,
            subjects=subjects, clips=np.array([f"c{j}" for j in range(n)]), source_datasets=np.full(n, "rand"),
            channels=("u", "v", "m"), n_classes=3, cell_cfg=cfg, cell_hash=f"h{i}", unit_key=f"unit{i}",
            run_dir=run_dir))
    return tasks


def run_guarded(executor, tasks):
    """Run in a thread so a hang fails the test instead of blocking the suite."""
    got: dict[str, dict] = {}
    err: list[BaseException] = []

    def target():
        try:
            executor.run(tasks, lambda t, rec: got.__setitem__(t.unit_key, rec))
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            err.append(e)

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(HANG_LIMIT_S)
    assert not th.is_alive(), f"executor still running after {HANG_LIMIT_S} s: hang"
    return got, (err[0] if err else None)


OK = {"name": "ststnet"}
RAISES = {"name": "ststnet", "no_such_param": 1}  # an ordinary exception inside the unit


@pytest.mark.parametrize("workers", [1, 2])
def test_raising_unit_records_traceback_and_the_rest_continues(cell_cfg, workers):
    tasks = make_tasks(cell_cfg, [OK, RAISES, OK])
    got, err = run_guarded(LocalExecutor({"workers": workers, "threads_per_worker": 1}), tasks)
    assert err is None
    assert [got[f"unit{i}"]["row"]["status"] for i in range(3)] == ["ok", "failed", "ok"]
    bad = got["unit1"]["row"]
    assert bad["error"].startswith("Traceback (most recent call last)") and "no_such_param" in bad["error"]
    assert got["unit1"]["predictions"] == [] and bad["fold_uf1"] == 0.0
    assert len(got["unit0"]["predictions"]) == 4


def test_raising_unit_with_on_error_stop_stops_the_study(cell_cfg):
    tasks = make_tasks(cell_cfg, [RAISES, OK, OK])
    got, err = run_guarded(LocalExecutor({"workers": 1, "on_error": "stop"}), tasks)
    assert isinstance(err, StudyStopped)
    assert "unit0" in str(err) and "no_such_param" in str(err)
    assert list(got) == ["unit0"]  # recorded (so a fixed rerun resumes), and nothing after it ran


@pytest.mark.ci
@pytest.mark.slow
@pytest.mark.parametrize("how", ["exit", "sigkill", "segv"])
def test_worker_crash_fails_only_its_unit(cell_cfg, how, tmp_path):
    crash = {"name": CRASH_MODEL, "how": how}
    tasks = make_tasks(cell_cfg, [crash, OK, OK], run_dir=str(tmp_path))
    got, err = run_guarded(LocalExecutor({"workers": 2, "threads_per_worker": 1, "on_error": "continue"}), tasks)
    assert err is None
    assert sorted(got) == ["unit0", "unit1", "unit2"]  # every unit delivered exactly once
    assert got["unit0"]["row"]["status"] == "failed"
    error = got["unit0"]["row"]["error"]
    assert "worker process died" in error
    if how == "segv":  # the native crash's Python stack, written by faulthandler in the dying worker
        assert "Segmentation fault" in error and "_crash" in error and "run_unit" in error
    else:
        assert "no Python stack was written" in error and "SIGKILL" in error
    assert list((tmp_path / "units").glob("*.crash")) == []  # consumed, and none left by the good units
    assert got["unit1"]["row"]["status"] == "ok" and got["unit2"]["row"]["status"] == "ok"
    # the innocent unit that shared the broken pool was retried and gives what it gives alone
    alone, _ = run_guarded(LocalExecutor({"workers": 1, "threads_per_worker": 1}),
                           [dataclasses.replace(t) for t in make_tasks(cell_cfg, [crash, OK, OK])[1:2]])
    assert got["unit1"]["predictions"] == alone["unit1"]["predictions"]


def _timeout_case(cell_cfg, tmp_path, workers):
    # 15 s leaves a fresh worker ample time to import torch and train the good unit; the hanging unit
    # costs two timeouts (the try in the pool and the retry alone).
    tasks = make_tasks(cell_cfg, [{"name": CRASH_MODEL, "how": "hang"}, OK], run_dir=str(tmp_path))
    ex = LocalExecutor({"workers": workers, "threads_per_worker": 1, "unit_timeout_s": 15})
    got, err = run_guarded(ex, tasks)  # a hang here would fail on HANG_LIMIT_S
    assert err is None
    assert got["unit0"]["row"]["status"] == "failed" and got["unit1"]["row"]["status"] == "ok"
    error = got["unit0"]["row"]["error"]
    assert "executor.unit_timeout_s=15" in error and "Timeout (0:00:15)" in error and "_crash" in error


@pytest.mark.ci
@pytest.mark.slow
def test_unit_timeout_stops_a_hanging_unit(cell_cfg, tmp_path):
    _timeout_case(cell_cfg, tmp_path, workers=2)


@pytest.mark.slow
def test_unit_timeout_moves_workers_1_into_a_process(cell_cfg, tmp_path):
    _timeout_case(cell_cfg, tmp_path, workers=1)


def test_negative_unit_timeout_is_refused():
    with pytest.raises(ValueError, match="unit_timeout_s"):
        LocalExecutor({"workers": 2, "unit_timeout_s": -1})


@pytest.mark.ci
@pytest.mark.slow
def test_worker_crash_with_on_error_stop(cell_cfg):
    tasks = make_tasks(cell_cfg, [{"name": CRASH_MODEL}, OK])
    got, err = run_guarded(LocalExecutor({"workers": 2, "threads_per_worker": 1, "on_error": "stop"}), tasks)
    assert isinstance(err, StudyStopped)
    assert "unit0" in str(err) and "worker process died" in str(err)
    assert got["unit0"]["row"]["status"] == "failed"


@pytest.fixture
def fail_second_fold(monkeypatch):
    """Make the unit of fold s02 raise inside training (workers=1 runs units in this process).

    A config-level fault (an unknown model parameter) is refused before any work by the planner's
    cell validation, so the run-time fault is injected here instead.
    """
    import bench.training.units

    real = bench.training.units.train_and_predict

    def flaky(task, *a, **kw):
        if task.fold.endswith("s02"):
            raise RuntimeError("injected failure in fold s02")
        return real(task, *a, **kw)

    monkeypatch.setattr(bench.training.units, "train_and_predict", flaky)


def test_study_with_a_failing_unit_continues_and_records_it(tmp_path, session_cache, capsys, fail_second_fold):
    ovs = [*TINY, f"paths.cache={session_cache}", f"paths.runs={tmp_path / 'runs'}", f"paths.reports={tmp_path / 'rep'}"]
    run_dir = run_study(ovs)
    out = capsys.readouterr().out
    assert "1 unit(s) FAILED" in out and "Pooled over all folds" in out
    results, preds = read_tables(run_dir)
    assert results["status"].tolist() == ["ok", "failed", "ok"]
    err = results.loc[1, "error"]
    assert err.startswith("Traceback (most recent call last)") and "injected failure in fold s02" in err
    assert len(preds) == 6 and "s02" not in set(preds["subject"].str[-3:])
    assert json.loads((run_dir / "run.json").read_text())["units"]["failed"] == 1


def test_study_with_on_error_stop_raises_a_clear_error(tmp_path, session_cache, fail_second_fold):
    ovs = [*TINY, f"paths.cache={session_cache}", f"paths.runs={tmp_path / 'runs'}",
           f"paths.reports={tmp_path / 'rep'}", "executor.on_error=stop"]
    with pytest.raises(StudyStopped, match=r"(?s)fold .*s02\) failed:.*injected failure"):
        run_study(ovs)
    units = sorted((tmp_path / "runs" / "smoke" / "units").glob("*.json"))
    status = sorted(json.loads(u.read_text())["row"]["status"] for u in units)
    assert status == ["failed", "ok"]  # s01 done, s02 recorded as failed, s03 never started


@pytest.mark.slow
def test_ray_unit_timeout_fails_only_the_hanging_unit(cell_cfg):
    ray = pytest.importorskip("ray")
    import os
    from pathlib import Path

    from bench.runtime.executors import RayExecutor

    # Ray workers import the test-only crash model by name (tests.helpers.crashing_model): put the
    # project root on their path. The executor uses an already running Ray as it is.
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        tasks = make_tasks(cell_cfg, [{"name": CRASH_MODEL, "how": "hang"}, OK])
        ex = RayExecutor({"name": "ray", "threads_per_worker": 1, "unit_timeout_s": 15})
        got, err = run_guarded(ex, tasks)
    finally:
        ray.shutdown()
    assert err is None
    assert got["unit0"]["row"]["status"] == "failed" and "Ray task failed" in got["unit0"]["row"]["error"]
    assert got["unit1"]["row"]["status"] == "ok"
