"""Test-only model families whose construction kills the process running them.

They must exist in a *spawned* worker, which imports nothing of the test: putting a
``RegisterOnUnpickle()`` in a ``UnitTask``'s ``cell_cfg`` makes the worker register them while it unpickles
the task (pickle imports ``tests.helpers.crashing_model`` by name; pytest's ``sys.path`` entry for the
project root is handed to spawned children). They are never registered in the test process itself,
whose model registry other tests enumerate (and where ``os._exit`` would end the test run).
"""

from __future__ import annotations

import os
import signal

CRASH_MODEL = "crash_test"


def _crash(in_chans: int, num_classes: int, how: str = "exit", **_):
    """Die the way a worker dies without a Python traceback: a hard exit, a SIGKILL or a segfault."""
    if how == "segv":
        import ctypes

        ctypes.string_at(0)  # reads address 0: SIGSEGV, as a bug in a native library would
    if how == "hang":
        import time

        time.sleep(10_000)  # a unit that never finishes (a deadlock would look the same)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(13)


def register() -> str:
    from models import MODELS, register_model

    if CRASH_MODEL not in MODELS:
        register_model(CRASH_MODEL)(_crash)
    return CRASH_MODEL


class RegisterOnUnpickle:
    """A marker whose unpickling (in the worker) registers ``crash_test``."""

    def __reduce__(self):
        return (register, ())
