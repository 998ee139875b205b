"""The one sample table every dataset yields.

A ``SampleTable`` wraps a pandas DataFrame with one row per clip and these columns:

=============== ======= =================================================================
column          dtype   meaning
=============== ======= =================================================================
dataset         str     dataset name of the row's source (``casme2``, ``samm``, ``synthetic``..)
subject         str     globally unique subject id (composites prefix it: ``casme2/sub01``)
clip            str     clip id as the source writes it (``EP02_01f``)
onset           int     onset frame number (as in the source's numbering)
apex            int     apex frame number, onset < apex <= offset
offset          int     offset frame number
label           int     class index into ``SampleTable.classes``
emotion         str     emotion as written in the source
au              str     action units as written in the source ('' if none)
frame_template  str     absolute path with a ``{frame}`` field (format spec allowed,
                        e.g. ``.../006_{frame:05d}.jpg``) resolving a frame number to a file
apex_source     str     ``annotated`` | ``middle`` | ``peak_flow`` | ``selector:<name>`` |
                        ``fallback:<why>`` (``missing_apex``, ``apex_outside_range``,
                        ``apex_equals_onset``; see ``bench.data.validate``)
flags           str     ';'-joined fallbacks / notes applied to the row ('' when none)
=============== ======= =================================================================

Every loader builds its table through ``bench.data.validate.finalize``, which enforces these types and
the checks listed there; ``problems`` holds every logged fallback, drop count and (in
``errors="collect"`` mode) every row error, one human-readable line each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

REQUIRED_COLUMNS = ("dataset", "subject", "clip", "onset", "apex", "offset", "label")
OPTIONAL_COLUMNS = ("emotion", "au", "frame_template", "apex_source", "flags")
ALL_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


class DataError(ValueError):
    """Bad input in a dataset: the message names the file and the row."""


_CHAR_NAMES = {" ": "a space", "\t": "a tab", "\n": "a newline", "\r": "a carriage return"}


def _char_name(ch: str) -> str:
    if ch in _CHAR_NAMES:
        return _CHAR_NAMES[ch]
    import unicodedata

    return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'a control character').lower()})"


def name_problem(value: str, what: str) -> str | None:
    """Why ``value`` cannot be a ``what`` (``subject``, ``clip`` or ``dataset``) name, or ``None``.

    Names end up as fields of the MEGC2019 log (``bench.evaluation.prediction_files``: whitespace-separated,
    ``#`` starts a comment, a comma on the first line makes it read as CSV), so every loader's table
    refuses at load (``bench.data.validate.finalize``) what that log could not hold back intact:
    whitespace of any kind (space, tab, newline, non-breaking space, ...) or another invisible
    character inside a name, a clip starting with ``#``, a comma in a subject or dataset name.
    """
    bad = sorted({ch for ch in value if ch.isspace() or not ch.isprintable()})
    if bad:
        return (f"contains {', '.join(_char_name(c) for c in bad)}, which the whitespace-separated "
                "MEGC2019 prediction log cannot hold")
    if what == "clip" and value.startswith("#"):
        return "starts with '#', which the MEGC2019 prediction log reader takes for a comment"
    if what != "clip" and "," in value:
        return "contains ',', which would make the MEGC2019 prediction log read as a CSV file"
    return None


@dataclass
class SampleTable:
    df: pd.DataFrame
    classes: list[str]
    name: str
    source: str = ""  # the annotation file (or folder) the table was read from
    problems: list[str] = field(default_factory=list)  # logged fallbacks / warnings
    meta: dict = field(default_factory=dict)  # loader-specific extras (e.g. precomputed flow format)

    def __len__(self) -> int:
        return len(self.df)

    @property
    def subjects(self) -> list[str]:
        return sorted(self.df["subject"].unique().tolist())

    def frame_path(self, i: int, frame: int) -> Path:
        """Path of frame number ``frame`` of row ``i`` (positional)."""
        return Path(self.df["frame_template"].iat[i].format(frame=int(frame)))

    def key_frame_paths(self, i: int) -> tuple[Path, Path, Path]:
        r = self.df.iloc[i]
        return tuple(self.frame_path(i, r[c]) for c in ("onset", "apex", "offset"))  # type: ignore[return-value]
