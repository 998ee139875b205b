"""Resume (issues 5 and 7): a study killed mid-run (SIGKILL, worker processes included) and rerun
with the same command skips every finished unit, redoes torn or failed ones, and ends with the same
results and predictions tables as an uninterrupted run.

Units are bitwise deterministic for the same seed and thread count (see ``bench.training.engine``), so the
tables are compared exactly apart from the wall-clock timing columns; probabilities get a tight
tolerance only because parquet round-trips floats through float64 (exact anyway in practice).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.results.tables import UnitStore, read_tables
from bench.run import run_study

TIMING = ["train_seconds", "predict_seconds", "tune_seconds"]

# The smoke study shrunk to seconds: 3 subjects x 3 classes x 1 clip, 32 px flows, one epoch.
TINY = [
    "study=smoke",
    "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
    "study.representations=[single_phase,two_phase_stack]",
    "trainer.epochs=1", "flow.size=32", "tracking=none", "report=false", "progress=false",
]


def assert_same_tables(dir_a: Path, dir_b: Path) -> None:
    """Results and predictions equal, timing columns aside (y_pred exact, probabilities to 1e-6)."""
    ra, pa = read_tables(dir_a)
    rb, pb = read_tables(dir_b)
    assert len(ra) and (ra["status"] == "ok").all(), ra["error"].tolist()
    pd.testing.assert_frame_equal(ra.drop(columns=TIMING), rb.drop(columns=TIMING))
    prob = [c for c in pa.columns if c.startswith("prob_")]
    assert prob, "predictions carry no probability columns"
    pd.testing.assert_frame_equal(pa.drop(columns=prob), pb.drop(columns=prob))
    np.testing.assert_allclose(pa[prob].to_numpy(float), pb[prob].to_numpy(float), rtol=0, atol=1e-6)


def _units(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "units").glob("*.json"))


def test_resume_skips_finished_and_redoes_missing_torn_and_failed_units(tmp_path, session_cache, capsys):
    paths = [f"paths.cache={session_cache}", f"paths.reports={tmp_path / 'reports'}"]
    ref = run_study([*TINY, *paths, f"paths.runs={tmp_path / 'ref'}"])
    run_dir = run_study([*TINY, *paths, f"paths.runs={tmp_path / 'runs'}"])
    capsys.readouterr()
    files = _units(run_dir)
    assert len(files) == 6  # 2 representations x 3 LOSO folds

    store = UnitStore(run_dir)
    files[0].unlink()  # never written (killed before it finished)
    files[1].write_text(files[1].read_text()[:100])  # torn (a write cut short, outside the atomic path)
    rec = json.loads(files[2].read_text())  # failed last time: a rerun must retry it
    rec["row"].update(status="failed", error="Traceback: boom")
    files[2].write_text(json.dumps(rec))
    assert not store.is_done(files[1].stem) and not store.is_done(files[2].stem)
    before = {f.name: f.stat().st_mtime_ns for f in files[3:]}

    run_study([*TINY, *paths, f"paths.runs={tmp_path / 'runs'}"])
    out = capsys.readouterr().out
    assert re.search(r"resume: 3 finished unit\(s\) found in .*units, 3 to run", out), out
    facts = json.loads((run_dir / "run.json").read_text())
    assert facts["units"] == {"total": 6, "ran": 3, "resumed": 3, "failed": 0}
    # finished units were not rewritten; the three others were
    assert {f.name: f.stat().st_mtime_ns for f in files[3:]} == before
    assert all(store.is_done(f.stem) for f in files)
    assert_same_tables(ref, run_dir)


def test_resume_false_reruns_everything(tmp_path, session_cache, capsys):
    paths = [f"paths.cache={session_cache}", f"paths.runs={tmp_path / 'runs'}", f"paths.reports={tmp_path / 'r'}",
             "study.representations=[single_phase]"]
    run_study([*TINY, *paths])
    run_study([*TINY, *paths, "resume=false"])
    out = capsys.readouterr().out
    assert "resume:" not in out
    facts = json.loads((tmp_path / "runs" / "smoke" / "run.json").read_text())
    assert facts["units"]["ran"] == 3 and facts["units"]["resumed"] == 0


def _cmd(runs: Path, cache: Path, reports: Path) -> list[str]:
    return [sys.executable, "-m", "bench.run", "study=smoke", f"paths.runs={runs}", f"paths.cache={cache}",
            f"paths.reports={reports}", "tracking=none", "report=false", "progress=false", "executor.workers=2"]


@pytest.mark.ci
@pytest.mark.slow
def test_sigkill_mid_study_resumes_to_the_same_table(tmp_path, session_cache):
    """SIGKILL the whole process group (runner + spawned workers) once some units are on disk."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Uninterrupted reference first (it also fills the shared flow cache, so the killed run trains
    # almost at once and the kill lands among the folds, not in flow extraction).
    ref = subprocess.run(_cmd(tmp_path / "ref", session_cache, tmp_path / "rep"), cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    n_total = len(_units(tmp_path / "ref" / "smoke"))
    assert n_total == 8

    run_dir = tmp_path / "runs" / "smoke"
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(_cmd(tmp_path / "runs", session_cache, tmp_path / "rep"), cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    done_at_kill = 0
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            done_at_kill = len(_units(run_dir)) if (run_dir / "units").is_dir() else 0
            if done_at_kill >= 1:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        log.close()
    assert proc.returncode == -signal.SIGKILL, f"the study ended before the kill:\n{(tmp_path / 'killed.log').read_text()[-3000:]}"
    left = len(_units(run_dir))
    assert 1 <= left < n_total, f"{left} of {n_total} units finished before the kill; nothing to resume"
    assert not (run_dir / "results.parquet").exists()

    again = subprocess.run(_cmd(tmp_path / "runs", session_cache, tmp_path / "rep"), cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    m = re.search(r"resume: (\d+) finished unit\(s\) found in .*, (\d+) to run", again.stdout)
    assert m, again.stdout
    resumed, to_run = int(m.group(1)), int(m.group(2))
    assert resumed == left and resumed + to_run == n_total
    facts = json.loads((run_dir / "run.json").read_text())
    assert facts["units"]["ran"] == to_run and facts["units"]["resumed"] == resumed
    assert_same_tables(tmp_path / "ref" / "smoke", run_dir)
