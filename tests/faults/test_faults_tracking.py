"""Tracking faults (issues 5 and 7): an unreachable MLflow URI fails before any training, fast and
clearly; a server that goes away mid-study loses nothing, because the results table is the source
of truth and ``python -m bench.tracking backfill RUN_DIR`` logs it later (idempotently).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.tracking import mlflow_store as tracking
from bench.results.tables import read_tables
from bench.run import run_study

from tests.helpers.local_servers import free_port

TINY = [
    "study=smoke",
    "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
    "study.representations=[single_phase]",
    "trainer.epochs=1", "flow.size=32", "report=false", "progress=false",
]


def nested_runs(uri: str, experiment: str = "smoke"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    cells = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in {p.info.run_id for p in parents}]
    folds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in {c.info.run_id for c in cells}]
    return parents, cells, folds


def test_unreachable_uri_fails_fast_before_any_work(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "bench.run", *TINY, "tracking=mlflow", f"tracking.uri={uri}",
           f"paths.runs={tmp_path / 'runs'}", f"paths.cache={tmp_path / 'cache'}", f"paths.reports={tmp_path / 'r'}"]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"MLflow tracking URI '{uri}' is not reachable" in r.stderr and "tracking=none" in r.stderr
    assert "Traceback" not in r.stderr
    assert took < 60, f"took {took:.0f} s to notice an unreachable server"  # interpreter start-up included
    assert not (tmp_path / "runs" / "smoke" / "units").exists() and not (tmp_path / "cache").exists()


def test_backfill_logs_a_finished_run_once(tmp_path, session_cache, capsys):
    run_dir = run_study([*TINY, "tracking=none", f"paths.runs={tmp_path / 'runs'}",
                         f"paths.cache={session_cache}", f"paths.reports={tmp_path / 'r'}"])
    assert not (run_dir / "mlflow.db").exists()
    capsys.readouterr()
    import tempfile

    staged = lambda: set(Path(tempfile.gettempdir()).glob("dualflow-mlflow-*"))  # noqa: E731
    before = staged()
    assert tracking.main(["backfill", str(run_dir)]) == 0
    assert staged() == before  # the artifact staging folder is removed, not left in /tmp
    assert capsys.readouterr().out.startswith("logged: experiment smoke")
    uri = tracking.default_uri(run_dir)
    parents, cells, folds = nested_runs(uri)
    results, _ = read_tables(run_dir)
    assert len(parents) == 1 and len(cells) == 1 and len(folds) == len(results) == 3
    assert {f.data.params["fold"] for f in folds} == set(results["fold"])
    assert abs(cells[0].data.metrics["uf1"] - _pooled_uf1(run_dir)) < 1e-12

    assert tracking.main(["backfill", str(run_dir)]) == 0
    assert capsys.readouterr().out.startswith("already logged")
    assert len(nested_runs(uri)[2]) == 3


def test_backfill_of_a_directory_without_results_is_an_error(tmp_path, capsys):
    assert tracking.main(["backfill", str(tmp_path)]) == 2
    assert "has no results.parquet" in capsys.readouterr().err


def _pooled_uf1(run_dir: Path) -> float:
    from bench.evaluation.metrics import pooled_scores

    _, preds = read_tables(run_dir)
    return pooled_scores(preds["y_true"], preds["y_pred"], 3)["uf1"]


class _OneShotServer(ThreadingHTTPServer):
    """Answers the runner's start-up reachability check like an MLflow server, then goes away."""

    daemon_threads = True

    def __init__(self):
        self.requests: list[str] = []
        self.gone = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.requests.append(f"{self.command} {self.path}")
        body = json.dumps({"experiments": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.gone.set()

    do_GET = do_POST = _answer

    def log_message(self, *a):  # keep the test output clean
        pass


def test_server_going_away_mid_study_loses_nothing_and_backfill_recovers(tmp_path, session_cache, monkeypatch,
                                                                          capsys):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    srv = _OneShotServer()
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()

    def go_away():
        srv.gone.wait(60)
        srv.shutdown()
        srv.server_close()

    killer = threading.Thread(target=go_away, daemon=True)
    killer.start()
    uri = f"http://127.0.0.1:{srv.server_address[1]}"
    run_dir = tmp_path / "runs" / "smoke"
    err = None
    try:
        run_study([*TINY, "tracking=mlflow", f"tracking.uri={uri}", f"paths.runs={tmp_path / 'runs'}",
                   f"paths.cache={session_cache}", f"paths.reports={tmp_path / 'r'}"])
    except Exception as e:  # noqa: BLE001 - inspected below: the contract is about what is on disk
        err = e
    killer.join(10)
    assert srv.requests, "the start-up check never reached the server"
    # The table is complete whatever MLflow did ...
    results, preds = read_tables(run_dir)
    assert len(results) == 3 and (results["status"] == "ok").all() and len(preds) == 9
    # ... the run's facts are written (backfill needs them), the failure is recorded, not fatal ...
    assert (run_dir / "run.json").exists(), f"run.json missing after the tracking failure ({err!r})"
    assert err is None, f"a tracking failure after training must not fail the study: {err!r}"
    facts = json.loads((run_dir / "run.json").read_text())
    assert facts["units"]["ran"] == 3
    out = capsys.readouterr().out
    assert "backfill" in out  # the user is told the one command that recovers
    # ... and one command logs everything to a store that works.
    local = tracking.default_uri(run_dir)
    assert tracking.main(["backfill", str(run_dir), "--uri", local]) == 0
    _, cells, folds = nested_runs(local)
    assert len(cells) == 1 and len(folds) == 3
