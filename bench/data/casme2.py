"""CASME II: ``CASME2-coding-*.xlsx`` (Sheet1) and ``sub{NN}/{Filename}/img{N}.jpg`` frames.

Sheet columns: Subject (int 1..26), Filename (``EP02_01f``), OnsetFrame, ApexFrame, OffsetFrame,
Action Units, Estimated Emotion (+ optional Objective Class, ignored). One apex is written "/": it gets
the documented middle-frame fallback (``bench.data.validate``).

Params: ``root``; ``annotation`` (default: the one ``CASME2-coding-*.xlsx`` in ``root``); ``sheet``
(``Sheet1``); ``frames``: ``raw`` (``img{N}.jpg``) or ``cropped`` (the official ``reg_img{N}.jpg`` crops);
``frames_dir`` relative to ``root`` (default: the first existing of ``CASME2_RAW_selected``/``CASME2_RAW``
for raw, ``Cropped``/``CASME2_Cropped`` for cropped, else ``root``); ``classes`` (default ``casme2``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data import register_dataset
from bench.data._sheets import clip_folders, escape_braces, find_annotation, pick, read_table, require_root, resolve_dir
from bench.data.table import DataError, SampleTable
from bench.data.validate import finalize, split_options

COLUMNS = {
    "subject": ["Subject"],
    "clip": ["Filename"],
    "onset": ["OnsetFrame", "Onset Frame", "OnsetF"],
    "apex": ["ApexFrame", "Apex Frame", "ApexF1", "ApexF"],
    "offset": ["OffsetFrame", "Offset Frame", "OffsetF"],
    "au": ["Action Units", "AU", "AUs"],
    "emotion": ["Estimated Emotion", "Emotion"],
}
_FRAMES = {"raw": ("img", ("CASME2_RAW_selected", "CASME2_RAW", "RAW_selected")),
           "cropped": ("reg_img", ("Cropped", "CASME2_Cropped", "cropped"))}
_ACCEPTED = ("root", "annotation", "sheet", "frames", "frames_dir", "classes")


def subject_id(text: str) -> str:
    """``1``, ``1.0``, ``01``, ``sub01`` -> ``sub01``; ``ValueError`` otherwise."""
    t = str(text).strip().lower()
    if t.startswith("sub"):
        t = t[3:]
    n = float(t)
    if not n.is_integer() or n < 0:
        raise ValueError(text)
    return f"sub{int(n):02d}"


def read_casme2(root, annotation=None, sheet="Sheet1", frames="raw", frames_dir=None):
    root = require_root(root, "casme2")
    if frames not in _FRAMES:
        raise ValueError(f"casme2 frames must be one of {list(_FRAMES)}, not {frames!r}")
    ann = Path(annotation) if annotation else find_annotation(root, ["CASME2-coding-*.xlsx", "CASME2*coding*.xlsx", "CASME2*.csv"], "CASME II")
    ann = ann if ann.is_absolute() else root / ann
    df = pick(read_table(ann, sheet=sheet if ann.suffix.lower() != ".csv" else None, header_keys=("subject", "filename")),
              ann, COLUMNS, required=["subject", "clip", "onset", "apex", "offset", "emotion"])
    prefix, candidates = _FRAMES[frames]
    fdir = resolve_dir(root, frames_dir, candidates)
    subs = []
    for s, r, c in zip(df["subject"], df["_row"], df["clip"]):
        try:
            subs.append(subject_id(s))
        except ValueError:
            raise DataError(f"{ann}, row {r} ({s}/{c}): subject {s!r} is not a CASME II subject number") from None
    df["subject"] = subs
    df["dataset"] = "casme2"
    df["frame_template"] = [f"{escape_braces(str(d))}/{prefix}{{frame}}.jpg" for d in clip_folders(fdir, df, ann)]
    if "au" not in df.columns:
        df["au"] = ""
    return df, ann


@register_dataset(aliases=("casmeii", "casme_ii", "casme-ii", "casme_2"))  # published spellings
def load_casme2(root: str | Path, annotation: str | None = None, sheet: str = "Sheet1", frames: str = "raw",
                frames_dir: str | None = None, classes: Any = "casme2", **options: Any) -> SampleTable:
    """CASME II (see the module docstring)."""
    opts = split_options("casme2", options, _ACCEPTED)
    raw, ann = read_casme2(root, annotation, sheet, frames, frames_dir)
    return finalize(raw, name="casme2", source=str(ann), classes=classes, options=opts, meta={"frames": frames})
