"""CAS(ME)^3 part A: the ME label sheet and ``{Subject}/{Filename}/color/{N}.jpg`` frames.

Sheet columns: Subject (``spNO.1``), Filename (``a``, ``b``, ... — a long task video), Onset, Apex,
Offset, AU, Objective class, emotion. One video holds several micro-expressions, so the same
(Subject, Filename) recurs; the clip id is therefore ``{Filename}_{Onset}`` (e.g. ``a_4130``), which is
unique per micro-expression, and the duplicate check catches true repeats (same video and onset).

Params: ``root``, ``annotation`` (default: the one ``*part_A*.xlsx`` / ``*ME*label*.xlsx`` in root),
``sheet`` (first sheet), ``frames_dir`` (default: the first existing of ``part_A/data/part_A``,
``data/part_A``, ``part_A``, else root), ``classes`` (default ``casme3`` 7-class; ``casme3_4``,
``casme3_3``/``megc3``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data import register_dataset
from bench.data._sheets import clip_folders, escape_braces, find_annotation, pick, read_table, require_root, resolve_dir
from bench.data.table import SampleTable
from bench.data.validate import finalize, parse_frame, split_options, subject_key

COLUMNS = {
    "subject": ["Subject", "sub"],
    "clip": ["Filename", "count"],
    "onset": ["Onset", "Onset Frame", "OnsetFrame"],
    "apex": ["Apex", "Apex Frame", "ApexFrame"],
    "offset": ["Offset", "Offset Frame", "OffsetFrame"],
    "au": ["AU", "Action Units", "AUs"],
    "emotion": ["emotion", "Estimated Emotion"],
}
_ACCEPTED = ("root", "annotation", "sheet", "frames_dir", "classes")


def read_casme3(root, annotation=None, sheet=None, frames_dir=None):
    root = require_root(root, "casme3")
    ann = Path(annotation) if annotation else find_annotation(
        root, ["*part_A*.xlsx", "*part_a*.xlsx", "*ME*label*.xlsx", "*.csv"], "CAS(ME)^3 part A")
    ann = ann if ann.is_absolute() else root / ann
    df = pick(read_table(ann, sheet=sheet, header_keys=("subject", "filename")), ann, COLUMNS,
              required=["subject", "clip", "onset", "apex", "offset", "emotion"])
    df["subject"] = [subject_key(s) for s in df["subject"]]
    fdir = resolve_dir(root, frames_dir, ("part_A/data/part_A", "data/part_A", "part_A"))
    df["frame_template"] = [f"{escape_braces(str(d / 'color'))}/{{frame}}.jpg" for d in clip_folders(fdir, df, ann)]

    def clip_id(c, onset):
        try:
            o = parse_frame(onset)
        except ValueError:
            o = None
        return f"{c}_{o}" if o is not None else f"{c}_{str(onset).strip() or 'nan'}"

    df["clip"] = [clip_id(c, o) for c, o in zip(df["clip"], df["onset"])]
    df["dataset"] = "casme3"
    if "au" not in df.columns:
        df["au"] = ""
    return df, ann


@register_dataset
def load_casme3(root: str | Path, annotation: str | None = None, sheet: str | None = None,
                frames_dir: str | None = None, classes: Any = "casme3", **options: Any) -> SampleTable:
    """CAS(ME)^3 part A (see the module docstring)."""
    opts = split_options("casme3", options, _ACCEPTED)
    raw, ann = read_casme3(root, annotation, sheet, frames_dir)
    return finalize(raw, name="casme3", source=str(ann), classes=classes, options=opts)
