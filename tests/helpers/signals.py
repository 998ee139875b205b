"""Signals for the child processes tests start."""

from __future__ import annotations

import signal


def ctrl_c_reaches_it() -> None:
    """``preexec_fn`` for a child a test sends SIGINT: the default disposition, as in a terminal. A
    shell without job control starts background jobs with SIGINT ignored (POSIX), the child inherits
    that, and Python then installs no KeyboardInterrupt handler: a suite started with ``cmd &`` would
    otherwise see the child ignore the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
