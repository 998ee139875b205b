"""Executors: run units of work in local worker processes or as Ray tasks.

Both call the same ``bench.units.run_unit`` and hand each finished record to ``on_result`` as soon
as it arrives (the runner persists it at once, which is what makes resume work).
"""

from __future__ import annotations

import dataclasses
import faulthandler
import logging
import multiprocessing as mp
import os
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable

from bench.units import UnitTask, failure_record, run_unit

log = logging.getLogger(__name__)


class StudyStopped(RuntimeError):
    """``on_error: stop`` and a unit failed."""


def _threads(cfg: dict, workers: int) -> int:
    t = cfg.get("threads_per_worker")
    return int(t) if t else max(1, (os.cpu_count() or 1) // max(1, workers))


def _init_worker(threads: int) -> None:
    # Set before torch is first imported in the worker so OpenMP does not start a thread per core
    # in every process (2 workers x 2 threads on 2 cores thrash).
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)


CRASH_LOG_LIMIT = 20_000  # characters of a dying worker's faulthandler output kept in the record


def _crash_log_path(task: UnitTask) -> Path | None:
    return Path(task.run_dir) / "units" / f"{task.unit_key}.crash" if task.run_dir else None


def _worker_unit(task: UnitTask, crash_log: bool = True) -> dict:
    """``run_unit`` in a worker process, guarded by ``faulthandler``.

    With ``crash_log``, faulthandler writes to ``units/<key>.crash`` while the unit runs: a Python
    exception is already a record with its traceback, but a death that skips Python (segfault or
    abort in a native library) leaves the dying process's Python stack there. The file is removed
    when the unit returns, so one left behind belongs to a unit whose worker died. With
    ``task.timeout_s``, faulthandler's watchdog (a C thread: it fires even when the unit is stuck in
    a native call that never returns to Python) writes the stack and ends the process.
    """
    path = _crash_log_path(task) if crash_log else None
    if path is None and not task.timeout_s:
        return run_unit(task)
    f = None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "w")  # noqa: SIM115 - must outlive a crash, closed below otherwise
        faulthandler.enable(file=f, all_threads=True)
    if task.timeout_s:
        faulthandler.dump_traceback_later(task.timeout_s, exit=True, file=f or sys.stderr)
    try:
        rec = run_unit(task)
    finally:
        if task.timeout_s:
            faulthandler.cancel_dump_traceback_later()
        if f is not None:
            faulthandler.disable()
            f.close()
    if path is not None:
        path.unlink(missing_ok=True)
    return rec


def _death_note(task: UnitTask) -> str:
    """What a crashed unit's worker left in its crash log, for the failure record (the file is consumed)."""
    path = _crash_log_path(task)
    text = ""
    if path is not None and path.exists():
        try:
            text = path.read_text(errors="replace").strip()
            path.unlink()
        except OSError as e:
            text = f"(crash log {path} unreadable: {e})"
    if text.startswith("Timeout ("):
        return (f"it ran longer than executor.unit_timeout_s={task.timeout_s:g} s and was stopped; its Python stack "
                f"at that moment (faulthandler):\n" + text[-CRASH_LOG_LIMIT:])
    if text:
        return "the dying worker's Python stack (faulthandler):\n" + text[-CRASH_LOG_LIMIT:]
    return ("no Python stack was written: the process was killed (SIGKILL, e.g. by the out-of-memory killer) "
            "or ended through os._exit; see the worker's stderr and the system log")


