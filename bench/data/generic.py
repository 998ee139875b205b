"""Generic folder format: a user's own data, and what the synthetic generator writes.

``root/annotations.csv`` (or ``annotation=<file>``, ``.csv`` or ``.xlsx``) with a header row and columns

``subject, clip, onset, apex, offset, label`` + optional ``emotion``, ``au``, ``frame_template``

* ``label`` is an emotion name (mapped through ``classes``) or an integer class index (then ``classes``
  must be the list of class names, or ``None`` for ``"0", "1", ...``); an optional ``emotion`` column
  keeps the source wording.
* frames: a per-row ``frame_template`` column, or the ``frame_template`` parameter, relative to ``root``
  (the parameter may be absolute), with fields ``{subject}``, ``{clip}``, ``{emotion}``, ``{dataset}`` and
  ``{frame}`` (format spec allowed), e.g. ``{subject}/{clip}/img{frame}.png`` or
  ``{subject}/{clip}/{subject}_{frame:05d}.jpg``. A template from the sheet must stay inside ``root``,
  and no value filled in may lead a path out of its folder (``../x`` and absolute values are refused,
  naming the file, row and clip).
* ``columns`` renames source headers to these names (e.g. MEB's layout:
  ``{material: clip, emotion: label, AU: au}``); headers match case- and space-insensitively.
* subjects are read as text (``006`` stays ``006``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from bench.data import register_dataset
from bench.data._sheets import norm_header, partial_format, read_table, require_root
from bench.data.paths import check_values, confine, template_base
from bench.data.table import DataError, SampleTable
from bench.data.validate import finalize, parse_frame, split_options

_ACCEPTED = ("root", "annotation", "frame_template", "classes", "columns", "sheet", "dataset")


def read_generic(
    root: str | Path,
    annotation: str = "annotations.csv",
    frame_template: str | None = None,
    columns: Mapping[str, str] | None = None,
    sheet: str | None = None,
    dataset: str = "generic",
):
    """Raw rows (before validation) and whether labels are integer indices."""
    root = require_root(root, "generic")
    ann = Path(annotation)
    ann = ann if ann.is_absolute() else root / ann
    renames = {norm_header(k): norm_header(v) for k, v in (columns or {}).items()}
    # the header must contain 'subject' after renaming; find it by any alias that maps to subject
    subject_aliases = [k for k, v in renames.items() if v == "subject"] or ["subject"]
    df = read_table(ann, sheet=sheet, header_keys=subject_aliases[:1])
    df = df.rename(columns=renames)
    required = ["subject", "clip", "onset", "apex", "offset", "label"]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"{ann}: missing column(s) {missing}; found {[c for c in df.columns if not c.startswith('_')]} "
            f"(rename with dataset.columns={{source: standard}})"
        )
    if "frametemplate" in df.columns:
        df = df.rename(columns={"frametemplate": "frame_template"})
    if frame_template is None and "frame_template" not in df.columns:
        raise DataError(f"{ann}: no frame_template column and no frame_template parameter")

    labels = [str(v).strip() for v in df["label"]]
    int_labels = bool(labels) and all(_is_int(v) for v in labels if v)
    raw = df[["subject", "clip", "onset", "apex", "offset", "_row", "_file"]].copy()
    raw["dataset"] = dataset
    raw["au"] = df["au"] if "au" in df.columns else ""
    if int_labels:
        raw["label"] = labels
        raw["emotion"] = df["emotion"] if "emotion" in df.columns else ""
    else:
        raw["emotion"] = labels
    raw["frame_template"] = [
        _row_template(root, frame_template if frame_template is not None else str(r["frame_template"]),
                      frame_template is None,
                      {"subject": r["subject"], "clip": r["clip"], "dataset": dataset,
                       "emotion": raw.at[i, "emotion"] or "", "label": r["label"]},
                      f"{ann}, row {r['_row']} ({r['subject']}/{r['clip']})")
        for i, r in df.iterrows()]
    return raw, int_labels, ann


def _row_template(root: Path, t: str, from_sheet: bool, values: Mapping[str, Any], at: str) -> str:
    """One row's frame template, filled but for ``{frame}``. Sheet values may not lead it out of its
    folder (``root``; for the ``frame_template`` parameter, the folder it names), and a template
    written in the sheet may not leave ``root``."""
    if not t.strip():
        raise DataError(f"{at}: empty frame_template")
    tp = Path(t)
    t = str(tp if tp.is_absolute() else root.resolve() / tp)
    try:
        filled = partial_format(t, values)
    except (KeyError, ValueError) as e:
        raise DataError(f"{at}: bad frame_template {t!r} ({e!s})") from e
    check_values(t, values, at)
    base = root.resolve() if from_sheet else template_base(root.resolve(), t)
    confine(base, Path(filled), at, f"frame_template {tp.as_posix()!r}{' (from the sheet)' if from_sheet else ''}")
    return filled


def _is_int(v: str) -> bool:
    try:
        return parse_frame(v) is not None
    except ValueError:
        return False



def index_class_names(raw, int_labels: bool, classes: Any, ann) -> list[str] | None:
    """Class names for integer labels: ``classes`` as given, or "0".."K-1" when there are none."""
    if not int_labels:
        return None
    if classes is None:
        n = max(int(parse_frame(v)) for v in raw["label"]) + 1 if len(raw) else 0
        return [str(i) for i in range(n)]
    if isinstance(classes, Sequence) and not isinstance(classes, str):
        return [str(c) for c in classes]
    raise DataError(f"{ann}: labels are class indices, so classes must be a list of class names")


@register_dataset
def load_generic(
    root: str | Path,
    annotation: str = "annotations.csv",
    frame_template: str | None = None,
    classes: Any = None,
    columns: Mapping[str, str] | None = None,
    sheet: str | None = None,
    dataset: str = "generic",
    **options: Any,
) -> SampleTable:
    """A dataset in the generic folder format (see the module docstring)."""
    opts = split_options("generic", options, _ACCEPTED)
    raw, int_labels, ann = read_generic(root, annotation, frame_template, columns, sheet, dataset)
    given = index_class_names(raw, int_labels, classes, ann)
    return finalize(raw, name=dataset, source=str(ann), classes=classes, options=opts, given_classes=given,
                    classes_inferred=classes is None)
