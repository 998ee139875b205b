"""Executors: in-process, local worker processes and Ray give identical tables for the same seed."""

from __future__ import annotations

import importlib.util

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
