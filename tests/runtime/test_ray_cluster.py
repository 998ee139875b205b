"""executor=ray on a real cluster: a head and a second node started with ``ray start`` (two processes
on this machine stand in for two hosts) run a slice of megc2019_phases on the release-layout fixture.

The tables equal the local executor's (less wall-clock columns), the units ran on both nodes (each
record's ``ran_on``, outside the row), and a node killed mid-study loses nothing: its units are run
again on the node left and the tables are still the local ones. The nodes are ended by their own
process groups (never ``ray stop``, which stops every Ray of this user on the machine), each with
its own temporary directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.results.tables import read_tables
from bench.run import run_study

pytestmark = [pytest.mark.slow, pytest.mark.ci, pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                 reason="Ray is an optional extra (pip install -e '.[ray]')")]

WALL = ["train_seconds", "predict_seconds", "tune_seconds", "started_at", "finished_at"]
# 2 representations x 6 LOSO folds (TINY_ROWS: 6 subjects) = 12 units of about a second each
SLICE = ["study=megc2019_phases", "dataset=megc2019_causalnet", "study.models=[ststnet]", "study.seeds=[0]",
         "study.representations=[mm_cof,two_phase_stack]", "trainer.epochs=300", "tracking=none",
         "report=false", "progress=false", "executor.threads_per_worker=1"]
START_S = 90  # how long the two nodes get to join


def _ray_cli() -> str:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_node(args: list[str], temp: str, log: Path) -> subprocess.Popen:
    # RAY_AUTH_MODE explicit: Ray 2.5x+ turns token auth on for `ray start` once ~/.ray/auth_token exists (any
    # earlier local ray.init() writes one), while a driver connecting to it stays unauthenticated
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    with open(log, "w") as f:  # its own session: the node is ended by its process group, nothing else
        return subprocess.Popen([_ray_cli(), "start", *args, "--num-cpus=1", f"--temp-dir={temp}", "--block",
                                 "--disable-usage-stats"],
                                stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _end(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """End a node's process group: SIGTERM, then SIGKILL after ``grace_s`` (a head drains for 30 s)."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything of the group left after ray start itself ended


def _alive_nodes(address: str) -> list[dict]:
    import ray

    ray.init(address=address, log_to_driver=False)
    try:
        return [n for n in ray.nodes() if n["Alive"]]
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(address, head node id, worker node id, worker process)``; both nodes ended afterwards."""
    logs = tmp_path_factory.mktemp("ray-logs")
    port = _free_port()
    temps = [tempfile.mkdtemp(prefix="rh"), tempfile.mkdtemp(prefix="rw")]  # short: Ray's socket paths
    procs = [_start_node(["--head", f"--port={port}", "--include-dashboard=false"], temps[0], logs / "head.log")]
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while not (Path(temps[0]) / "ray_current_cluster").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        procs.append(_start_node([f"--address={address}"], temps[1],
                                 logs / "worker.log"))
        nodes: list[dict] = []
        while len(nodes) < 2 and time.monotonic() < deadline and procs[1].poll() is None:
            time.sleep(1)
            nodes = _alive_nodes(address) if (Path(temps[0]) / "ray_current_cluster").exists() else []
        assert len(nodes) == 2, f"the two nodes did not join in {START_S} s: " + \
            "".join((logs / n).read_text()[-2000:] for n in ("head.log", "worker.log"))
        head = next(n["NodeID"] for n in nodes if "node:__internal_head__" in n["Resources"])
        worker = next(n["NodeID"] for n in nodes if n["NodeID"] != head)
        yield address, head, worker, procs[1]
    finally:
        for p in reversed(procs):
            _end(p)
        for t in temps:
            shutil.rmtree(t, ignore_errors=True)


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    from benchmarks.composite_fixture import TINY_ROWS, write_release_fixture

    return write_release_fixture(tmp_path_factory.mktemp("rel") / "causalnet", "causalnet", rows=TINY_ROWS)


def _run(tmp: Path, root: Path, cache: Path, extra: list[str]) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    run_dir = run_study([*SLICE, f"dataset.root={root}", f"paths.runs={tmp / 'runs'}", f"paths.cache={cache}",
                         f"paths.reports={tmp / 'reports'}", *extra])
    results, preds = read_tables(run_dir)
    assert (results["status"] == "ok").all(), results["error"].tolist()
    return Path(run_dir), results.drop(columns=WALL), preds


def _ran_on(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text())["ran_on"] for p in sorted((run_dir / "units").glob("*.json"))]


@pytest.fixture(scope="module")
def local(tmp_path_factory, fixture_root):
    tmp = tmp_path_factory.mktemp("local")
    return _run(tmp, fixture_root, tmp / "cache", ["executor.workers=1"])


def test_two_nodes_equal_local(cluster, local, fixture_root, tmp_path):
    address, head, worker, _ = cluster
    run_dir, results, preds = _run(tmp_path, fixture_root, tmp_path / "cache",
                                   ["executor=ray", f"executor.address={address}"])
    pd.testing.assert_frame_equal(results, local[1])
    pd.testing.assert_frame_equal(preds, local[2])
    where = _ran_on(run_dir)
    assert len(where) == 12 and {w["node_id"] for w in where} == {head, worker}, where
    assert all(w["attempt"] == 1 for w in where)


def _kill_when_busy(run_dir: Path, worker: str, proc: subprocess.Popen, killed: list) -> None:
    """Kill the worker node's whole process group (raylet, its Ray workers) a moment after it
    returned its first unit: by then it is running its next one (the queue has more)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not killed:
        for p in (run_dir / "units").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                if json.loads(p.read_text())["ran_on"]["node_id"] == worker:
                    time.sleep(0.5)
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed.append(time.monotonic())
                    return
        time.sleep(0.1)


def test_node_death_loses_no_unit(cluster, local, fixture_root, tmp_path):
    """Runs after test_two_nodes_equal_local: it kills the module's worker node."""
    address, head, worker, proc = cluster
    run_dir = tmp_path / "runs" / "megc2019_phases"
    killed: list = []
    watcher = threading.Thread(target=_kill_when_busy, args=(run_dir, worker, proc, killed), daemon=True)
    watcher.start()
    run_dir2, results, preds = _run(tmp_path, fixture_root, tmp_path / "cache",
                                    ["executor=ray", f"executor.address={address}"])
    watcher.join(5)
    assert killed and run_dir2 == run_dir, "the worker node was not killed while the study ran"
    pd.testing.assert_frame_equal(results, local[1])
    pd.testing.assert_frame_equal(preds, local[2])
    where = _ran_on(run_dir)
    again = [w for w in where if w["attempt"] > 1]
    assert again and all(w["node_id"] == head for w in again), where  # redone on the node left
    assert any(w["node_id"] == worker for w in where)
