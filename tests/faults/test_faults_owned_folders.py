"""Hostile input, round two (issue 24): nothing clobbered, nothing trusted blindly.

- A name recorded in ``.dualflow-run`` never reaches out of its folder (item 1).
- A symbolic link at a name the suite writes (the lock, the write probe, a table) is refused before
  anything is written; the lock is never opened through one (item 2).
- A folder is adopted only on proof the suite wrote it: names alone prove nothing (item 3).
- A unit record is checked against the run's own sample table: its fold's clips exactly, the
  table's labels (item 6); ``n_test: true`` is not a count.
- A label too long for a file name still gets its MEGC log (item 9).
- A run directory inside its report folder, or a second study writing the same report, is refused
  before any training (item 15).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from bench.core.config import ConfigError
from bench.run import main, run_study
from bench.runtime import rundir

TINY = [
    "study=smoke",
    "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
    "study.representations=[single_phase]",
    "trainer.epochs=1", "flow.size=32", "tracking=none", "report=false", "progress=false",
]


def _units(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "units").glob("*.json"))


# -- item 1: recorded names stay in their folder ---------------------------------------------------

def test_recorded_prediction_names_never_delete_outside_the_folder(tmp_path, run_overrides):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run_dir = run_study([*TINY, *run_overrides])
    marker = rundir.read_marker(run_dir, rundir.RUN_MARKER)
    rel = os.path.relpath(victim, run_dir / "predictions")
    marker["files"]["predictions"] += [rel, str(victim), "../" * 12 + str(victim).lstrip("/")]
    (run_dir / rundir.RUN_MARKER).write_text(json.dumps(marker))
    run_study([*TINY, *run_overrides])
    assert victim.read_text() == "precious\n"
    assert all(rundir.confined_name(n) for n in rundir.run_files(run_dir, "predictions"))


def test_confined_name():
    assert rundir.confined_name("synthetic__tvl1.txt")
    for bad in ("", ".", "..", "../x.txt", "/etc/passwd", "a/b.txt", "a\\b.txt", "x\0y"):
        assert not rundir.confined_name(bad), bad


# -- item 2: no link followed --------------------------------------------------------------------

@pytest.mark.parametrize("name", [rundir.LOCK_FILE, ".write_probe", "results.parquet", "predictions"])
def test_a_link_at_a_suite_name_is_refused_and_its_target_untouched(tmp_path, run_overrides, capsys, name):
    run_dir = run_study([*TINY, *run_overrides])
    target = tmp_path / "target"
    target.write_bytes(b"precious")
    import shutil

    path = run_dir / name
    if path.is_dir():
        shutil.rmtree(path)
    path.unlink(missing_ok=True)
    path.symlink_to(target)
    capsys.readouterr()
    assert main([*TINY, *run_overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to write into") and "symbolic link" in err and name in err
    assert target.read_bytes() == b"precious"
    assert (run_dir / name).is_symlink()  # not removed either: the user decides


def test_the_lock_is_never_opened_through_a_link(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"precious")
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / rundir.LOCK_FILE).symlink_to(target)
    with pytest.raises(ConfigError, match="symbolic link"):
        with rundir.locked(folder):
            pass
    with pytest.raises(ConfigError, match="symbolic link"):  # a reader does not follow it either
        rundir.check_not_locked(folder, purpose="read")
    assert target.read_bytes() == b"precious"


def test_the_write_probe_replaces_a_link_without_writing_its_target(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"precious")
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / ".write_probe").symlink_to(target)
    rundir.check_output_dir(folder)
    assert target.read_bytes() == b"precious" and not (folder / ".write_probe").exists()


def test_a_table_written_over_a_link_replaces_the_link(tmp_path):
    from bench.core.files import atomic_write_text

    target = tmp_path / "target"
    target.write_text("precious")
    (tmp_path / "link").symlink_to(target)
    atomic_write_text(tmp_path / "link", "new")
    assert target.read_text() == "precious" and (tmp_path / "link").read_text() == "new"
    assert not (tmp_path / "link").is_symlink()


# -- item 3: adopt only on proof ------------------------------------------------------------------

def test_a_users_folder_of_suite_names_is_not_adopted(tmp_path, session_cache, capsys):
    d = tmp_path / "mine"
    (d / "predictions").mkdir(parents=True)
    (d / "predictions" / "final.txt").write_text("my final predictions\n")
    (d / "results.parquet").write_bytes(b"PAR1 mine")
    (d / "config.yaml").write_text("mine: true\n")
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    assert main([*TINY, f"run_dir={d}", f"paths.cache={session_cache}"]) == 2
    assert "refusing to write into" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before


def test_an_adopted_older_run_keeps_logs_it_cannot_prove_it_wrote(tmp_path, run_overrides, capsys):
    run_dir = run_study([*TINY, *run_overrides])
    (run_dir / rundir.RUN_MARKER).unlink()  # an older suite's run directory: units/, tables, no marker
    (run_dir / rundir.LOCK_FILE).unlink()
    (run_dir / "predictions" / "final.txt").write_text("a log without the suite's companion\n")
    run_study([*TINY, *run_overrides])
    assert "adopted" in capsys.readouterr().out
    assert (run_dir / "predictions" / "final.txt").read_text() == "a log without the suite's companion\n"


# -- item 6: records checked against the run's own sample table -----------------------------------

def _tamper(run_dir: Path, fn) -> None:
    p = _units(run_dir)[0]
    rec = json.loads(p.read_text())
    fn(rec)
    p.write_text(json.dumps(rec))


@pytest.mark.parametrize("how", ["drop_one", "relabel", "perfect", "foreign_clip", "n_test_bool"])
def test_a_tampered_record_is_redone_not_pooled(tmp_path, run_overrides, capsys, how):
    import pandas as pd

    run_dir = run_study([*TINY, *run_overrides])
    honest = pd.read_parquet(run_dir / "predictions.parquet")

    def tamper(rec):
        preds = rec["predictions"]
        if how == "drop_one":
            preds.pop()
            rec["row"]["n_test"] = len(preds)
        elif how == "relabel":
            preds[0]["y_true"] = (preds[0]["y_true"] + 1) % 3
        elif how == "perfect":
            for pr in preds:
                pr["y_true"] = pr["y_pred"]
        elif how == "foreign_clip":
            preds[0]["clip"] = "no_such_clip"
        elif how == "n_test_bool":
            rec["row"]["n_test"] = True
            del preds[1:]

    _tamper(run_dir, tamper)
    capsys.readouterr()
    run_study([*TINY, *run_overrides])
    out = capsys.readouterr().out
    assert "is not a valid unit record" in out and "redoing that unit" in out
    again = pd.read_parquet(run_dir / "predictions.parquet")
    pd.testing.assert_frame_equal(again, honest)  # the redone unit is the honest one, bit for bit


# -- item 9: a label too long for a file name ------------------------------------------------------

def test_a_very_long_label_still_gets_its_log(tmp_path, run_overrides):
    label = "x" * 300
    run_dir = run_study([*TINY[:2], f"study.representations=[{{option: single_phase, label: {label}}}]",
                         *TINY[3:], *run_overrides])
    logs = sorted(p.name for p in (run_dir / "predictions").glob("*.txt"))
    assert len(logs) == 1 and len(logs[0].encode()) <= 200 and (run_dir / "run.json").is_file()
    from bench.runner.outputs import log_name

    assert log_name(["a", label]) != log_name(["a", label + "y"])  # still one name per cell
    assert log_name(["synthetic", "tvl1"]) == "synthetic__tvl1.txt"  # short names as before


# -- item 15: refused before training --------------------------------------------------------------

def test_a_run_dir_inside_its_report_folder_is_refused_before_training(tmp_path, session_cache, capsys):
    reports = tmp_path / "reports"
    args = [*TINY, "report=true", f"paths.reports={reports}", f"paths.cache={session_cache}"]
    assert main([*args, f"run_dir={reports / 'smoke' / 'run'}"]) == 2
    assert "inside the reports folder" in capsys.readouterr().err
    assert not (reports / "smoke" / "run" / "units").exists()
    assert main([*args, f"run_dir={reports / 'smoke'}"]) == 2
    assert "same folder" in capsys.readouterr().err


def test_a_second_study_writing_the_same_report_is_refused_at_once(tmp_path, session_cache, capsys):
    reports = tmp_path / "reports"
    (reports / "smoke").mkdir(parents=True)
    with rundir.locked(reports / "smoke", command="another study"):  # held by this thread: like a second process
        rundir._HELD.clear()  # forget it is ours, so the study below sees a foreign holder
        try:
            code = main([*TINY, "report=true", f"paths.reports={reports}", f"run_dir={tmp_path / 'run2'}",
                         f"paths.cache={session_cache}"])
        finally:
            rundir._HELD[os.path.realpath(reports / "smoke")] = 1
    assert code == 2
    assert "is in use by" in capsys.readouterr().err
    assert not _units(tmp_path / "run2")  # nothing trained
