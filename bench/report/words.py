"""Values in words for the report: never 'nan' or 'None' in front of a reader."""

from __future__ import annotations

import math
import re


def slug(s: str) -> str:
    """A file-name-safe form of a label (figure and table stems)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(s)).strip("_") or "x"


def value(v) -> str:
    """A run-fact value in words; never 'nan'/'None'."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "not recorded"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(value(x) for x in v) if v else "none"
    if isinstance(v, dict):  # an unset entry is left out (never "key=not recorded")
        v = {k: x for k, x in v.items() if not unset(x)}
        if not v:
            return "none"
        return "; ".join(f"{k} ({value(x).replace('; ', ', ')})" if isinstance(x, dict) else f"{k}={value(x)}"
                         for k, x in v.items())
    s = str(v)
    return "not recorded" if s.strip().lower() in ("", "nan", "null") or s.strip() == "None" else s


def unset(v) -> bool:
    """Whether a recorded value is missing (None, NaN, empty or the word null): such a value is left out."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return True
    return isinstance(v, str) and (v.strip().lower() in ("", "nan", "null", "none"))


def duration(sec) -> str:
    """Seconds as '1 h 02 min 05 s' / '1 min 05 s' / '2.2 s'."""
    try:
        sec = float(sec)
    except (TypeError, ValueError):
        return "not recorded"
    if not math.isfinite(sec):
        return "not recorded"
    h, rem = divmod(int(round(sec)), 3600)
    m, s = divmod(rem, 60)
    return (f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s" if m else f"{sec:.1f} s")
