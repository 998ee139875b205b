"""MMEW: the micro-expression sheet and ``{emotion}/{Filename}/{N}.jpg`` frames.

Sheet columns: Subject (``S01``), Filename (``S01-01-001``), OnsetFrame, ApexFrame, OffsetFrame,
Action Units, Estimated Emotion (+ remarks, ignored). Frames live in one folder per emotion, named as the
sheet writes the emotion; when that folder does not exist but its lower-case spelling does, the latter is
used (MMEW's folders are lower-case). A subject cell left empty is taken from the Filename prefix
(``S01-01-001`` -> ``S01``) and recorded in ``flags`` as ``subject_from_filename``.

Params: ``root``, ``annotation`` (default: the one ``*Micro*.xlsx`` / ``*micro*.xlsx`` in root), ``sheet``
(first sheet), ``frames_dir`` (default ``Micro_Expression`` if it exists, else root), ``classes``
(default ``mmew7``; ``mmew6`` drops ``others``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data import register_dataset
from bench.data._sheets import clip_folders, escape_braces, find_annotation, pick, read_table, require_root, resolve_dir
from bench.data.table import SampleTable
from bench.data.validate import finalize, split_options, subject_key

COLUMNS = {
    "subject": ["Subject"],
    "clip": ["Filename"],
    "onset": ["OnsetFrame", "Onset Frame", "Onset"],
    "apex": ["ApexFrame", "Apex Frame", "Apex"],
    "offset": ["OffsetFrame", "Offset Frame", "Offset"],
    "au": ["Action Units", "AU"],
    "emotion": ["Estimated Emotion", "Emotion"],
}
_ACCEPTED = ("root", "annotation", "sheet", "frames_dir", "classes")


def read_mmew(root, annotation=None, sheet=None, frames_dir=None):
    root = require_root(root, "mmew")
    ann = Path(annotation) if annotation else find_annotation(
        root, ["*Micro*.xlsx", "*micro*.xlsx", "*MMEW*.xlsx", "*.csv"], "MMEW")
    ann = ann if ann.is_absolute() else root / ann
    df = pick(read_table(ann, sheet=sheet, header_keys=("filename",)), ann, COLUMNS,
              required=["clip", "onset", "apex", "offset", "emotion"])
    if "subject" not in df.columns:
        df["subject"] = ""
    flags = []
    subs = []
    for s, c in zip(df["subject"], df["clip"]):
        s = subject_key(s)
        if not s and "-" in str(c):
            subs.append(str(c).split("-")[0])
            flags.append("subject_from_filename")
        else:
            subs.append(s)
            flags.append("")
    df["subject"], df["flags"] = subs, flags
    fdir = resolve_dir(root, frames_dir, ("Micro_Expression", "micro_expression"))
    df["emotion_folder"] = [str(e).strip() for e in df["emotion"]]
    clip_folders(fdir, df, ann, ("emotion_folder",))  # refused before the folder is looked at
    df["emotion_folder"] = [e if (fdir / e).is_dir() or not (fdir / e.lower()).is_dir() else e.lower()
                            for e in df["emotion_folder"]]
    df["frame_template"] = [f"{escape_braces(str(d))}/{{frame}}.jpg"
                            for d in clip_folders(fdir, df, ann, ("emotion_folder", "clip"))]
    df = df.drop(columns="emotion_folder")
    df["dataset"] = "mmew"
    if "au" not in df.columns:
        df["au"] = ""
    return df, ann


@register_dataset
def load_mmew(root: str | Path, annotation: str | None = None, sheet: str | None = None,
              frames_dir: str | None = None, classes: Any = "mmew7", **options: Any) -> SampleTable:
    """MMEW micro-expressions (see the module docstring)."""
    opts = split_options("mmew", options, _ACCEPTED)
    raw, ann = read_mmew(root, annotation, sheet, frames_dir)
    return finalize(raw, name="mmew", source=str(ann), classes=classes, options=opts)
