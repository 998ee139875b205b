"""Worker processes that end with the process they work for.

A pool worker that outlives its runner (the runner SIGKILLed, or killed by the out-of-memory
killer) would otherwise wait forever at PPID 1 for work that never comes, holding its memory
(~470 MB for a training worker). multiprocessing's own helpers stay with it: the resource tracker
and the forkserver exit only once every process holding their pipes is gone, and the workers hold
those pipes. So each worker's initializer calls ``die_with(pid)``, and then:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` has the kernel signal the worker the moment its
  direct parent dies (for a forkserver child the direct parent is the forkserver, so this alone
  is not enough there);
- everywhere, a daemon thread waits on the watched process itself (a pidfd on Linux, else a poll
  of ``os.getppid()`` and the pid every second) and ends the worker when it is gone;
- SIGTERM (from the kernel as above, or from the runner stopping its pool) runs ``cleanup`` and
  ends the worker at once with status 143, without a traceback, whichever of the worker's threads
  the kernel hands it to (the thread also wakes on it, through ``signal.set_wakeup_fd``);
- SIGINT is ignored: Ctrl-C in a terminal reaches the whole process group, and the runner alone
  decides what happens to the units in flight (it keeps the finished ones and stops the rest).
  ``sigint_blocked()`` around the code that starts workers closes the window before their
  initializer runs: a child starts with its parent's signal mask (so does a forkserver, and every
  process it forks), and the runner's own Ctrl-C is delivered, not lost, when the block ends.

Once the workers are gone the resource tracker and the forkserver see their pipes close and exit
by themselves. Limitation: a worker stuck in native code that holds the GIL runs no Python at all,
so neither its signal handler nor the thread can end it; the runner's own stop escalates to
SIGKILL, but a SIGKILLed runner cannot.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
from typing import Callable

POLL_S = 1.0  # the portable watchdog's poll interval (the pidfd wait wakes at once)
EXIT_STATUS = 128 + signal.SIGTERM  # what an ended worker exits with (the shell's "killed by SIGTERM")
PR_SET_PDEATHSIG = 1

_cleanup: Callable[[], None] | None = None
_ending = threading.Lock()


def _end() -> None:
    """Run the cleanup once, then leave now (no atexit handlers, no joining of pool threads). A
    second caller (the thread and the handler both firing) waits briefly for the first to finish."""
    if _ending.acquire(timeout=2.0):
        try:
            if _cleanup is not None:
                _cleanup()
        except BaseException:  # noqa: BLE001 - ending regardless
            pass
    os._exit(EXIT_STATUS)


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    _end()


def _set_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(pid: int, ppid0: int, wake_r: int | None) -> None:
    fd = None
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(pid)  # readable once the process has ended
        except OSError:
            fd = None
    waits = [x for x in (fd, wake_r) if x is not None]
    while True:
        if waits:
            readable = select.select(waits, [], [], POLL_S)[0]
        else:
            time.sleep(POLL_S)
            readable = []
        if fd is not None and fd in readable:
            break
        if wake_r is not None and wake_r in readable:
            try:
                got = os.read(wake_r, 512)
            except OSError:
                got = b""
            if signal.SIGTERM in got:  # a SIGTERM that reached one of our threads (see die_with)
                break
        if fd is None and not _alive(pid):
            break
        if os.getppid() != ppid0:  # our own parent is gone (we were re-parented)
            break
    _end()


def _wakeup_pipe() -> int | None:
    """Python writes the number of every handled signal to this pipe, whichever thread the kernel
    delivered it to; returns the read end (None where it cannot be set up)."""
    try:
        r, w = os.pipe()
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w)
    except (OSError, ValueError, AttributeError):
        return None
    return r


@contextlib.contextmanager
def sigint_blocked():
    """Block SIGINT in this thread while worker processes are started inside (see the module doc)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def die_with(pid: int, cleanup: Callable[[], None] | None = None) -> None:
    """Make this process (a pool worker) end when process ``pid`` ends; call it in the worker's
    initializer. ``cleanup`` runs before the worker ends on SIGTERM or on ``pid``'s death."""
    global _cleanup
    _cleanup = cleanup
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # The handler above runs in the main thread only, once it returns to Python; but the kernel may
    # deliver SIGTERM to any thread (torch's, the watcher), and then a main thread blocked reading its
    # next task never wakes. The wakeup pipe tells the watcher thread about it either way.
    wake_r = _wakeup_pipe()
    _set_pdeathsig(signal.SIGTERM)
    ppid0 = os.getppid()
    # If ``pid`` died before prctl took effect no signal comes: the thread's first look sees it.
    threading.Thread(target=_watch, args=(pid, ppid0, wake_r), name="die-with-parent", daemon=True).start()


__all__ = ["die_with", "sigint_blocked", "EXIT_STATUS"]
