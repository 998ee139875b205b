"""Executors: in-process, local worker processes and Ray give identical tables for the same seed."""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import numpy as np
import pandas as pd
import pytest

from bench.results.tables import read_tables
from bench.run import run_study

pytestmark = pytest.mark.integration

TIMING = ["train_seconds", "predict_seconds", "tune_seconds"]
COMMON = ["study=smoke", "tracking=none", "report=false", "executor.threads_per_worker=1",
          "study.representations=[two_phase_stack]"]


def _tables(tmp_path, name, run_overrides, extra):
    ovs = [o for o in run_overrides if not o.startswith("paths.runs=")]
    run_dir = run_study([*COMMON, *ovs, f"paths.runs={tmp_path / name}", *extra])
    results, preds = read_tables(run_dir)
    return results.drop(columns=TIMING), preds


@pytest.fixture(scope="module")
def reference(tmp_path_factory, session_cache):
    tmp = tmp_path_factory.mktemp("exec-ref")
    return _tables(tmp, "inproc", [f"paths.cache={session_cache}", f"paths.reports={tmp}"], ["executor.workers=1"])


def test_local_pool_equals_in_process(reference, tmp_path, run_overrides):
    results, preds = _tables(tmp_path, "pool", run_overrides, ["executor.workers=2"])
    assert (results["status"] == "ok").all(), results["error"].tolist()
    pd.testing.assert_frame_equal(results, reference[0])
    pd.testing.assert_frame_equal(preds, reference[1])


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is an optional extra (pip install -e '.[ray]')")
def test_ray_equals_local(reference, tmp_path, run_overrides):
    results, preds = _tables(tmp_path, "ray", run_overrides, ["executor=ray", "executor.num_cpus=2",
                                                              "executor.threads_per_worker=1"])
    assert (results["status"] == "ok").all(), results["error"].tolist()
    pd.testing.assert_frame_equal(results, reference[0])
    pd.testing.assert_frame_equal(preds, reference[1])


@dataclasses.dataclass
class _Dies:
    """A unit whose process dies (os._exit) at every run: no record ever comes back from it."""

    unit_key: str = "dies"
    run_dir: str = ""
    cell: str = "d|f|r|m|0"
    fold: str = "s1"
    threads: int = 1
    timeout_s: float = 0.0
    x: object = None

    def run(self) -> dict:
        os._exit(3)

    def failed(self, error: str) -> dict:
        return {"row": {"unit_key": self.unit_key, "status": "failed", "error": error}, "predictions": []}


@pytest.mark.slow  # ~35 s: Ray notices each dead worker
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is an optional extra (pip install -e '.[ray]')")
def test_ray_worker_death_is_retried_once_then_failed():
    from bench.runtime.executors import CRASH_RETRIES, make_executor

    got = []
    ex = make_executor({"name": "ray", "address": None, "num_cpus": 1, "cpus_per_task": 1, "threads_per_worker": 1,
                        "workers": 1, "on_error": "continue", "unit_timeout_s": 0})
    ex.run([_Dies(x=np.zeros(3))], lambda t, rec: got.append(rec))
    assert len(got) == 1 and got[0]["row"]["status"] == "failed", got
    assert f"worker process died {CRASH_RETRIES + 1} time(s)" in got[0]["row"]["error"], got[0]["row"]["error"]
    assert got[0]["ran_on"]["attempt"] == CRASH_RETRIES + 1
