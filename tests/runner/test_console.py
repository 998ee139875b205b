"""The console off a terminal (issue 28, item 1): progress as plain lines, no cursor movements.

When stderr is a file (CI, ``nohup``, ``2>log``), tqdm's nested bars would write carriage returns and
cursor-up sequences that end up as one interleaved line; ``bench.runtime.progress`` writes one line
per finished cell and one every few folds instead, and keeps tqdm's bars on a terminal.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.runner.execute import _Progress
from bench.runtime.progress import PLAIN_LINES, PlainProgress, progress_bar

REPO = Path(__file__).resolve().parents[2]
CURSOR = re.compile(r"\x1b\[|\r")  # any escape sequence (cursor up, erase line) or carriage return


class _Task:
    def __init__(self, cell: str, fold: str):
        self.cell, self.fold = cell, fold


def test_off_a_terminal_the_bars_are_plain_lines_one_per_cell_and_every_few_folds():
    stream = io.StringIO()  # not a terminal, like a redirected stderr
    cells = {"a": 20, "b": 20, "c": 20}
    bar = _Progress(cells, sum(cells.values()), enabled=True, stream=stream)
    for cell, n in cells.items():
        for k in range(n):
            bar.done(_Task(cell, f"s{k:02d}"), {"row": {"cell": cell, "status": "ok"}})
    bar.close()
    text = stream.getvalue()
    assert not CURSOR.search(text), repr(text[:300])
    lines = text.splitlines()
    cell_lines = [ln for ln in lines if ln.startswith("cells: ")]
    fold_lines = [ln for ln in lines if ln.startswith("folds: ")]
    assert [ln.split(" [")[0] for ln in cell_lines] == ["cells: 1/3 cell (a done)", "cells: 2/3 cells (b done)",
                                                        "cells: 3/3 cells (c done)"]
    # 60 folds, a line every 6 (PLAIN_LINES lines in all), the last one naming the last fold
    assert len(fold_lines) == PLAIN_LINES
    assert fold_lines[0].startswith("folds: 6/60 folds (a fold s05)")
    assert fold_lines[-1].startswith("folds: 60/60 folds (c fold s19)")


def test_progress_bar_is_tqdm_on_a_terminal_and_plain_lines_elsewhere(tmp_path):
    from tqdm.auto import tqdm

    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=True) as tty:
            bar = progress_bar(total=3, desc="flow", unit="sample", stream=tty)
            assert isinstance(bar, tqdm)  # the bars stay as they are on a terminal
            bar.close()
    finally:
        os.close(master)
    with open(tmp_path / "log", "w") as f:
        plain = progress_bar(range(4), desc="flow (precomputed)", unit="sample", stream=f)
        assert isinstance(plain, PlainProgress)
        assert list(plain) == [0, 1, 2, 3]
    assert (tmp_path / "log").read_text().splitlines()[-1].startswith("flow (precomputed): 4/4 samples [")
    quiet = io.StringIO()
    for _ in progress_bar(range(3), desc="x", enabled=False, stream=quiet):
        pass
    assert quiet.getvalue() == ""  # progress=false: nothing


def test_a_count_stopped_between_two_lines_is_shown_at_close():
    stream = io.StringIO()
    bar = PlainProgress(total=100, desc="folds", unit="fold", every=10, stream=stream)
    bar.update(25)  # one line at 25 (>= 10 since the last), none after
    bar.update(3)
    bar.close()
    assert [ln.split(" [")[0] for ln in stream.getvalue().splitlines()] == ["folds: 25/100 folds", "folds: 28/100 folds"]


@pytest.mark.slow
def test_a_study_with_stderr_in_a_file_writes_no_cursor_movements(tmp_path, session_cache):
    """The real command, stderr redirected to a file: flows, folds and cells as plain lines."""
    argv = ["study=smoke", f"run_dir={tmp_path / 'run'}", f"paths.cache={session_cache}", "tracking=none",
            "report=false", "progress=true", "trainer.epochs=1", "flow.size=32", "study.representations=[single_phase]",
            "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, "
            "size: 48}}]"]
    with open(tmp_path / "err.log", "w") as err:
        proc = subprocess.run([sys.executable, "-m", "bench.run", *argv], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=err, text=True, timeout=600)
    log = (tmp_path / "err.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    assert not CURSOR.search(log), repr(log[:500])
    lines = log.splitlines()
    assert any(ln.startswith("cells: 1/1 cell (") for ln in lines), log
    assert any(ln.startswith("folds: 3/3 folds (") for ln in lines), log
