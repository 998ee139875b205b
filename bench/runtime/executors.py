"""Executors: run units of work in local worker processes or as Ray tasks.

Both call the same ``task.run()`` (``bench.training.units.UnitTask.run``) and hand each finished record to ``on_result`` as soon
as it arrives (the runner persists it at once, which is what makes resume work).

Stopping: an interrupt (Ctrl-C's ``KeyboardInterrupt``, or ``StudyInterrupted`` from the runner's
SIGTERM handler) or ``on_error: stop`` stops the local pool at once. Every record already back is
handed to ``on_result`` first, the workers are ended (SIGTERM, SIGKILL after ``STOP_GRACE_S``),
whatever finished meanwhile is handed over too, and the units still in flight are abandoned (a
rerun redoes them) without leaving crash files. Workers end with the runner (``bench.runtime.lifeline``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait as mp_wait
from pathlib import Path
from typing import Any, Callable, Protocol

from bench.runtime.allocator import keep_freed_memory
from bench.core.config import ConfigError
from bench.core.registry import Registry
from bench.runtime.lifeline import die_with, sigint_blocked

log = logging.getLogger(__name__)


class UnitTask(Protocol):
    """What an executor needs of a unit of work (``bench.training.units.UnitTask`` is one): it runs
    itself, says how it failed when it could not run, and names where its crash log goes. The
    executors import no training code, so the runtime floor stays below it."""

    unit_key: str
    run_dir: str
    cell: str
    fold: str
    threads: int
    timeout_s: float
    x: Any  # the data array (the Ray executor puts it in the object store once)

    def run(self) -> dict: ...

    def failed(self, error: str) -> dict: ...

EXECUTORS = Registry("executor")  # name -> executor class (its constructor takes the executor node)
ON_ERROR = ("continue", "stop")
STOP_GRACE_S = 5.0  # how long stopped workers get to end on SIGTERM before they are SIGKILLed


class StudyStopped(RuntimeError):
    """``on_error: stop`` and a unit failed."""

    def __init__(self, message: str, *, unit_key: str = "", error: str = ""):
        super().__init__(message)
        self.unit_key, self.error = unit_key, error

    @property
    def summary(self) -> str:
        """One line: which unit failed and the last line of its error (the record keeps it whole)."""
        first = str(self).splitlines()[0].rstrip(":") if str(self) else "a unit failed"
        last = next((ln.strip() for ln in reversed(self.error.splitlines()) if ln.strip()), "")
        return f"{first}: {last} (executor.on_error=stop)" if last else f"{first} (executor.on_error=stop)"


class StudyInterrupted(KeyboardInterrupt):
    """The study was stopped by a signal: SIGINT (Ctrl-C) or SIGTERM (the runner's CLI turns SIGTERM
    into this). A ``KeyboardInterrupt``, so no ``except Exception`` swallows it. ``note`` is the
    runner's one-line account of what was kept."""

    def __init__(self, signum: int = signal.SIGINT, note: str = ""):
        super().__init__(signum, note)
        self.signum, self.note = int(signum), note

    def __str__(self) -> str:
        return self.note or f"interrupted ({signal.Signals(self.signum).name})"


