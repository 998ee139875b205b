"""SAMM: ``SAMM_Micro_FACS_Codes_v2.xlsx`` (sheet ``MICRO_ONLY``) and ``{Subject}/{Filename}/{Subject}_{NNNNN}.jpg``.

The sheet starts with ~13 lines of notes; the header row is found (the first row holding "Subject" and
"Filename"), not hard-coded. Subjects stay strings (``'006'``; a number-formatted cell ``6`` is
zero-padded back to ``'006'``). The same sheet exported as a ``;``-separated CSV is accepted
(``annotation=...csv``; the delimiter is sniffed). SAMM v2 has two apexes outside onset..offset; they get
the documented middle-frame fallback (``bench.data.validate``), and ``-1`` apexes count as missing.

Params: ``root``, ``annotation`` (default: the one ``SAMM_Micro_FACS_Codes*.xlsx``/``.csv`` in root),
``sheet`` (``MICRO_ONLY``), ``frames_dir`` (default ``SAMM`` if it exists, else root), ``classes``
(default ``samm``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data import register_dataset
from bench.data._sheets import clip_folders, escape_braces, find_annotation, pick, read_table, require_root, resolve_dir
from bench.data.table import DataError, SampleTable
from bench.data.validate import finalize, split_options, subject_key

COLUMNS = {
    "subject": ["Subject"],
    "clip": ["Filename"],
    "onset": ["Onset Frame", "OnsetFrame", "Onset"],
    "apex": ["Apex Frame", "ApexFrame", "Apex"],
    "offset": ["Offset Frame", "OffsetFrame", "Offset"],
    "au": ["Action Units", "AU"],
    "emotion": ["Estimated Emotion", "Emotion"],
}
_ACCEPTED = ("root", "annotation", "sheet", "frames_dir", "classes")


def subject_id(text: str) -> str:
    """``6``, ``6.0``, ``'006'`` -> ``'006'``; other text is kept as written."""
    t = subject_key(text)
    return t.zfill(3) if t.isdigit() else t


def read_samm(root, annotation=None, sheet="MICRO_ONLY", frames_dir=None):
    root = require_root(root, "samm")
    ann = Path(annotation) if annotation else find_annotation(
        root, ["SAMM_Micro_FACS_Codes*.xlsx", "SAMM_Micro_FACS_Codes*.csv", "SAMM*.xlsx", "SAMM*.csv"], "SAMM")
    ann = ann if ann.is_absolute() else root / ann
    is_csv = ann.suffix.lower() in (".csv", ".txt")
    df = pick(read_table(ann, sheet=None if is_csv else sheet, header_keys=("subject", "filename")),
              ann, COLUMNS, required=["subject", "clip", "onset", "apex", "offset", "emotion"])
    df = df[~((df["subject"] == "") & (df["clip"] == ""))].copy()  # trailing note rows below the table
    df["subject"] = [subject_id(s) for s in df["subject"]]
    bad = df[df["subject"] == ""]
    if len(bad):
        raise DataError(f"{ann}, row {bad['_row'].iat[0]}: empty subject")
    fdir = resolve_dir(root, frames_dir, ("SAMM",))
    df["dataset"] = "samm"
    df["frame_template"] = [f"{escape_braces(str(d / s))}_{{frame:05d}}.jpg"
                            for d, s in zip(clip_folders(fdir, df, ann), df["subject"])]
    if "au" not in df.columns:
        df["au"] = ""
    return df, ann


@register_dataset
def load_samm(root: str | Path, annotation: str | None = None, sheet: str = "MICRO_ONLY",
              frames_dir: str | None = None, classes: Any = "samm", **options: Any) -> SampleTable:
    """SAMM (see the module docstring)."""
    opts = split_options("samm", options, _ACCEPTED)
    raw, ann = read_samm(root, annotation, sheet, frames_dir)
    return finalize(raw, name="samm", source=str(ann), classes=classes, options=opts)
