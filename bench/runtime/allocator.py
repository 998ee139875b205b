"""glibc malloc settings for processes that train many small models one after another.

By default glibc serves blocks above a threshold (128 KiB at start, raised as such blocks are freed)
with their own ``mmap`` and ``munmap``s them on free, and trims the heap's top once twice that much is
free there. A worker that builds a model, trains it for a few hundred steps and drops it, hundreds
of times, keeps handing pages back and faulting fresh zeroed ones in (a ResNet-10-T unit of 10 steps:
~17 000 minor faults, ~250 with the settings below; tests/runtime/test_allocator.py). Measured on the main
study with one seed (2 workers, cached flows): 7.6 M minor page faults and 17 s of kernel time
against 0.29 M and 1.9 s; wall time x0.95 (median of 3 interleaved pairs on a two-representation
subset, docs/performance.md). Numerics are untouched (only where blocks live changes); the cost is
that a process keeps up to ``TRIM_THRESHOLD`` bytes of freed memory for reuse.

Set with ``mallopt`` at run time (the ``MALLOC_*_`` environment variables work only from process
start). A no-op where the C library has no ``mallopt`` (macOS, musl), and with
``DUALFLOW_MALLOC=default`` in the environment (glibc's defaults: to compare, or to give freed memory
back at once); torch's own allocator is not involved on CPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling for this setting on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 256 * 1024 * 1024

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Serve blocks up to 32 MiB from the heap and keep up to 256 MiB of freed heap for reuse.
    Idempotent; returns whether both settings took effect (False off glibc)."""
    global _done
    if _done is None and os.environ.get("DUALFLOW_MALLOC") == "default":
        _done = False
    if _done is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            _done = False
        else:
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
