"""Progress on stderr: tqdm's bars on a terminal, plain lines anywhere else.

A bar redraws itself with carriage returns and cursor movements (``\\r``, ``\\x1b[A``), which a
terminal turns into a moving bar and a file (CI logs, ``nohup``, ``2>log``) keeps as one long line
with the nested bars interleaved. So when the stream is not a terminal, ``progress_bar`` returns a
``PlainProgress`` instead: one finished line every ``every`` units (and at the end), no control
characters. Both take ``update``, ``set_postfix_str`` and ``close``, and iterate when given an iterable.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, TextIO

# The plain lines of a long bar: about this many over its whole length (one per unit for short ones).
PLAIN_LINES = 10


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (a closed or odd stream counts as not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 enabled: bool = True, position: int = 0, every: int | None = None, stream: TextIO | None = None):
    """A tqdm bar on a terminal, else ``PlainProgress`` (a line each ``every`` units: by default about
    ``PLAIN_LINES`` lines in all); nothing at all when not ``enabled``."""
    stream = stream if stream is not None else sys.stderr
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if enabled and is_terminal(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, position=position, file=stream)
    step = every if every is not None else max(1, -(-(total or 0) // PLAIN_LINES))
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, every=step, stream=stream, enabled=enabled)


class PlainProgress:
    """Progress as whole lines, ``desc: n/total unit (postfix) [elapsed]``, written every ``every``
    units and when the last one is done (or at ``close`` if the count stopped between two lines)."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None, desc: str, unit: str, every: int,
                 stream: TextIO, enabled: bool = True):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.every, self.stream, self.enabled = max(1, int(every)), stream, enabled
        self.n, self.shown, self.postfix, self.t0 = 0, 0, "", time.perf_counter()

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n - self.shown >= self.every or (self.total is not None and self.n >= self.total):
            self._line()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:  # noqa: ARG002 - tqdm's signature
        self.postfix = str(s)

    def close(self) -> None:
        if self.n != self.shown:
            self._line()

    def _line(self) -> None:
        self.shown = self.n
        if not self.enabled:
            return
        of = f"/{self.total}" if self.total is not None else ""
        note = f" ({self.postfix})" if self.postfix else ""
        text = f"{self.desc}: {self.n}{of} {self.unit}{'' if self.n == 1 else 's'}{note} [{self._elapsed()}]"
        try:
            print(text.replace("\r", " ").replace("\x1b", ""), file=self.stream, flush=True)
        except (OSError, ValueError):  # a closed or full stream: progress is never worth failing a study
            self.enabled = False

    def _elapsed(self) -> str:
        s = int(time.perf_counter() - self.t0)
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"
