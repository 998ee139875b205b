"""Run and report folders (issue 12): the suite writes only into folders it owns, deletes only files
it wrote, lets one writer at a time into a run directory, and completes an interrupted MLflow
logging instead of calling it done.

- Ownership: a non-empty folder without the suite's marker (``.dualflow-run``, ``.dualflow-report``)
  is refused before any work, and nothing in it is touched; an empty folder is claimed; a run
  directory of an older suite (no marker, the suite's layout) is adopted and resumes.
- Locking: a study (and ``bench.tracking.mlflow_store backfill``) holds an exclusive flock on the run directory;
  a second writer exits 2 naming the holder's pid; a lock left by a killed process never blocks.
- Tracking: a study run is marked complete only after all its children; backfill completes a
  partial one, so every cell and fold run is in the store exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.runtime import rundir

from bench.tracking import mlflow_store as tracking
from bench.core.config import ConfigError
from bench.report import ReportOptions, make_report
from bench.report.__main__ import main as report_main
from bench.results.tables import read_tables, write_tables
from bench.run import main, run_study
from tests.helpers.fabricate import fabricate_run

ROOT = Path(__file__).resolve().parents[2]

# The smoke study shrunk to seconds: 3 subjects x 3 classes x 1 clip, 32 px flows, one epoch.
TINY = [
    "study=smoke",
    "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
    "study.representations=[single_phase]",
    "trainer.epochs=1", "flow.size=32", "tracking=none", "report=false", "progress=false",
]
TWO_CELLS = [*TINY[:2], "study.representations=[single_phase,two_phase_stack]", *TINY[3:]]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def user_folder(folder: Path) -> dict[str, bytes]:
    """A user's folder holding names the suite also writes."""
    (folder / "predictions").mkdir(parents=True)
    (folder / "predictions" / "mine.txt").write_text("my own predictions\n")
    (folder / "config.yaml").write_text("mine: true\n")
    (folder / "results.csv").write_text("a,b\n1,2\n")
    (folder / "notes.md").write_text("# my notes\n")
    return snapshot(folder)


def _cli(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=kw.pop("timeout", 300), **kw)


# -- item 2: folders the suite owns ----------------------------------------------------------------

