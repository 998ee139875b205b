"""Run the planned units on the configured executor, persisting each record as it arrives."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from bench.core.config import to_container
from bench.results.tables import UnitStore
from bench.runtime.executors import StudyInterrupted, make_executor
from bench.runtime.progress import progress_bar
from bench.training.units import check_tasks


class _Progress:
    """Two bars (cells, folds) fed by each finished record; the failed rows are kept. Off a terminal
    (``bench.runtime.progress``) they are plain lines: one per finished cell, one every few folds."""

    def __init__(self, cell_units: dict[str, int], n_tasks: int, enabled: bool, stream=None):
        self.cells = progress_bar(total=len(cell_units), desc="cells", unit="cell", enabled=enabled, position=0,
                                  every=1, stream=stream)
        self.units = progress_bar(total=n_tasks, desc="folds", unit="fold", enabled=enabled, position=1,
                                  stream=stream)
        self.left = dict(cell_units)
        self.failed: list[dict] = []

    def done(self, task, rec: dict) -> None:
        self.units.set_postfix_str(f"{rec['row'].get('cell', '')} fold {task.fold}", refresh=False)
        self.units.update(1)
        self.left[task.cell] -= 1
        if self.left[task.cell] == 0:
            self.cells.set_postfix_str(f"{rec['row'].get('cell', '')} done", refresh=False)
            self.cells.update(1)
        if rec["row"].get("status") != "ok":
            self.failed.append(rec["row"])

    def close(self) -> None:
        self.units.close()
        self.cells.close()


def run_units(units, store: UnitStore, executor_cfg, run_dir: Path, progress: bool, out) -> tuple[list[dict], float]:
    """Run ``units.tasks``; returns the failed rows and the training seconds. Ctrl-C / SIGTERM keep
    every finished record and raise ``StudyInterrupted`` saying how many were kept."""
    t0 = time.perf_counter()
    bar = _Progress(units.cell_units, len(units.tasks), progress and bool(units.tasks))

    def on_result(task, rec):
        store.save(rec)
        bar.done(task, rec)

    try:
        if units.tasks:
            _start(units.tasks, executor_cfg, on_result, out)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM through main(): keep what finished, say so
        signum = getattr(e, "signum", signal.SIGINT)
        kept = sum(store.is_done(k) for k in units.keys)
        raise StudyInterrupted(signum, f"interrupted ({signal.Signals(signum).name}): {kept} of {len(units.keys)} "
                                       f"units finished and kept in {run_dir}; rerun the same command to resume"
                               ) from None
    finally:
        bar.close()
    return bar.failed, time.perf_counter() - t0


def _start(tasks: list, executor_cfg, on_result, out) -> None:
    check_tasks(tasks)  # what every unit of a cell would fail on, known now the data is loaded
    executor = make_executor(to_container(executor_cfg))
    note = executor.cap_note(len(tasks)) if hasattr(executor, "cap_note") else None
    if note:
        print(note, file=out)
    executor.run(tasks, on_result)