class LocalExecutor:
    """Parallel worker processes (spawned: forking a process that already runs torch threads can
    deadlock). ``workers: 1`` runs in-process (unless a unit timeout is set: that needs a process to
    end). At most ``workers`` units are in flight, so a worker that dies (segfault, OOM kill, unit
    timeout) can be pinned on few units: they are retried alone, and a unit that kills its worker
    alone is recorded as failed while the study goes on."""

    def __init__(self, cfg: dict):
        self.workers = max(1, int(cfg.get("workers", 1)))
        self.threads = _threads(cfg, self.workers)
        self.on_error = cfg.get("on_error", "continue")
        self.timeout_s = float(cfg.get("unit_timeout_s") or 0)
        if self.timeout_s < 0:
            raise ValueError(f"executor.unit_timeout_s must be >= 0 (0 = none), got {self.timeout_s:g}")

    def run(self, tasks: list[UnitTask], on_result: Callable[[UnitTask, dict], None]) -> None:
        for t in tasks:
            t.threads = self.threads
            t.timeout_s = self.timeout_s
        if self.workers == 1 and not self.timeout_s:
            for t in tasks:
                self._deliver(t, run_unit(t), on_result)
            return
        queue = list(tasks)
        suspects: list[UnitTask] = []
        while queue:
            queue, crashed = self._run_pool(queue, self.workers, on_result)
            suspects.extend(crashed)
        for t in suspects:  # in flight when a worker died: rerun one at a time to find the culprit
            rest, crashed = self._run_pool([t], 1, on_result)
            if crashed:
                self._deliver(t, failure_record(t, "worker process died while running this unit (run alone to confirm: it "
                                            "crashed again); " + _death_note(t)), on_result)

    def _run_pool(self, queue, workers, on_result):
        ctx = mp.get_context("spawn")
        pending = list(queue)
        inflight: dict[Future, UnitTask] = {}
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(self.threads,)) as pool:
            try:
                while pending or inflight:
                    while pending and len(inflight) < workers:
                        t = pending.pop(0)
                        inflight[pool.submit(_worker_unit, t)] = t
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for f in done:
                        rec = f.result()  # BrokenProcessPool here: f stays in flight and is retried alone
                        t = inflight.pop(f)
                        self._deliver(t, rec, on_result)
            except BrokenProcessPool:
                crashed = list(inflight.values())
                log.error("a worker process died; %d unit(s) in flight will be retried alone", len(crashed))
                return pending, crashed
            except BaseException:
                for f in inflight:
                    f.cancel()
                raise
        return [], []

    def _deliver(self, task, rec, on_result):
        on_result(task, rec)
        if rec["row"].get("status") != "ok" and self.on_error == "stop":
            raise StudyStopped(f"unit {task.unit_key} ({rec['row'].get('cell')}, fold {task.fold}) failed:\n"
                               f"{rec['row'].get('error')}")


class RayExecutor:
    """The same units as Ray tasks. Each distinct data array is put in the object store once and
    shared by reference, not copied into every task."""

    def __init__(self, cfg: dict):
        try:
            import ray
        except ImportError as e:  # Ray is an optional extra
            raise RuntimeError("executor=ray needs Ray: pip install 'dualflow-bench[ray]'") from e
        self.ray = ray
        self.cfg = cfg
        self.threads = int(cfg.get("threads_per_worker") or 1)
        self.timeout_s = float(cfg.get("unit_timeout_s") or 0)
        self.on_error = cfg.get("on_error", "continue")

    def run(self, tasks: list[UnitTask], on_result) -> None:
        ray = self.ray
        started = False
        if not ray.is_initialized():
            kw = {"address": self.cfg.get("address")} if self.cfg.get("address") else {
                "num_cpus": self.cfg.get("num_cpus") or self.cfg.get("workers") or os.cpu_count(),
                "include_dashboard": False}
            ray.init(ignore_reinit_error=True, log_to_driver=False, **kw)
            started = True
        try:
            remote = ray.remote(num_cpus=float(self.cfg.get("cpus_per_task", 1)), max_retries=0)(_ray_unit)
            refs: dict[int, object] = {}
            futs = {}
            for t in tasks:
                t.threads = self.threads
                t.timeout_s = self.timeout_s
                key = id(t.x)
                if key not in refs:
                    refs[key] = ray.put(t.x)
                futs[remote.remote(dataclasses.replace(t, x=None), refs[key])] = t
            while futs:
                done, _ = ray.wait(list(futs), num_returns=1)
                for ref in done:
                    t = futs.pop(ref)
                    try:
                        rec = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - a dead Ray worker fails only its unit
                        rec = failure_record(t, f"Ray task failed: {e!r}")
                    on_result(t, rec)
                    if rec["row"].get("status") != "ok" and self.on_error == "stop":
                        for r in futs:
                            ray.cancel(r)
                        raise StudyStopped(f"unit {t.unit_key} failed:\n{rec['row'].get('error')}")
        finally:
            if started:
                ray.shutdown()


def _ray_unit(task: UnitTask, x) -> dict:
    _init_worker(task.threads)
    # No crash file: a Ray worker may run on a node without this run directory, and Ray reports a
    # dead worker itself; a timeout's stack goes to the worker's stderr (Ray's worker logs).
    return _worker_unit(dataclasses.replace(task, x=x), crash_log=False)


def make_executor(cfg: dict):
    name = cfg.get("name", "local")
    if name == "local":
        return LocalExecutor(cfg)
    if name == "ray":
        return RayExecutor(cfg)
    raise ValueError(f"unknown executor {name!r}. Available: local, ray")
