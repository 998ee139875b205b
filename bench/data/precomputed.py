"""``precomputed`` dataset: flows distributed instead of frames (many public MER works do this).

``root/<annotation>`` (csv or xlsx, header row) with columns ``subject, clip, label`` (+ optional
``emotion, au`` and ``onset, apex, offset``), and per-sample flow files for each phase located by
filename templates relative to ``root`` (absolute allowed; the values filled in may not lead out of
the folder the template names), e.g.::

    phase1_template: "{subject}_{clip} .png"      # onset -> apex
    phase2_template: "{subject}_{clip}_1 .png"    # apex -> offset (names may contain spaces)

``source_column`` names the annotation column holding each row's own source database (the MEGC2019
releases' ``dataset`` column: casme2 / smic / samm; spellings such as ``CASME_II`` are normalised), so
a composite keeps its per-dataset breakdown; without it every row's source is ``dataset``.
``apex_rule`` (text) says how the files' apex was chosen, for the run manifest (e.g. the releases:
``not given: flows precomputed by the release``). A frame column that is present but empty in every
row (the releases' ``apex``) counts as absent.

Template fields: every annotation column (headers normalised: lower case, no spaces/underscores, so
``Onset Frame`` -> ``{onsetframe}``), ``{dataset}`` and ``{row}`` (0-based data row). Instead of a
template, ``phase1_array`` / ``phase2_array`` may name ONE stacked ``.npy`` (N, C, H, W) whose
sample i is the annotation's i-th data row (MEB's ``per_of.npy`` layout). A phase with neither is
absent: its flow is zeros (flag ``phase2_missing:zeros``) and the representations that need it are
reported as unavailable.

Formats (by extension): ``.npy`` / ``.npz`` float arrays, Middlebury ``.flo``, or 8-bit/16-bit
images; ``flow_file`` declares how to read them (``bench.data.flowfiles.FlowFileSpec``): ``channels``
(e.g. ``[u, v, strain]``; images: RGB order), ``layout`` (chw | hwc | auto), ``npz_key``, and for
images ``normalisation`` (``fixed`` with ``scale``/``offset``: value = pixel * scale + offset;
``minmax``: per-image stretch, sign and scale of u, v lost). The loader logs, and records in
``table.meta["exactness_base"]``, how exact the files are as flow (the runner adds, per representation,
which are exact and which only approximate: ``representations.annotate_exactness``); the
``stored`` representation feeds the declared channels as stored (e.g. the releases' strain).
The MEGC2019 flow releases have presets: ``dataset=megc2019_htnet`` / ``megc2019_causalnet``.

``label`` is an emotion (mapped through ``classes``, see ``bench.data.classes``) or a class index
(then ``classes`` is the list of names, or None for "0", "1", ...). Without onset/apex/offset the
frame numbers are placeholders 0/1/2 (flag ``no_frame_numbers``): nothing reads frames here.
The table gets columns ``flow1_path, flow1_index, flow2_path, flow2_index`` (index -1 = one file
per sample; path '' = phase absent), which ``bench.flow.compute_flows`` loads instead of computing.
Validation (labels, duplicates, subjects) is ``bench.data.validate.finalize`` with frame checks off;
flow files are checked here, all bad files listed in one error naming the file, row and clip: a
sheet value that would lead a templated name out of its folder (``../x``, an absolute path:
``bench.data.paths``), a file that is missing or no regular file (a directory, a symlink loop,
``/dev/zero``), empty, over ``bench.data.flowfiles.MAX_FLOW_PIXELS`` by its header (nothing is
decoded), or one file serving two (clip, phase) roles (``{clip}_1`` for phase 2 beside a clip named
``<clip>_1``). A file that cannot be read or holds non-real (e.g. complex) values is an error naming
it when flows load. A sample's key is the content of its files (``flowfiles.content_digest``: every
stored channel), never their location.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from bench.data import register_dataset
from bench.data._sheets import norm_header, read_table, require_root
from bench.data.generic import index_class_names
from bench.data.table import DataError, SampleTable
from bench.data.validate import MAX_ERRORS_SHOWN, finalize, parse_frame, split_options
from bench.data.flowfiles import (FLOW_EXTS, IMAGE_EXTS, FlowFileSpec, check_flow_size, check_pixels, check_real,
                                  load_npy, spec_from_mapping)
from bench.data.paths import check_values, confine, file_problem, template_base

log = logging.getLogger("bench.data")

_ACCEPTED = ("root", "annotation", "phase1_template", "phase2_template", "phase1_array", "phase2_array",
             "flow_file", "classes", "columns", "sheet", "dataset", "source_column", "apex_rule", "release",
             "clone")

_FLOW_COLUMNS = ("flow1_path", "flow1_index", "flow2_path", "flow2_index")


def exactness(exts: set[str], spec: FlowFileSpec) -> str:
    """How exact these files are as flow: 'exact' | 'exact up to ...' | 'approximate: why'.

    The format decides this base note; each representation adds what it knows of itself (the
    phases it reads, the stored channels it recomputes) in ``representations.annotate_exactness``,
    which the runner calls, so no representation is named (or imported) here.
    """
    images = bool(exts & IMAGE_EXTS)
    if not images:
        return "exact"
    if spec.normalisation == "fixed":
        return f"exact up to the images' quantisation (step = scale = {spec.scale} px)"
    return ("approximate: per-image min-max normalised images lost the sign and scale of u, v "
            "(u, v, magnitudes, strain and Mc are computed from rescaled values in [-1, 1])")


def _template_path(root: Path, template: str, values: Mapping[str, Any], at: str) -> Path:
    try:
        p = Path(template.format(**values))
    except (KeyError, IndexError, ValueError) as e:
        raise DataError(f"{at}: bad flow file template {template!r} ({type(e).__name__}: {e}); "
                        f"fields available: {sorted(values)}") from e
    return p if p.is_absolute() else root / p


def _outside_problems(root: Path, template: str, values: Mapping[str, Any], p: Path, at: str) -> list[str]:
    """[why] when a sheet value leads the templated file ``p`` out of the folder the template fixes
    (``root``, or the template's own leading folders), else []."""
    try:
        check_values(template, values, at)
        confine(template_base(root, template), p, at, f"flow file template {template!r}")
    except DataError as e:
        return [str(e)]
    return []


def _skip_phase2(node: Mapping[str, Any], representation, label: str) -> tuple[bool, str]:
    """A single-phase release (no apex->offset files) cannot feed a representation that reads phase 2."""
    if node.get("phase2_template") or node.get("phase2_array") or 2 not in representation.phases:
        return False, ""
    return True, (f"unavailable: dataset {label} has no apex->offset flow files (a single-phase release: "
                  f"phase2_template is null), and {representation.name} reads phase 2 "
                  f"(channels {', '.join(representation.channels)})")


@register_dataset(reads_flows=True, skip=_skip_phase2)
def load_precomputed(
    root: str | Path,
    annotation: str = "annotations.csv",
    phase1_template: str | None = None,
    phase2_template: str | None = None,
    phase1_array: str | None = None,
    phase2_array: str | None = None,
    flow_file: Mapping[str, Any] | None = None,
    classes: Any = None,
    columns: Mapping[str, str] | None = None,
    sheet: str | None = None,
    dataset: str = "precomputed",
    source_column: str | None = None,
    apex_rule: str | None = None,
    release: str | None = None,
    clone: str | None = None,
    **options: Any,
) -> SampleTable:
    """A precomputed-flow dataset (see the module docstring)."""
    opts = split_options("precomputed", options, _ACCEPTED)
    if opts.check_frames:
        opts.check_frames = False  # there are no frames; flow files are checked below instead
    spec = spec_from_mapping(flow_file)
    root = require_root(root, dataset, clone).resolve()  # a public release's preset names its clone command
    ann = Path(annotation)
    ann = ann if ann.is_absolute() else root / ann
    _check_annotation_file(ann, root, clone)
    templates = {1: phase1_template, 2: phase2_template}
    _check_phase_sources(ann, templates, {1: phase1_array, 2: phase2_array})
    sh = _read_annotation(ann, columns, sheet, source_column)
    arrays = _load_arrays(root, ann, sh.df, {1: phase1_array, 2: phase2_array})
    raw, int_labels = _raw_rows(sh, ann, dataset, source_column)
    flow_cols, exts = _flow_file_columns(sh.df, ann, root, dataset, templates, arrays, spec)
    if exts & IMAGE_EXTS and spec.normalisation is None:
        raise DataError(f"{ann}: flows are images; declare flow_file.normalisation (fixed | minmax)")

    for j, c in enumerate(_FLOW_COLUMNS):  # carried through validation with their row (renames included)
        raw[c] = [e[j] for e in flow_cols]
    given = index_class_names(raw, int_labels, classes, ann)
    has_phase2 = phase2_template is not None or phase2_array is not None
    table = finalize(raw, name=dataset, source=str(ann), classes=classes, options=opts, given_classes=given,
                     meta={"flow_file": _spec_dict(spec), "flow_formats": sorted(exts),
                           "exactness_base": exactness(exts, spec),
                           "flow_source": "precomputed", "release": release or "",
                           "source_column": source_column or "", "has_phase2": has_phase2,
                           "apex_rule": apex_rule or ("annotated (onset, apex, offset given)" if sh.frame_cols
                                                      else "not given: no frame numbers in the sample list")},
                     classes_inferred=classes is None, carry=_FLOW_COLUMNS)
    table.df = table.df.astype({"flow1_path": str, "flow1_index": np.int64, "flow2_path": str,
                                "flow2_index": np.int64})
    return table


@dataclass
class _Sheet:
    """The annotation as read: its rows, the frame columns it gives and its source-database column."""

    df: pd.DataFrame
    frame_cols: list[str]
    src_col: str | None


def _check_annotation_file(ann: Path, root: Path, clone: str | None) -> None:
    """The sample list must be a file: a missing one names the keys that move it (and, for a public
    release, the clone whose root holds it)."""
    if not ann.is_file():
        what = f"; is dataset.root the root of a clone ({clone})?" if clone else "."
        raise DataError(f"{ann}: annotation file not found under dataset.root={root}{what} "
                        f"Point dataset.annotation=<file> at the sample list, or dataset.root=<folder> at its folder")


def _check_phase_sources(ann: Path, templates: Mapping[int, str | None], arrays: Mapping[int, str | None]) -> None:
    """Phase 1 needs a template or an array; no phase may have both."""
    if templates[1] is None and arrays[1] is None:
        raise DataError(f"{ann}: precomputed needs phase1_template or phase1_array (onset->apex flows)")
    for ph in (1, 2):
        if templates[ph] is not None and arrays[ph] is not None:
            raise DataError(f"{ann}: give phase{ph}_template or phase{ph}_array, not both")


def _read_annotation(ann: Path, columns: Mapping[str, str] | None, sheet: str | None,
                     source_column: str | None) -> _Sheet:
    """Read the annotation and check its required, frame and source-database columns."""
    renames = {norm_header(k): norm_header(v) for k, v in (columns or {}).items()}
    subject_aliases = [k for k, v in renames.items() if v == "subject"] or ["subject"]
    df = read_table(ann, sheet=sheet, header_keys=subject_aliases[:1]).rename(columns=renames)
    missing = [c for c in ("subject", "clip", "label") if c not in df.columns]
    if missing:
        raise DataError(f"{ann}: missing column(s) {missing}; found "
                        f"{[c for c in df.columns if not c.startswith('_')]} (rename with dataset.columns=...)")
    present = [c for c in ("onset", "apex", "offset") if c in df.columns]
    empty = [c for c in present if all(_is_blank(v) for v in df[c])]  # e.g. the releases' empty apex
    frame_cols = [c for c in present if c not in empty]
    if frame_cols and len(frame_cols) != 3:
        raise DataError(f"{ann}: give all of onset, apex, offset or none (found only {frame_cols}"
                        + (f"; {empty} present but empty in every row" if empty else "") + ")")
    src_col = None
    if source_column is not None:
        src_col = renames.get(norm_header(source_column), norm_header(source_column))
        if src_col not in df.columns:
            raise DataError(f"{ann}: source_column {source_column!r} is not a column; found "
                            f"{[c for c in df.columns if not c.startswith('_')]}")
    return _Sheet(df, frame_cols, src_col)


def _load_arrays(root: Path, ann: Path, df: pd.DataFrame,
                 arrays: Mapping[int, str | None]) -> dict[int, tuple[Path, int]]:
    """Phase -> (stacked .npy path, N) for the phases given as one array, checked against the rows."""
    out: dict[int, tuple[Path, int]] = {}
    for ph, a in arrays.items():
        if a is None:
            continue
        p = Path(a) if Path(a).is_absolute() else root / a
        why = file_problem(p)
        if p.suffix.lower() != ".npy" or why:
            raise DataError(f"{ann}: phase{ph}_array {p} must be an existing stacked .npy file"
                            + (f" (it {why})" if why else ""))
        try:
            arr = check_real(load_npy(p, mmap_mode="r"), p)
            if arr.ndim == 4:  # a memory map: only the header has been read
                check_pixels(p, arr.shape[2] * arr.shape[3], f"{arr.shape[3]}x{arr.shape[2]} per sample")
        except ValueError as e:
            raise DataError(f"{ann}: phase{ph}_array: {e}") from None
        if arr.ndim != 4 or arr.shape[0] != len(df):
            raise DataError(f"{p}: phase{ph}_array has shape {arr.shape}; expected (N={len(df)} rows of "
                            f"{ann.name}, C, H, W)")
        out[ph] = (p, arr.shape[0])
    if len(out) == 2 and out[1][0].resolve() == out[2][0].resolve():
        raise DataError(f"{ann}: phase1_array and phase2_array are one file ({out[1][0]}): each sample "
                        "would be its own apex->offset flow")
    return out


def _raw_rows(sh: _Sheet, ann: Path, dataset: str, source_column: str | None) -> tuple[pd.DataFrame, bool]:
    """The raw frame ``finalize`` validates, and whether the labels are class indices."""
    df = sh.df
    labels = [str(v).strip() for v in df["label"]]
    int_labels = bool(labels) and all(_is_int(v) for v in labels if v)
    raw = df[["subject", "clip", "_row", "_file"]].copy()
    raw["dataset"] = dataset
    if sh.src_col is not None:
        raw["dataset"] = _source_databases(df, sh.src_col, ann, source_column)
    raw["au"] = df["au"] if "au" in df.columns else ""
    if int_labels:
        raw["label"] = labels
        raw["emotion"] = df["emotion"] if "emotion" in df.columns else ""
    else:
        raw["emotion"] = labels
    if sh.frame_cols:
        for c in sh.frame_cols:
            raw[c] = df[c]
        raw["flags"] = ""
    else:
        raw["onset"], raw["apex"], raw["offset"] = 0, 1, 2
        raw["apex_source"] = "fallback:no_frame_numbers"
        raw["flags"] = "no_frame_numbers"
    raw["frame_template"] = ""
    return raw, int_labels


def _source_databases(df: pd.DataFrame, src_col: str, ann: Path, source_column: str | None) -> list[str]:
    """Each row's normalised source database; every row must name one."""
    from bench.data.databases import normalise_database  # CASME_II / SMIC-HS -> casme2 / smic

    blank = [f"{ann}, row {r['_row']} ({_name(r)}): {source_column} (source database) is empty"
             for _, r in df.iterrows() if _is_blank(r[src_col])]
    if blank:
        raise DataError(f"{len(blank)} row(s) without a source database:\n  " + "\n  ".join(blank[:MAX_ERRORS_SHOWN]))
    return [normalise_database(v) for v in df[src_col]]


def _flow_file_columns(df: pd.DataFrame, ann: Path, root: Path, dataset: str,
                       templates: Mapping[int, str | None], arrays: Mapping[int, tuple[Path, int]],
                       spec: FlowFileSpec) -> tuple[list[tuple[str, int, str, int]], set[str]]:
    """Per row (flow1_path, flow1_index, flow2_path, flow2_index) and the file types; bad files raise together."""
    flow_cols: list[tuple[str, int, str, int]] = []
    errors: list[str] = []
    exts: set[str] = set()
    roles = _FileRoles()
    for k, (i, r) in enumerate(df.iterrows()):
        at = f"{ann}, row {r['_row']} ({_name(r)})"
        values = {c: r[c] for c in df.columns if not c.startswith("_")}
        values.update(dataset=dataset, row=k)
        entry: list[Any] = []
        for ph in (1, 2):
            if ph in arrays:
                entry += [str(arrays[ph][0]), k]
                exts.add(".npy")
            elif templates[ph] is None:
                entry += ["", -1]
            else:
                p, problems = _phase_file(root, templates[ph], values, ph, at, spec)
                errors.extend(problems or roles.claim(p, ph, at))
                exts.add(p.suffix.lower())
                entry += [str(p), -1]
        flow_cols.append(tuple(entry))  # type: ignore[arg-type]
    if len(errors) == 1:
        raise DataError(errors[0])  # one bad file: one line
    if errors:
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise DataError(f"{len(errors)} flow file error(s):\n  " + "\n  ".join(errors[:MAX_ERRORS_SHOWN]) + more)
    return flow_cols, exts


def _phase_file(root: Path, template: str, values: Mapping[str, Any], ph: int, at: str,
                spec: FlowFileSpec) -> tuple[Path, list[str]]:
    """One row's templated file of phase ``ph`` and what is wrong with it (nothing: [])."""
    p = _template_path(root, template, values, at)  # a bad template is one error, raised at once
    return p, _outside_problems(root, template, values, p, at) or _flow_file_problems(p, ph, at, spec)


def _flow_file_problems(p: Path, ph: int, at: str, spec: FlowFileSpec) -> list[str]:
    """What is wrong with one templated flow file (unsupported type, missing or no regular file,
    empty, over the size cap by its header), if anything."""
    if p.suffix.lower() not in FLOW_EXTS:
        return [f"{at}: phase-{ph} flow {p}: unsupported type {p.suffix!r} (supported: {sorted(FLOW_EXTS)})"]
    why = file_problem(p)
    if why == "is missing":
        return [f"{at}: phase-{ph} flow file missing: {p}"]
    if why:
        return [f"{at}: phase-{ph} flow {p} {why}"]
    if p.stat().st_size == 0:
        return [f"{at}: phase-{ph} flow file is empty (0 bytes): {p}"]
    try:
        check_flow_size(p, spec)  # the header only: a huge image is refused before it is decoded
    except ValueError as e:
        return [f"{at}: phase-{ph} flow: {e}"]
    return []


class _FileRoles:
    """Which (clip, phase) each flow file serves: one file in two roles is an error naming both
    (e.g. ``{clip}_1.png`` as clip 007_3's apex->offset flow is clip 007_3_1's onset->apex one)."""

    def __init__(self):
        self.seen: dict[tuple[int, int], tuple[str, int, Path]] = {}

    def claim(self, p: Path, ph: int, at: str) -> list[str]:
        st = p.stat()  # by inode: two spellings or a link of one file are one file
        key = (st.st_dev, st.st_ino)
        if key not in self.seen:
            self.seen[key] = (at, ph, p)
            return []
        at0, ph0, p0 = self.seen[key]
        same = "" if p0 == p else f" ({p0})"
        return [f"{at}: phase-{ph} flow {p} is also the phase-{ph0} flow of {at0}{same}: one file cannot be "
                "two samples' flows (do the phase templates overlap with clip names, e.g. '{clip}_1'?)"]


def _spec_dict(spec: FlowFileSpec) -> dict[str, Any]:
    """The flow-file spec as plain data, for the table's meta."""
    return {"channels": list(spec.channels), "layout": spec.layout, "npz_key": spec.npz_key,
            "normalisation": spec.normalisation,
            "scale": list(spec.scale) if isinstance(spec.scale, tuple) else spec.scale,
            "offset": list(spec.offset) if isinstance(spec.offset, tuple) else spec.offset}


def _is_blank(v: Any) -> bool:
    return v is None or str(v).strip().lower() in ("", "nan", "none", "null", "/", "-")


def _name(r: Mapping[str, Any]) -> str:
    return f"{str(r.get('subject', '?')).strip()}/{str(r.get('clip', '?')).strip()}"


def _is_int(v: str) -> bool:
    try:
        return parse_frame(v) is not None
    except ValueError:
        return False