def test_run_dir_dot_in_a_users_folder_is_refused_and_nothing_touched(tmp_path, session_cache, monkeypatch, capsys):
    proj = tmp_path / "project"
    before = user_folder(proj)
    monkeypatch.chdir(proj)
    assert main([*TINY, "run_dir=.", f"paths.cache={tmp_path / 'cache'}", f"paths.reports={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to write into .") and "no .dualflow-run marker" in err
    assert "run_dir=" in err and "empty" in err  # how to proceed
    assert snapshot(proj) == before  # no file changed, none added (no marker, no lock file)
    assert not (tmp_path / "cache").exists()  # refused before any data or flow work


def test_empty_folder_is_claimed_and_only_the_suites_own_logs_are_deleted(tmp_path, run_overrides):
    run_dir = tmp_path / "mine"
    run_dir.mkdir()  # an existing, empty folder may be claimed
    run_study([*TWO_CELLS, *run_overrides, f"run_dir={run_dir}"])
    marker = rundir.read_marker(run_dir, rundir.RUN_MARKER)
    assert marker["owner"] == "dualflow-bench" and marker["kind"] == "run"
    logs = sorted(p.name for p in (run_dir / "predictions").glob("*.txt"))
    assert len(logs) == 2 and set(marker["files"]["predictions"]) >= set(logs)
    (run_dir / "predictions" / "mine.txt").write_text("a user's file in the suite's folder\n")
    # the same run dir, one cell fewer: that cell's log is stale and goes; the user's file stays
    run_study([*TINY, *run_overrides, f"run_dir={run_dir}"])
    now = sorted(p.name for p in (run_dir / "predictions").glob("*.txt"))
    assert now == sorted([next(n for n in logs if "single_phase" in n), "mine.txt"])
    assert (run_dir / "predictions" / "mine.txt").read_text() == "a user's file in the suite's folder\n"


def test_run_dir_of_an_older_suite_is_adopted_and_resumes(tmp_path, run_overrides, capsys):
    run_dir = run_study([*TINY, *run_overrides])
    (run_dir / rundir.RUN_MARKER).unlink()  # as an older version left it: units/, tables, no marker
    (run_dir / rundir.LOCK_FILE).unlink()
    capsys.readouterr()
    run_study([*TINY, *run_overrides])
    out = capsys.readouterr().out
    assert "older dualflow-bench" in out and "adopted" in out
    assert "resume: 3 finished unit(s)" in out
    assert rundir.read_marker(run_dir, rundir.RUN_MARKER)["adopted"]
    assert rundir.check_run_dir(run_dir) == "owned"


def test_legacy_layout_with_a_foreign_file_is_refused(tmp_path):
    d = tmp_path / "old"
    (d / "units").mkdir(parents=True)
    (d / "results.parquet").write_bytes(b"")
    with pytest.raises(ConfigError, match="refusing to write into"):  # names alone prove nothing (issue 24)
        rundir.check_run_dir(d)
    (d / "units" / "abc123.json").write_text(json.dumps({"row": {"unit_key": "abc123", "cell_hash": "c"}}))
    assert rundir.check_run_dir(d) == "legacy"  # a unit record the suite wrote proves the layout
    (d / "thesis.tex").write_text("")
    with pytest.raises(ConfigError, match=r"refusing to write into .*old.*thesis.tex"):
        rundir.check_run_dir(d)


def test_report_out_that_is_a_users_folder_is_refused(tmp_path, capsys):
    run = fabricate_run(tmp_path, aux=False, examples=False, seeds=(0,))
    out = tmp_path / "paper"
    for rel in ("figures/fig1.png", "tables/tab1.csv", "tables/tab1.tex"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(b"the user's " + rel.encode())
    before = snapshot(out)
    assert report_main([str(run), "--out", str(out), "--n-boot", "10", "--no-pdf", "-q"]) == 2
    err = capsys.readouterr().err
    assert "refusing to write into" in err and str(out) in err and "--out" in err
    assert snapshot(out) == before


def test_report_deletes_only_files_a_report_of_the_suite_wrote(tmp_path):
    out = tmp_path / "rep"
    first = make_report(fabricate_run(tmp_path / "a", examples=False, seeds=(0,)), out,
                        ReportOptions(n_boot=10, pdf=False))
    assert (first / "figures" / "fusion_weights.png").exists()  # drawn from aux.npz
    recorded = set(rundir.read_marker(out, rundir.REPORT_MARKER)["files"])
    assert "figures/fusion_weights.png" in recorded and "report.md" in recorded
    (out / "figures" / "mine.png").write_bytes(b"the user's figure")
    (out / "tables" / "mine.csv").write_text("x\n1\n")
    make_report(fabricate_run(tmp_path / "b", aux=False, examples=False, seeds=(0,)), out,
                ReportOptions(n_boot=10, pdf=False))
    assert not (out / "figures" / "fusion_weights.png").exists()  # the suite's own stale figure goes
    assert (out / "figures" / "mine.png").read_bytes() == b"the user's figure"  # the user's stay
    assert (out / "tables" / "mine.csv").read_text() == "x\n1\n"
    assert "figures/fusion_weights.png" not in rundir.read_marker(out, rundir.REPORT_MARKER)["files"]


def test_study_refuses_a_foreign_reports_folder_before_any_work(tmp_path, capsys):
    reports = tmp_path / "reports"
    before = user_folder(reports / "smoke")
    args = [*[a for a in TINY if a != "report=false"], "report=true", f"paths.runs={tmp_path / 'runs'}",
            f"paths.reports={reports}", f"paths.cache={tmp_path / 'cache'}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "refusing to write into" in err and str(reports / "smoke") in err and "paths.reports=" in err
    assert snapshot(reports / "smoke") == before
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs" / "smoke" / "units").exists()


def test_the_committed_example_report_is_recognised_as_the_suites():
    assert rundir.check_report_dir(ROOT / "reports" / "ablation_phases") in ("legacy", "owned")


# -- item 5: one writer per run directory ----------------------------------------------------------

def test_second_writer_is_refused_with_the_holders_pid_and_nothing_lost(tmp_path, run_overrides):
    run_dir = run_study([*TINY, *run_overrides])
    before = snapshot(run_dir)
    cwd = tmp_path
    with rundir.locked(run_dir, command="a study holding the lock"):
        r = _cli(["bench.run", *[a for a in TINY if a != "tracking=none"], "tracking=mlflow", *run_overrides], cwd)
        assert r.returncode == 2, r.stderr[-2000:]
        assert f"pid {os.getpid()}" in r.stderr and "a study holding the lock" in r.stderr
        assert "Traceback" not in r.stderr and "alembic" not in r.stderr and "not reachable" not in r.stderr
        b = _cli(["bench.tracking.mlflow_store", "backfill", str(run_dir)], cwd)
        assert b.returncode == 2 and f"pid {os.getpid()}" in b.stderr, b.stderr[-2000:]
        rep = _cli(["bench.report", str(run_dir), "--out", str(tmp_path / "rep"), "--no-pdf", "-q"], cwd)
        assert rep.returncode == 2 and f"pid {os.getpid()}" in rep.stderr, rep.stderr[-2000:]
    held = {k: v for k, v in snapshot(run_dir).items() if k != rundir.LOCK_FILE}
    assert held == {k: v for k, v in before.items() if k != rundir.LOCK_FILE}  # nothing of the first lost
    assert not (run_dir / "mlflow.db").exists()  # the refused run created no store
    assert not (tmp_path / "rep").exists()


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path, run_overrides):
    d = tmp_path / "runs" / "smoke"
    d.mkdir(parents=True)
    code = ("import os, sys; from bench.runtime.rundir import locked\n"
            "with locked(sys.argv[1], command='doomed'):\n    os.kill(os.getpid(), 9)\n")
    r = subprocess.run([sys.executable, "-c", code, str(d)], cwd=ROOT, timeout=120)
    assert r.returncode == -signal.SIGKILL
    assert json.loads((d / rundir.LOCK_FILE).read_text())["command"] == "doomed"  # its record is left ...
    run_study([*TINY, *run_overrides])  # ... and blocks nothing: the kernel released the flock
    assert (d / "results.parquet").exists()
    assert (d / rundir.LOCK_FILE).read_text() == ""  # released: names no holder


def test_write_tables_of_two_writers_at_once_do_not_collide(tmp_path, monkeypatch):
    """Two writers each write their temporary file, then both replace: a shared fixed temporary
    name made the second replace fail with FileNotFoundError."""
    df = pd.DataFrame({"a": [1, 2]})
    barrier = threading.Barrier(2, timeout=30)
    real = pd.DataFrame.to_parquet

    def slow_to_parquet(self, path, *a, **kw):
        real(self, path, *a, **kw)
        barrier.wait()  # both temporary files are written before either is moved into place

    monkeypatch.setattr(pd.DataFrame, "to_parquet", slow_to_parquet)
    errors = []

    def write():
        try:
            write_tables(tmp_path, df, df)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert read_tables(tmp_path)[0].equals(df)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


@pytest.mark.slow
@pytest.mark.ci
def test_two_concurrent_studies_into_one_run_dir(tmp_path, session_cache):
    """Real processes: the second study is refused at once (exit 2, the first's pid), the first
    finishes and loses nothing."""
    paths = [f"paths.runs={tmp_path / 'runs'}", f"paths.cache={session_cache}", f"paths.reports={tmp_path / 'r'}"]
    args = [*TWO_CELLS[:-5], "trainer.epochs=300", *TWO_CELLS[-4:], *paths]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    first = subprocess.Popen([sys.executable, "-m", "bench.run", *args], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "runs" / "smoke" / rundir.LOCK_FILE
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first.poll() is None:
            try:
                if json.loads(lock.read_text() or "{}").get("pid") == first.pid:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        assert first.poll() is None, "the first study ended before the second could start"
        second = _cli(["bench.run", *args], tmp_path)
        still_running = first.poll() is None
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert still_running, "the studies did not overlap; make the first one longer"
        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err[-3000:]
    results, preds = read_tables(tmp_path / "runs" / "smoke")
    assert len(results) == 6 and (results["status"] == "ok").all() and len(preds) == 18


# -- item 6: interrupted MLflow logging is completed -----------------------------------------------

def _store(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    cells = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in {p.info.run_id for p in parents}]
    folds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in {c.info.run_id for c in cells}]
    return client, parents, cells, folds


def _assert_logged_once(run_dir: Path) -> None:
    client, parents, cells, folds = _store(tracking.default_uri(run_dir))
    results, _ = read_tables(run_dir)
    assert len(parents) == 1 and parents[0].data.tags[tracking.COMPLETE] == "true"
    assert sorted(c.data.tags["cell"] for c in cells) == sorted(results["cell"].unique())  # run names are short
    by_cell = {c.info.run_id: c.data.tags["cell"] for c in cells}
    got = sorted((by_cell[f.data.tags["mlflow.parentRunId"]], f.data.params["fold"]) for f in folds)
    assert got == sorted(zip(results["cell"], results["fold"].astype(str)))  # every fold exactly once
    assert all(f.data.metrics.get("fold_uf1") is not None for f in folds)


def test_interrupted_logging_is_completed_by_backfill(tmp_path, run_overrides, monkeypatch, capsys):
    run_dir = run_study([*TWO_CELLS, *run_overrides])  # 2 cells x 3 folds, nothing logged yet
    real, calls = tracking._log_fold, []

    def dies_after_four(*a, **kw):
        if len(calls) == 4:
            raise RuntimeError("the tracking server went away")
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(tracking, "_log_fold", dies_after_four)
    with pytest.raises(RuntimeError, match="went away"):
        tracking.main(["backfill", str(run_dir)])
    monkeypatch.setattr(tracking, "_log_fold", real)
    _, parents, cells, folds = _store(tracking.default_uri(run_dir))
    assert len(parents) == 1 and parents[0].data.tags[tracking.COMPLETE] == "false" and len(folds) == 4
    capsys.readouterr()

    assert tracking.main(["backfill", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("completed: experiment smoke") and "interrupted" in out
    assert "kept its 1 complete cell run(s), logged the 1 missing one(s), deleted 2 incomplete run(s)" in out
    _assert_logged_once(run_dir)
    assert tracking.main(["backfill", str(run_dir)]) == 0
    assert capsys.readouterr().out.startswith("already logged")
    _assert_logged_once(run_dir)


def test_a_partial_run_of_the_older_logger_is_completed(tmp_path, run_overrides, capsys):
    """The older logger tagged the study run with the results hash first and terminated it last."""
    run_dir = run_study([*TWO_CELLS, *run_overrides])
    assert tracking.main(["backfill", str(run_dir)]) == 0
    client, parents, cells, folds = _store(tracking.default_uri(run_dir))
    for r in (*parents, *cells, *folds):  # runs of the older logger carry no completeness tag
        client.delete_tag(r.info.run_id, tracking.COMPLETE)
    client.update_run(parents[0].info.run_id, status="RUNNING")  # interrupted: never terminated
    gone = cells[0]
    for f in folds:
        if f.data.tags["mlflow.parentRunId"] == gone.info.run_id:
            client.delete_run(f.info.run_id)
    client.delete_run(gone.info.run_id)  # one cell never logged ...
    half = cells[1]
    client.update_run(half.info.run_id, status="RUNNING")  # ... the other interrupted after its folds
    capsys.readouterr()
    assert tracking.main(["backfill", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("completed:") and "deleted 4 incomplete run(s)" in out  # the half cell and its folds
    _assert_logged_once(run_dir)