@contextlib.contextmanager
def sigterm_interrupts():
    """Within the block SIGTERM stops a command as Ctrl-C does: it raises ``StudyInterrupted(SIGTERM)``,
    a KeyboardInterrupt, which the command lines turn into one line and exit status 128 + 15. Off the
    main thread (where handlers cannot be set) nothing changes."""
    def stop(signum, frame):  # noqa: ARG001
        raise StudyInterrupted(signum)

    try:
        old = signal.signal(signal.SIGTERM, stop)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_executor_cfg(cfg: dict) -> None:
    """Refuse a bad ``executor`` node before any work (``ConfigError`` naming the key)."""
    name = cfg.get("name", "local")
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}. Available: {', '.join(EXECUTORS.names())}")
    w = cfg.get("workers", 1)
    if not _is_int(w) or w < 1:
        raise ConfigError(f"executor.workers must be a whole number >= 1 (1 = in this process), got {w!r}")
    t = cfg.get("threads_per_worker")
    if t is not None and (not _is_int(t) or t < 1):
        raise ConfigError(f"executor.threads_per_worker must be null (cores / workers) or a whole number >= 1, got {t!r}")
    on_error = cfg.get("on_error", "continue")
    if on_error not in ON_ERROR:
        raise ConfigError(f"executor.on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    timeout = cfg.get("unit_timeout_s") or 0
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise ConfigError(f"executor.unit_timeout_s must be >= 0 seconds (0 = none), got {timeout!r}")
    if name == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ConfigError("executor=ray needs Ray, an optional extra: pip install 'dualflow-bench[ray]'")
        n = cfg.get("num_cpus")
        if n is not None and (not _is_int(n) or n < 1):
            raise ConfigError(f"executor.num_cpus must be null (all cores) or a whole number >= 1, got {n!r}")
        c = cfg.get("cpus_per_task", 1)
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0:
            raise ConfigError(f"executor.cpus_per_task must be > 0, got {c!r}")


def _threads(cfg: dict, workers: int) -> int:
    t = cfg.get("threads_per_worker")
    return int(t) if t else max(1, (os.cpu_count() or 1) // max(1, workers))


_CRASH_FILE: Path | None = None  # in a worker: the crash log of the unit it is running


def _drop_crash_file() -> None:
    """A worker ended on purpose (SIGTERM, or its runner died) did not crash: no crash log."""
    if _CRASH_FILE is not None:
        with contextlib.suppress(OSError):
            _CRASH_FILE.unlink(missing_ok=True)


def _init_worker(threads: int, parent_pid: int | None = None) -> None:
    # Set before torch is first imported in the worker so OpenMP does not start a thread per core
    # in every process (2 workers x 2 threads on 2 cores thrash).
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    keep_freed_memory()  # hundreds of short fits per worker: reuse freed blocks (bench/runtime/allocator.py)
    if parent_pid:  # a pool worker: end with the runner, ignore Ctrl-C (the runner decides)
        die_with(parent_pid, cleanup=_drop_crash_file)


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
    global _CRASH_FILE
    path = _crash_log_path(task) if crash_log else None
    if path is None and not task.timeout_s:
        return task.run()
    f = None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _CRASH_FILE = path  # removed by the SIGTERM / parent-death handler (bench.runtime.lifeline) too
        f = open(path, "w")  # noqa: SIM115 - must outlive a crash, closed below otherwise
        faulthandler.enable(file=f, all_threads=True)
    if task.timeout_s:
        faulthandler.dump_traceback_later(task.timeout_s, exit=True, file=f or sys.stderr)
    try:
        rec = task.run()
    finally:
        if task.timeout_s:
            faulthandler.cancel_dump_traceback_later()
        if f is not None:
            faulthandler.disable()
            f.close()
    if path is not None:
        path.unlink(missing_ok=True)
        _CRASH_FILE = None
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


@EXECUTORS.register("local")
class LocalExecutor:
    """Parallel worker processes (spawned: forking a process that already runs torch threads can
    deadlock). ``workers: 1`` runs in-process (unless a unit timeout is set: that needs a process to
    end). At most ``workers`` units are in flight, so a worker that dies (segfault, OOM kill, unit
    timeout) can be pinned on few units: they are retried alone, and a unit that kills its worker
    alone is recorded as failed while the study goes on.

    ``workers`` above the machine's cores is capped to the cores, and no more processes start than
    there are units to run (``cap_note`` says so in one line); the torch threads per worker follow
    the core-capped figure only, so a resumed run with fewer units left keeps the thread count (and
    so the bits) of the first."""

    def __init__(self, cfg: dict):
        check_executor_cfg({**cfg, "name": "local"})
        self.requested = int(cfg.get("workers", 1))
        self.cores = os.cpu_count() or 1
        self.workers = min(self.requested, self.cores)
        self.threads = _threads(cfg, self.workers)
        self.on_error = cfg.get("on_error", "continue")
        self.timeout_s = float(cfg.get("unit_timeout_s") or 0)

    def processes(self, n_tasks: int) -> int:
        """Worker processes a run of ``n_tasks`` units starts (0: it runs them in this process)."""
        if self.workers == 1 and not self.timeout_s:
            return 0
        return max(1, min(self.workers, n_tasks))

    def cap_note(self, n_tasks: int) -> str | None:
        """One line when ``executor.workers`` is more than the cores or the units to run, else None."""
        n = max(1, self.processes(n_tasks))
        if n >= self.requested:
            return None
        return (f"note: executor.workers={self.requested} capped to {n} ({n_tasks} unit(s) to run, "
                f"{self.cores} core(s))")

    def run(self, tasks: list[UnitTask], on_result: Callable[[UnitTask, dict], None]) -> None:
        for t in tasks:
            t.threads = self.threads
            t.timeout_s = self.timeout_s
        if not self.processes(len(tasks)):
            keep_freed_memory()  # in-process units: the same allocator settings as a worker's
            for t in tasks:
                self._deliver(t, t.run(), on_result)
            return
        queue = list(tasks)
        suspects: list[UnitTask] = []
        while queue:
            queue, crashed = self._run_pool(queue, self.processes(len(queue)), on_result)
            suspects.extend(crashed)
        for t in suspects:  # in flight when a worker died: rerun one at a time to find the culprit
            rest, crashed = self._run_pool([t], 1, on_result)
            if crashed:
                self._deliver(t, t.failed("worker process died while running this unit (run alone to confirm: it "
                                            "crashed again); " + _death_note(t)), on_result)

    def _run_pool(self, queue, workers, on_result):
        ctx = mp.get_context("spawn")
        pending = list(queue)
        inflight: dict[Future, UnitTask] = {}
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(self.threads, os.getpid())) as pool:
            try:
                while pending or inflight:
                    while pending and len(inflight) < workers:
                        t = pending.pop(0)
                        with sigint_blocked():  # a worker starts on submit: Ctrl-C must not kill it half-born
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
            except BaseException as e:  # an interrupt, on_error=stop, or on_result failing (disk full)
                held = _stop_pool(pool, inflight, on_result)
                if held and not isinstance(e, KeyboardInterrupt):
                    raise StudyInterrupted(held[0]) from e  # a signal while stopping for another reason
                raise
        return [], []

    def _deliver(self, task, rec, on_result):
        on_result(task, rec)
        if rec["row"].get("status") != "ok" and self.on_error == "stop":
            raise StudyStopped(f"unit {task.unit_key} ({rec['row'].get('cell')}, fold {task.fold}) failed:\n"
                               f"{rec['row'].get('error')}", unit_key=task.unit_key,
                               error=str(rec["row"].get("error") or ""))


@contextlib.contextmanager
def _signals_held():
    """While a pool is being stopped, a second Ctrl-C / SIGTERM is noted instead of cutting the
    stop short (the stop is bounded by ``STOP_GRACE_S``). Only the main thread can set handlers."""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def note(signum, frame):  # noqa: ARG001
        held.append(signum)

    old = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield held
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def _keep_finished(inflight: dict, on_result) -> None:
    """Hand over every in-flight unit whose record is already back (and forget it)."""
    for f, t in list(inflight.items()):
        if f.done() and not f.cancelled() and f.exception() is None:
            del inflight[f]
            try:
                on_result(t, f.result())
            except Exception as e:  # noqa: BLE001 - stopping anyway; keep handing over the others
                log.error("could not keep the record of unit %s while stopping: %s: %s", t.unit_key,
                          type(e).__name__, e)


def _stop_pool(pool: ProcessPoolExecutor, inflight: dict, on_result) -> list[int]:
    """Stop a pool now: keep the records already back, end the workers (SIGTERM, then SIGKILL after
    ``STOP_GRACE_S``), keep what came back meanwhile, and remove the empty crash files of the units
    abandoned in flight (their workers did not crash). Returns the signals that came meanwhile."""
    with _signals_held() as held:
        for f in inflight:
            f.cancel()
        _keep_finished(inflight, on_result)
        # Liveness by each worker's sentinel (readable once it has ended), not Process.join/is_alive:
        # the pool's own thread reaps the workers concurrently, and a process reaped by another
        # thread can look alive to this one.
        live = {}
        for p in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                live[p.sentinel] = p
        for p in live.values():
            with contextlib.suppress(Exception):
                p.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        while live and time.monotonic() < deadline:
            for s in mp_wait(list(live), max(0.0, deadline - time.monotonic())):
                live.pop(s, None)
        for p in live.values():
            log.warning("worker %s did not end on SIGTERM within %g s; killing it", p.pid, STOP_GRACE_S)
            with contextlib.suppress(Exception):
                p.kill()
        if live:
            mp_wait(list(live), 5)
        pool.shutdown(wait=True, cancel_futures=True)
        _keep_finished(inflight, on_result)
        for t in inflight.values():
            path = _crash_log_path(t)
            with contextlib.suppress(OSError):
                if path is not None and path.exists() and path.stat().st_size == 0:
                    path.unlink()
    return held


NODE_LOSS_RETRIES = 3  # times a unit is resubmitted after the node (or the object) it ran on was lost
CRASH_RETRIES = 1  # times a unit whose Ray worker process died is run again before it is failed


@EXECUTORS.register("ray")
class RayExecutor:
    """The same units as Ray tasks, on a local Ray (``address: null``) or a running cluster
    (``address: auto`` or ``<head ip>:<port>``). Each distinct data array is put in the object store
    once and shared by reference, not copied into every task; workers read no file of the dataset or
    the flow cache, and the records come back to this process, which writes them.

    A lost node loses no unit: a unit whose node died (``NodeDiedError``) or whose result was lost
    with it (``ObjectLostError``) is submitted again, up to ``NODE_LOSS_RETRIES`` times, and runs on
    the nodes left. A unit whose worker process died (``WorkerCrashedError``, ``OutOfMemoryError``:
    a segfault, the OOM killer, ``unit_timeout_s``) runs once more, then is recorded as failed. A
    unit's own Python exception is already a failed record (``run_unit`` never raises) and is not
    retried; any other Ray error fails its unit at once, naming the error. Each record says where it
    ran: ``ran_on`` (node id, host, attempt), outside the row, so no key, table or headline sees it."""

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

    @contextlib.contextmanager
    def _connected(self):
        """Ray initialised for the block: joined at ``address``, or a local Ray started (and shut down)."""
        ray = self.ray
        if ray.is_initialized():
            yield
            return
        kw = {"address": self.cfg.get("address")} if self.cfg.get("address") else {
            "num_cpus": self.cfg.get("num_cpus") or self.cfg.get("workers") or os.cpu_count(),
            "include_dashboard": False}
        ray.init(ignore_reinit_error=True, log_to_driver=False, **kw)
        try:
            yield
        finally:
            ray.shutdown()

    def run(self, tasks: list[UnitTask], on_result) -> None:
        with self._connected():
            remote = self.ray.remote(num_cpus=float(self.cfg.get("cpus_per_task", 1)), max_retries=0)(_ray_unit)
            _RayRun(self, remote, on_result).until_done(tasks)


class _RayRun:
    """One run of units on Ray: submit, collect, resubmit the units a lost node took with it."""

    def __init__(self, ex: RayExecutor, remote, on_result):
        self.ex, self.ray, self.remote, self.on_result = ex, ex.ray, remote, on_result
        self.refs: dict[int, object] = {}  # id(data array) -> its object ref, put once
        self.futs: dict[object, tuple[UnitTask, int]] = {}  # result ref -> (unit, attempt)
        self.losses: dict[str, int] = {}  # unit key -> node losses so far
        self.crashes: dict[str, int] = {}  # unit key -> worker deaths so far

    def submit(self, t: UnitTask, attempt: int) -> None:
        key = id(t.x)
        if key not in self.refs:
            self.refs[key] = self.ray.put(t.x)
        self.futs[self.remote.remote(dataclasses.replace(t, x=None), self.refs[key], attempt)] = (t, attempt)

    def until_done(self, tasks: list[UnitTask]) -> None:
        for t in tasks:
            t.threads, t.timeout_s = self.ex.threads, self.ex.timeout_s
            self.submit(t, 1)
        try:
            while self.futs:
                done, _ = self.ray.wait(list(self.futs), num_returns=1)
                for ref in done:
                    t, attempt = self.futs.pop(ref)
                    rec = self.collect(ref, t, attempt)
                    if rec is not None:
                        self.deliver(t, rec)
        except BaseException:  # an interrupt, on_error=stop, on_result failing: stop what is in flight
            for r in self.futs:
                with contextlib.suppress(Exception):
                    self.ray.cancel(r, force=True)
            raise

    def collect(self, ref, t: UnitTask, attempt: int) -> dict | None:
        """The unit's record, or None when it was submitted again (its node or worker was lost)."""
        exc = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except (exc.NodeDiedError, exc.ObjectLostError) as e:
            return self.again(t, attempt, self.losses, NODE_LOSS_RETRIES, "its node was lost", e)
        except (exc.WorkerCrashedError, exc.OutOfMemoryError) as e:
            return self.again(t, attempt, self.crashes, CRASH_RETRIES, "its Ray worker process died", e)
        except Exception as e:  # noqa: BLE001 - any other Ray error fails only its unit
            return _ran_on(t.failed(f"Ray task failed (attempt {attempt}): {type(e).__name__}: {e}"), attempt)

    def again(self, t: UnitTask, attempt: int, counts: dict, limit: int, why: str, e: Exception) -> dict | None:
        n = counts[t.unit_key] = counts.get(t.unit_key, 0) + 1
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if n <= limit:
            log.warning("unit %s (%s, fold %s): %s (%s: %s); submitted again", t.unit_key, t.cell, t.fold, why,
                        type(e).__name__, first)
            self.submit(t, attempt + 1)
            return None
        return _ran_on(t.failed(f"{why} {n} time(s) while running this unit (attempt {attempt}, no retry left): "
                                f"{type(e).__name__}: {e}"), attempt)

    def deliver(self, t: UnitTask, rec: dict) -> None:
        self.on_result(t, rec)
        if rec["row"].get("status") != "ok" and self.ex.on_error == "stop":
            raise StudyStopped(f"unit {t.unit_key} ({rec['row'].get('cell')}, fold {t.fold}) failed:\n"
                               f"{rec['row'].get('error')}", unit_key=t.unit_key,
                               error=str(rec["row"].get("error") or ""))


def _ran_on(rec: dict, attempt: int, node_id: str = "", host: str = "") -> dict:
    """``rec`` with where and at which attempt it ran (``ran_on``: outside the row, in no table)."""
    rec["ran_on"] = {"node_id": node_id, "host": host, "attempt": int(attempt)}
    return rec


def _ray_unit(task: UnitTask, x, attempt: int = 1) -> dict:
    import socket

    import ray

    _init_worker(task.threads)
    # No crash file: a Ray worker may run on a node without this run directory, and Ray reports a
    # dead worker itself; a timeout's stack goes to the worker's stderr (Ray's worker logs).
    rec = _worker_unit(dataclasses.replace(task, x=x), crash_log=False)
    return _ran_on(rec, attempt, ray.get_runtime_context().get_node_id(), socket.gethostname())


def make_executor(cfg: dict):
    """The executor the (checked) node names."""
    check_executor_cfg(cfg)
    return EXECUTORS.get(cfg.get("name", "local"))(cfg)
