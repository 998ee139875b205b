"""SMIC (HS by default): the folder layout is the annotation.

``{root}/HS/s{N}/micro/{negative,positive,surprise}/s{N}_{ne,po,sur}_{NN}/image{NNNNNNN}.bmp`` (``root`` may
also be the ``HS`` folder itself). Each clip folder holds only the micro-expression: onset = first frame,
offset = last frame, emotion = the emotion folder. Frame numbers are parsed from the file names (the
common prefix, zero padding and extension become the row's ``frame_template``); gaps in the numbering are
recorded as ``flags: frame_gaps`` and a problem.

No apex is annotated. ``apex`` chooses it and ``apex_source`` records the choice:

``middle``     (default) the middle frame ``(onset + offset + 1) // 2`` (nearest existing frame if absent).
``peak_flow``  the frame whose Farneback flow from the onset frame has the largest mean magnitude, on
               frames resized to at most ``peak_flow_size`` px (cheap: ~1 ms per frame at 64 px). Note
               this looks at the clip's frames only, never at labels, so it leaks nothing.
``apex_selector`` (overrides ``apex``) a callable, or ``"module:function"``, called as
               ``f(paths: list[Path], frames: list[int]) -> int``; recorded as ``selector:<name>``.

SMIC-E annotation sheet: pass ``annotation=<xlsx|csv>`` (relative to root) with columns Subject,
Filename (clip), Onset, Offset and optionally Apex / Emotion (headers matched case-insensitively; also
``OnsetF``/``OffsetF``/``ApexF``). Its key frames override the folder-derived ones for the clips it lists
(matched by clip name, ignoring ``s01``/``s1`` zero padding); a sheet row without a clip folder is an
error; folder clips the sheet does not list keep their folder-derived key frames (counted as a problem).
The exact SMIC-E column names could not be checked against a licensed copy, hence the liberal matching.

Params: ``root``, ``camera`` (``HS``; ``VIS``/``NIR`` have the same layout), ``apex``, ``apex_selector``,
``peak_flow_size``, ``annotation``, ``classes`` (default ``megc3``, which maps SMIC's three classes to
themselves).
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import pandas as pd

from bench.data import register_dataset
from bench.data._sheets import escape_braces, pick, read_table, require_root
from bench.data.table import DataError, SampleTable
from bench.data.validate import finalize, middle, parse_frame, split_options, subject_key

_IMG = re.compile(r"^(?P<prefix>.*?)(?P<num>\d+)\.(?P<ext>bmp|jpe?g|png|tiff?)$", re.IGNORECASE)
_ACCEPTED = ("root", "camera", "apex", "apex_selector", "peak_flow_size", "annotation", "classes")
SHEET_COLUMNS = {
    "subject": ["Subject", "sub"],
    "clip": ["Filename", "Clip", "Video", "Folder"],
    "onset": ["OnsetF", "Onset", "Onset Frame", "OnsetFrame"],
    "apex": ["ApexF", "Apex", "Apex Frame", "ApexFrame"],
    "offset": ["OffsetF", "Offset", "Offset Frame", "OffsetFrame"],
    "emotion": ["Emotion", "Estimated Emotion", "Class"],
}


def canonical_clip(name: str) -> str:
    """``s01_ne_01`` and ``s1_ne_01`` -> ``s1_ne_01`` (SMIC folders do not zero-pad the subject)."""
    return re.sub(r"^s0*(\d+)", r"s\1", str(name).strip().lower())


def canonical_subject(name: str) -> str:
    """``s01``, ``s1``, ``1`` -> ``s1``."""
    t = subject_key(name).lower()
    m = re.fullmatch(r"s?0*(\d+)", t)
    return f"s{int(m.group(1))}" if m else t


def scan_frames(folder: Path) -> tuple[str, list[int]]:
    """(frame template, sorted frame numbers) of a clip folder."""
    groups: dict[tuple[str, str], list[str]] = {}
    for p in folder.iterdir():
        m = _IMG.match(p.name)
        if m and p.is_file():
            groups.setdefault((m["prefix"], m["ext"]), []).append(m["num"])
    if not groups:
        raise DataError(f"{folder}: no numbered image frames")
    (prefix, ext), nums = max(groups.items(), key=lambda kv: len(kv[1]))
    if len(groups) > 1:
        others = [f"{p}*.{e}" for (p, e) in groups if (p, e) != (prefix, ext)]
        raise DataError(f"{folder}: mixed frame name patterns {prefix}*.{ext} and {others}")
    widths = {len(n) for n in nums}
    if len(widths) == 1:
        field = f"{{frame:0{widths.pop()}d}}"
    elif not any(n.startswith("0") for n in nums):
        field = "{frame}"
    else:
        raise DataError(f"{folder}: inconsistent zero padding of frame numbers")
    return f"{escape_braces(str(folder.resolve() / prefix))}{field}.{ext}", sorted(int(n) for n in nums)


def peak_flow_apex(paths: Sequence[Path], frames: Sequence[int], size: int = 64) -> int:
    """Frame (after the first) with the largest mean Farneback flow magnitude from the first frame."""

    def load(p: Path) -> np.ndarray:
        im = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if im is None:
            raise DataError(f"{p}: cannot read image")
        s = size / max(im.shape)
        return cv2.resize(im, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else im

    first = load(paths[0])
    best, best_mag = frames[1], -1.0
    for p, f in zip(paths[1:], frames[1:]):
        flow = cv2.calcOpticalFlowFarneback(first, load(p), None, 0.5, 3, 9, 3, 5, 1.1, 0)
        mag = float(np.sqrt((flow**2).sum(-1)).mean())
        if mag > best_mag:
            best, best_mag = f, mag
    return int(best)


def _selector(spec: Any) -> tuple[Callable[..., int], str]:
    if callable(spec):
        return spec, getattr(spec, "__name__", "callable")
    mod, _, fn = str(spec).partition(":")
    if not fn:
        raise ValueError(f"apex_selector {spec!r}: expected 'module:function'")
    return getattr(importlib.import_module(mod), fn), str(spec)


def read_smic(root, camera="HS", apex="middle", apex_selector=None, peak_flow_size=64, annotation=None):
    root = require_root(root, "smic")
    base = root / camera if (root / camera).is_dir() else root
    if apex not in ("middle", "peak_flow"):
        raise ValueError(f"smic apex must be 'middle' or 'peak_flow', not {apex!r}")
    subjects = sorted((p for p in base.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name, re.I)),
                      key=lambda p: int(p.name[1:])) if base.is_dir() else []
    if not subjects:
        raise DataError(f"{base}: no SMIC subject folders s1, s2, ... (expected {root}/{camera}/s{{N}}/micro/...)")
    select, select_name = _selector(apex_selector) if apex_selector is not None else (None, "")
    recs, problems = [], []
    for sdir in subjects:
        micro = sdir / "micro"
        if not micro.is_dir():
            problems.append(f"{sdir}: no micro/ folder; subject skipped")
            continue
        for edir in sorted(p for p in micro.iterdir() if p.is_dir()):
            for cdir in sorted(p for p in edir.iterdir() if p.is_dir()):
                template, frames = scan_frames(cdir)
                onset, offset = frames[0], frames[-1]
                flags = []
                if frames != list(range(onset, offset + 1)):
                    flags.append("frame_gaps")
                    problems.append(f"{cdir}: frame numbers have gaps ({len(frames)} files for {onset}..{offset})")
                if len(frames) < 2:
                    ax, src = "", "annotated"  # validation reports the one-frame clip
                elif select is not None:
                    paths = [Path(template.format(frame=f)) for f in frames]
                    ax, src = int(select(paths, frames)), f"selector:{select_name}"
                elif apex == "peak_flow":
                    paths = [Path(template.format(frame=f)) for f in frames]
                    ax, src = peak_flow_apex(paths, frames, peak_flow_size), "peak_flow"
                else:
                    m = middle(onset, offset)
                    ax, src = min(frames[1:], key=lambda f: (abs(f - m), -f)), "middle"  # ties: later, as middle() rounds up
                recs.append(dict(dataset="smic", subject=sdir.name, clip=cdir.name, onset=onset, apex=ax,
                                 offset=offset, emotion=edir.name, au="", frame_template=template,
                                 apex_source=src, flags=";".join(flags), _file=str(cdir), _row=None))
    raw = pd.DataFrame.from_records(recs)
    if annotation:
        raw = _apply_sheet(raw, root, annotation, problems)
    return raw, base, problems


def _apply_sheet(raw: pd.DataFrame, root: Path, annotation: str, problems: list[str]) -> pd.DataFrame:
    ann = Path(annotation)
    ann = ann if ann.is_absolute() else root / ann
    sheet = pick(read_table(ann, header_keys=("subject",)), ann, SHEET_COLUMNS,
                 required=["clip", "onset", "offset"])
    index = {canonical_clip(c): i for i, c in enumerate(raw["clip"])}
    used = set()
    raw = raw.copy()
    for r in sheet.to_dict("records"):
        key = canonical_clip(r["clip"])
        if key not in index:
            raise DataError(f"{ann}, row {r['_row']}: clip {r['clip']!r} has no folder under {root}")
        i = index[key]
        used.add(i)
        raw.at[i, "onset"], raw.at[i, "offset"] = r["onset"], r["offset"]
        if str(r.get("apex", "")).strip():
            raw.at[i, "apex"], raw.at[i, "apex_source"] = r["apex"], "annotated"
        else:
            try:
                on, off = parse_frame(r["onset"]), parse_frame(r["offset"])
            except ValueError:
                on = off = None
            if on is not None and off is not None:
                raw.at[i, "apex"] = middle(on, off)
        if str(r.get("emotion", "")).strip():
            raw.at[i, "emotion"] = r["emotion"]
        raw.at[i, "_file"], raw.at[i, "_row"] = str(ann), r["_row"]
    n_unlisted = len(raw) - len(used)
    if n_unlisted:
        problems.append(f"{ann}: {n_unlisted} clip folder(s) not in the sheet keep folder-derived key frames")
    return raw


@register_dataset(aliases=("smic-hs", "smic_hs"))  # published spellings (the HS camera)
def load_smic(root: str | Path, camera: str = "HS", apex: str = "middle", apex_selector: Any = None,
              peak_flow_size: int = 64, annotation: str | None = None, classes: Any = "megc3",
              **options: Any) -> SampleTable:
    """SMIC from its folder layout (see the module docstring)."""
    opts = split_options("smic", options, _ACCEPTED)
    raw, base, problems = read_smic(root, camera, apex, apex_selector, peak_flow_size, annotation)
    return finalize(raw, name="smic", source=str(base), classes=classes, options=opts, problems=problems,
                    meta={"camera": camera, "apex": apex})
