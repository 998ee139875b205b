"""Validation every loader's rows go through (``finalize``) before they become a ``SampleTable``.

Loaders produce a *raw* frame: text columns ``dataset, subject, clip, onset, apex, offset, emotion, au,
frame_template`` (optionally ``label`` when the source gives class indices, ``apex_source`` when the
loader chose the apex itself) plus ``_file`` and ``_row`` (the 1-based spreadsheet row the user sees;
``None`` for folder-derived rows, which are then named by their clip). Messages name the row and the
clip it holds: ``<file>, row 31 (sub04/EP12_01f): apex '/' ...``. ``finalize`` applies these checks:

=============================== ========================================================================
check                           outcome
=============================== ========================================================================
onset/offset missing or         error. Without both ends the clip's extent is unknown.
non-numeric / non-integer /
negative
offset <= onset                 error (a clip needs onset < apex <= offset, hence >= 2 frames).
apex missing or non-numeric     fallback: apex = middle frame ``(onset + offset + 1) // 2``,
(CASME II writes "/", SAMM -1)  ``apex_source = fallback:missing_apex``. The middle frame is the
                                convention the field uses for unannotated apexes (SMIC, MEB).
apex outside onset..offset      fallback: middle frame, ``fallback:apex_outside_range``. The two SAMM v2
(SAMM v2 has two)               cases are typing slips of a digit; onset/offset bound the clip reliably,
                                the apex does not, and dropping the clips would cost scarce classes.
apex == onset                   fallback: middle frame, ``fallback:apex_equals_onset`` — an onset->apex
                                phase of zero length has no motion, which would poison any
                                representation built on it.
unknown emotion (typo, empty)   error (see ``bench.data.classes``); a known emotion the class set does
                                not use is dropped with a logged per-emotion count.
class index out of range        error (sources giving integer labels).
a non-index label (``1.5``,     error naming the row and the clip, when most labels are class indices
``happy``) among class indices  (a loader that saw it took the whole column for class names).
duplicated clip                 error naming both rows (same subject and clip twice).
whitespace (space, tab,         error naming the row, the subject/clip and the value (see
newline, ...) or an invisible   ``bench.data.table.name_problem``): the names become fields of the
character in a subject, clip    whitespace-separated MEGC2019 prediction log, which could not be
or dataset name; a clip         written or read back. Not encoded: a silently changed name would no
starting with ``#``; a comma    longer match the source sheet. Fix the sheet, or rename in
in a subject or dataset name    configuration: ``overrides: {"<subject>/<clip>": {clip: NEW}}`` or
                                ``{"<subject>/*": {subject: NEW}}`` (every clip of the subject).
missing frame files             ``check_frames=True``: error naming the row and the missing file;
(onset, apex, offset frames)    ``"summary"``: one summarised problem, rows kept; ``False``: not checked.
class empty after mapping       error (a LOSO metric over an empty class is undefined).
``classes: null`` (every label  a WARNING listing every class with its clip and subject counts, at
found is a class)               load, before any work; a class with a single clip or a single subject
                                (a likely label typo) is a problem line (``strict=True``: an error)
                                and is listed in ``table.meta["inferred_classes"]`` and the summary.
fewer than ``min_subjects``     error (LOSO needs at least two subjects).
=============================== ========================================================================

Known errata in a source sheet can be corrected in configuration instead of editing the licensed file:
``overrides: {"<subject>/<clip>": {offset: 91}}`` (fields onset, apex, offset, emotion, au, label) is
applied before the checks, flagged ``override:<fields>`` and listed in ``problems`` with the old values.
A per-clip override may also rename the clip (``clip``); the key ``"<subject>/*"`` renames a whole
subject (``{subject: NEW}``, its only field: renaming one clip's subject would split a subject). Keys
name clips as loaded, before any rename.

Every fallback is logged (``logging`` at WARNING, logger ``bench.data``), marked in the row's ``flags``
and ``apex_source``, and counted in ``SampleTable.problems``. ``strict=True`` turns every fallback into an
error. ``errors="collect"`` (used by ``python -m bench.data summary``) drops erroneous rows and records
each error in ``problems`` instead of raising, so the summary shows every problem at once. With
``errors="raise"`` all row errors are gathered first and raised together in one ``DataError``.
"""

from __future__ import annotations

import logging
import numbers
import re
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from bench.data.classes import ClassSet, resolve_class_set
from bench.data.table import ALL_COLUMNS, DataError, SampleTable, name_problem

log = logging.getLogger("bench.data")

_MISSING_TEXT = {"", "/", "-", "nan", "none", "null", "n/a", "na", "?"}
MAX_ERRORS_SHOWN = 25


@dataclass
class Options:
    """Validation options every loader accepts as keyword arguments."""

    check_frames: bool | str = True  # True | False | "summary"
    strict: bool = False
    errors: str = "raise"  # "raise" | "collect"
    min_subjects: int = 2
    # per-clip corrections of known errata, {"<subject>/<clip>": {"offset": 91, ...}}, applied before the
    # checks and recorded (flag ``override:<fields>`` + a problem line); an unknown clip or field is an error
    overrides: Mapping[str, Mapping[str, Any]] | None = None

    def __post_init__(self):
        if isinstance(self.check_frames, str):
            v = self.check_frames.strip().lower()
            mapping = {"true": True, "false": False, "summary": "summary", "yes": True, "no": False}
            if v not in mapping:
                raise ValueError(f"check_frames must be true, false or 'summary', not {self.check_frames!r}")
            self.check_frames = mapping[v]
        if self.errors not in ("raise", "collect"):
            raise ValueError(f"errors must be 'raise' or 'collect', not {self.errors!r}")


OPTION_NAMES = tuple(f.name for f in fields(Options))


def split_options(loader: str, params: Mapping[str, Any], accepted: Sequence[str] = ()) -> Options:
    """Options from a loader's ``**kwargs``; anything else is an unknown parameter (listed)."""
    unknown = [k for k in params if k not in OPTION_NAMES]
    if unknown:
        raise TypeError(
            f"dataset {loader!r}: unknown parameter(s) {unknown}. "
            f"Accepted: {', '.join([*accepted, *OPTION_NAMES])}"
        )
    return Options(**params)


def where(file: str, row: Any, clip: str = "") -> str:
    if row is None or (pd.api.types.is_scalar(row) and pd.isna(row)):
        return f"{file}, sample {clip}" if clip else file
    return f"{file}, row {int(row)}" + (f" ({clip})" if clip else "")  # the row and the clip it holds


def parse_frame(text: Any) -> int | None:
    """A frame number from text; ``None`` when missing; ``ValueError`` when not a non-negative int."""
    if text is None:
        return None
    if isinstance(text, numbers.Integral) and not isinstance(text, bool):
        v = int(text)
    else:
        s = str(text).strip()
        if s.lower() in _MISSING_TEXT:
            return None
        try:
            f = float(s)
        except ValueError:
            raise ValueError(f"{s!r} is not a frame number") from None
        if f != f:
            return None
        if not f.is_integer():
            raise ValueError(f"{s!r} is not an integer frame number")
        v = int(f)
    return v


def _text(v: Any) -> str:
    """Cell text; ``None``/NaN (absent in a concatenated source) -> ``''``."""
    if v is None or (pd.api.types.is_scalar(v) and pd.isna(v)):
        return ""
    return str(v).strip()


def middle(onset: int, offset: int) -> int:
    """Middle frame, rounded up so it is after the onset whenever offset > onset."""
    return (onset + offset + 1) // 2


class _Collector:
    def __init__(self, opts: Options):
        self.opts = opts
        self.errors: list[str] = []
        self.problems: list[str] = []

    def error(self, msg: str) -> None:
        self.errors.append(msg)

    def fallback(self, msg: str) -> None:
        if self.opts.strict:
            self.errors.append(msg + " (strict mode: fallbacks are errors)")
        else:
            log.warning(msg)
            self.problems.append(msg)

    def note(self, msg: str) -> None:
        log.warning(msg)
        self.problems.append(msg)

    def flush(self, stage: str) -> None:
        if not self.errors:
            return
        if self.opts.errors == "collect":
            for e in self.errors:
                log.warning(e)
                self.problems.append(f"error: {e}")
            self.errors = []
            return
        errs = self.errors
        shown = errs[:MAX_ERRORS_SHOWN]
        more = f"\n  ... and {len(errs) - len(shown)} more" if len(errs) > len(shown) else ""
        if len(errs) == 1:
            raise DataError(errs[0])
        raise DataError(f"{len(errs)} {stage} errors:\n  " + "\n  ".join(shown) + more)


def _frame_paths(template: str, frames: Iterable[int]) -> list[Path]:
    return [Path(template.format(frame=int(f))) for f in frames]


@dataclass
class _Labelled:
    """Rows after label mapping, with the class list and the class set's name."""

    recs: list[dict]
    classes: list[str]
    class_set_name: str


def finalize(
    raw: pd.DataFrame,
    *,
    name: str,
    source: str,
    classes: Any = None,
    options: Options | None = None,
    given_classes: Sequence[str] | None = None,
    problems: Sequence[str] = (),
    meta: Mapping[str, Any] | None = None,
    classes_inferred: bool | None = None,
    carry: Sequence[str] = (),
) -> SampleTable:
    """Validate a raw loader frame and build the ``SampleTable`` (see the module docstring).

    ``classes`` is a class-set spec (``bench.data.classes``) applied to ``emotion``. When the source
    already gives class indices, pass ``given_classes`` (names in index order) and a ``label`` column.
    ``classes_inferred``: the class list was not given by the user but read off the labels (default:
    ``classes is None`` without ``given_classes``; a loader naming integer labels "0".."K-1" itself
    passes True), which triggers the class-count warning and the likely-typo check.
    ``carry``: raw columns passed through unchanged to the table's rows (a precomputed table's flow
    file columns), so they follow their row through overrides that rename it.
    """
    opts = options or Options()
    col = _Collector(opts)
    col.problems.extend(problems)
    raw = _prepare_raw(raw, source, col)
    _check_dataset_names(raw, source, col)
    recs = [rec for r in raw.to_dict("records") if (rec := _validate_row(r, carry, col)) is not None]
    col.flush("row")
    lab = _assign_labels(recs, classes, given_classes, source, col)
    col.flush("label")
    lab.recs = _check_duplicates(lab.recs, col)
    col.flush("duplicate")
    if opts.check_frames:
        lab.recs = _check_frame_files(lab.recs, source, col)
        col.flush("frame")
    df = _records_frame(lab.recs, carry)
    if classes_inferred is None:
        classes_inferred = classes is None and given_classes is None
    inferred = _check_table(df, lab, source, col, classes_inferred)
    col.flush("table")
    m = dict(meta or {})
    m.setdefault("class_set", lab.class_set_name)
    if inferred is not None:
        m["inferred_classes"] = inferred
    return SampleTable(df=df, classes=lab.classes, name=name, source=source, problems=col.problems, meta=m)


_RAW_REQUIRED = ("dataset", "subject", "clip", "onset", "apex", "offset", "frame_template", "_file", "_row")


def _prepare_raw(raw: pd.DataFrame, source: str, col: _Collector) -> pd.DataFrame:
    """Reset the index, apply the configured overrides and check the loader gave every column."""
    raw = raw.reset_index(drop=True)
    if col.opts.overrides:
        raw = _apply_overrides(raw, col.opts.overrides, source, col)
    for c in _RAW_REQUIRED:
        if c not in raw.columns:
            raise ValueError(f"loader bug: raw table lacks column {c!r}")
    return raw


def _check_dataset_names(raw: pd.DataFrame, source: str, col: _Collector) -> None:
    """An error for each dataset name that cannot be a prediction-log field."""
    for d in sorted({str(v) for v in raw["dataset"]}):
        why = name_problem(d, "dataset")
        if why:
            col.error(f"{source}: dataset name {d!r} {why}; choose another name (the loader's dataset= option)")


def _validate_row(r: Mapping[str, Any], carry: Sequence[str], col: _Collector) -> dict | None:
    """One raw row -> a validated record, or None (its errors recorded in ``col``)."""
    file, row = r["_file"], r.get("_row")
    subject = str(r["subject"]).strip()
    clip = str(r["clip"]).strip()
    at = where(file, row, f"{subject}/{clip}")
    if not _check_row_names(subject, clip, at, where(file, row), col):
        return None
    extent = _row_extent(r, at, col)
    if extent is None:
        return None
    onset, offset = extent
    apex, apex_source, flags = _row_apex(r, onset, offset, at, col)
    extra_flags = [f for f in _text(r.get("flags")).split(";") if f]
    return dict(
        dataset=str(r["dataset"]),
        subject=subject,
        clip=clip,
        onset=onset,
        apex=apex,
        offset=offset,
        label=r.get("label"),
        emotion=_text(r.get("emotion")),
        au=_text(r.get("au")),
        frame_template=str(r["frame_template"]),
        apex_source=apex_source,
        flags=";".join(extra_flags + flags),
        _at=at,
        _file=file,
        **{c: r.get(c) for c in carry},
    )


def _check_row_names(subject: str, clip: str, at: str, at_row: str, col: _Collector) -> bool:
    """Whether the subject and clip names are usable (errors recorded otherwise)."""
    # at_row, for a bad name: the message shows the names quoted instead
    if not subject or subject.lower() == "nan":
        col.error(f"{at}: empty subject")
        return False
    if not clip or clip.lower() == "nan":
        col.error(f"{at}: empty clip name")
        return False
    ok = True
    for what, v in (("subject", subject), ("clip", clip)):
        why = name_problem(v, what)
        if why:
            fix = (f'overrides: {{"{subject}/*": {{subject: NEW}}}} (every clip of the subject)'
                   if what == "subject" else f'overrides: {{"{subject}/{clip}": {{clip: NEW}}}}')
            col.error(f"{at_row} ({subject!r}/{clip!r}): {what} {v!r} {why}; rename it in the sheet, "
                      f"or in the dataset configuration with {fix}")
            ok = False
    return ok


def _row_extent(r: Mapping[str, Any], at: str, col: _Collector) -> tuple[int, int] | None:
    """(onset, offset) of a row, or None when either is unusable (errors recorded)."""
    vals = {}
    bad = False
    for k in ("onset", "offset"):
        try:
            v = parse_frame(r[k])
        except ValueError as e:
            col.error(f"{at}: {k} {e}")
            bad = True
            continue
        if v is None:
            col.error(f"{at}: {k} frame is missing")
            bad = True
        elif v < 0:
            col.error(f"{at}: {k} frame {v} is negative")
            bad = True
        vals[k] = v
    if bad:
        return None
    onset, offset = vals["onset"], vals["offset"]
    if offset <= onset:
        col.error(f"{at}: offset {offset} is not after onset {onset}")
        return None
    return onset, offset


def _row_apex(r: Mapping[str, Any], onset: int, offset: int, at: str,
              col: _Collector) -> tuple[int, str, list[str]]:
    """(apex, apex_source, fallback flags): the annotated apex or the middle-frame fallback."""
    flags: list[str] = []
    apex_source = _text(r.get("apex_source")) or "annotated"
    raw_apex = r["apex"]
    try:
        apex = parse_frame(raw_apex)
    except ValueError:
        apex = None
    if apex is not None and apex < 0:  # SAMM-style -1 sentinel for "not annotated"
        apex = None
    if apex is None:
        apex = middle(onset, offset)
        flags.append("missing_apex")
        apex_source = "fallback:missing_apex"
        col.fallback(f"{at}: apex {str(raw_apex)!r} is not a frame number; using the middle frame {apex}")
    elif not onset <= apex <= offset:
        new = middle(onset, offset)
        flags.append("apex_outside_range")
        apex_source = "fallback:apex_outside_range"
        col.fallback(f"{at}: apex {apex} outside onset..offset {onset}..{offset}; using the middle frame {new}")
        apex = new
    elif apex == onset:
        new = middle(onset, offset)
        flags.append("apex_equals_onset")
        apex_source = "fallback:apex_equals_onset"
        col.fallback(f"{at}: apex equals onset {onset}; using the middle frame {new}")
        apex = new
    return apex, apex_source, flags


def _assign_labels(recs: list[dict], classes: Any, given_classes: Sequence[str] | None, source: str,
                   col: _Collector) -> _Labelled:
    """Class labels from the given indices or from the emotions mapped through the class set."""
    if given_classes is None and _mostly_indices(recs):
        recs, given_classes = _stray_labels_refused(recs, classes, col)
    if given_classes is not None:
        return _labels_given(recs, list(given_classes), col)
    return _labels_from_emotions(recs, classes, source, col)


def _is_index(text: str) -> bool:
    try:
        return parse_frame(text) is not None
    except ValueError:
        return False


def _mostly_indices(recs: list[dict]) -> bool:
    """Whether the label text is mostly class indices: a loader that saw one ``1.5`` or ``happy`` among
    them took the whole column for class names (issue 24), and an override may have fixed that one."""
    texts = [r["emotion"] for r in recs if r["emotion"]]
    return 2 * sum(map(_is_index, texts)) > len(texts)


def _stray_labels_refused(recs: list[dict], classes: Any, col: _Collector) -> tuple[list[dict], list[str] | None]:
    """An error for each non-index label of a mostly-index column, naming its row and clip; the other
    rows as indices (``label``) with their class names, when ``classes`` is a list or None."""
    n_int = sum(_is_index(r["emotion"]) for r in recs if r["emotion"])
    n = sum(1 for r in recs if r["emotion"])
    kept = []
    for r in recs:
        if r["emotion"] and not _is_index(r["emotion"]):
            col.error(f"{r['_at']}: label {r['emotion']!r} is not a class index, while {n_int} of the {n} labels "
                      "are: correct it in the sheet or with overrides: {\"<subject>/<clip>\": {emotion: N}}")
        else:
            kept.append(r)
    if classes is not None and (isinstance(classes, (str, Mapping)) or not isinstance(classes, Sequence)):
        return kept, None  # a named or mapped class set: the emotion path names what it cannot map
    for r in kept:
        r["label"], r["emotion"] = r["emotion"], ""
    labels = [int(parse_frame(r["label"])) for r in kept if r["label"]]  # type: ignore[arg-type]
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(max(labels, default=-1) + 1)]
    return kept, names


def _labels_given(recs: list[dict], cs: list[str], col: _Collector) -> _Labelled:
    """Rows whose ``label`` is a valid index into the given class names."""
    kept = []
    for r in recs:
        try:
            lab = int(parse_frame(r["label"]))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            col.error(f"{r['_at']}: label {r['label']!r} is not a class index")
            continue
        if not 0 <= lab < len(cs):
            col.error(f"{r['_at']}: label {lab} is not an index into the {len(cs)} classes {cs}")
            continue
        r["label"] = lab
        if not r["emotion"]:
            r["emotion"] = cs[lab]
        kept.append(r)
    return _Labelled(kept, cs, "given")


def _labels_from_emotions(recs: list[dict], classes: Any, source: str, col: _Collector) -> _Labelled:
    """Rows labelled through the class set; known emotions it does not use are dropped and counted."""
    cset: ClassSet = resolve_class_set(classes, [r["emotion"] for r in recs])
    kept, dropped = [], Counter()
    for r in recs:
        e = r["emotion"]
        if not e or e.lower() == "nan":
            col.error(f"{r['_at']}: emotion is empty")
            continue
        if not cset.is_known(e):
            col.error(
                f"{r['_at']}: unknown emotion {e!r} for class set {cset.name!r} "
                f"(known: {', '.join(sorted(_vocab_hint(cset)))})"
            )
            continue
        lab = cset.label_of(e)
        if lab is None:
            dropped[e] += 1
            continue
        r["label"] = lab
        kept.append(r)
    if dropped:
        n = sum(dropped.values())
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(dropped.items()))
        col.note(f"{source}: dropped {n} clip(s) whose emotion is not in class set {cset.name!r} ({detail})")
    return _Labelled(kept, list(cset.classes), cset.name)


def _check_duplicates(recs: list[dict], col: _Collector) -> list[dict]:
    """An error per repeated subject/clip; in collect mode only the first occurrence is kept."""
    first: dict[tuple[str, str], str] = {}
    for r in recs:
        k = (r["subject"], r["clip"])
        if k in first:
            col.error(f"{r['_at']}: duplicated clip {r['subject']}/{r['clip']} (first at {first[k]})")
        else:
            first[k] = r["_at"]
    if col.errors and col.opts.errors == "collect":
        seen: set = set()
        recs = [r for r in recs if not ((r["subject"], r["clip"]) in seen or seen.add((r["subject"], r["clip"])))]
    return recs


def _check_frame_files(recs: list[dict], source: str, col: _Collector) -> list[dict]:
    """Check each row's key frame files exist (an error each, or one summary line)."""
    missing = []
    for r in recs:
        for p in _frame_paths(r["frame_template"], dict.fromkeys((r["onset"], r["apex"], r["offset"]))):
            if not p.is_file():
                missing.append((r, p))
                break
    if not missing:
        return recs
    if col.opts.check_frames == "summary":
        r0, p0 = missing[0]
        col.note(
            f"{source}: key frames missing for {len(missing)} of {len(recs)} clips "
            f"(first: {r0['_at']} -> {p0}); frames were not loaded, only the annotation was checked"
        )
        return recs
    for r, p in missing:
        col.error(f"{r['_at']}: frame file missing: {p}")
    if col.opts.errors == "collect":
        bad_ids = {id(r) for r, _ in missing}
        recs = [r for r in recs if id(r) not in bad_ids]
    return recs


def _records_frame(recs: list[dict], carry: Sequence[str]) -> pd.DataFrame:
    """The table's frame from the validated records, with its column types."""
    df = pd.DataFrame.from_records(recs, columns=[*ALL_COLUMNS, *carry])
    return df.astype(
        {
            "dataset": str, "subject": str, "clip": str, "emotion": str, "au": str, "frame_template": str,
            "apex_source": str, "flags": str, "onset": "int64", "apex": "int64", "offset": "int64", "label": "int64",
        }
    )


def _check_table(df: pd.DataFrame, lab: _Labelled, source: str, col: _Collector,
                 classes_inferred: bool) -> dict[str, Any] | None:
    """Table-level checks (empty classes, subject count, inferred classes); the inferred-class report."""
    counts = Counter(df["label"].tolist())
    empty = [c for i, c in enumerate(lab.classes) if counts.get(i, 0) == 0]
    if empty:
        col.error(f"{source}: class(es) {empty} of class set {lab.class_set_name!r} have no samples after mapping")
    n_sub = df["subject"].nunique()
    if n_sub < col.opts.min_subjects:
        col.error(f"{source}: {n_sub} subject(s); leave-one-subject-out needs at least {col.opts.min_subjects}")
    return _check_inferred_classes(df, lab.classes, lab.recs, source, col) if classes_inferred else None


def _check_inferred_classes(df: pd.DataFrame, cs: Sequence[str], recs: Sequence[Mapping[str, Any]],
                            source: str, col: _Collector) -> dict[str, Any]:
    """``classes: null``: warn with every class found and flag the likely typos (see the docstring)."""
    labels = df["label"].to_numpy()
    subjects = df["subject"].to_numpy()
    found: dict[str, dict[str, int]] = {}
    suspect: dict[str, str] = {}
    flagged: list[str] = []
    for i, c in enumerate(cs):
        m = labels == i
        n, n_sub = int(m.sum()), int(pd.unique(subjects[m]).size)
        found[c] = {"clips": n, "subjects": n_sub}
        if n == 0 or (n > 1 and n_sub > 1):
            continue
        rows = [r["_at"] for r, keep in zip(recs, m) if keep]  # "<file>, row N (<subject>/<clip>)"
        suspect[c] = why = f"only {n} clip" if n == 1 else f"{n} clips, all from subject {subjects[m][0]!r}"
        more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
        flagged.append(f"{source}: class {c!r} has {why} ({'; '.join(rows[:3])}{more}): a typo of another "
                       "label? With classes: null every distinct label is a class; correct the label (in the "
                       "sheet or with overrides: {\"<subject>/<clip>\": {emotion: ...}}) or give the class "
                       "list (classes=[...])")
    listing = ", ".join(f"{c!r}: {v['clips']} clip(s) / {v['subjects']} subject(s)" for c, v in found.items())
    log.warning("%s: classes: null, so every distinct label is a class; found %d: %s%s", source, len(cs),
                listing, f" (likely typos: {', '.join(map(repr, suspect))})" if suspect else "")
    for msg in flagged:
        if col.opts.strict:
            col.error(msg + " (strict mode: a likely label typo is an error)")
        else:
            col.note(msg)
    return {"counts": found, "suspect": suspect}


_OVERRIDABLE = ("onset", "apex", "offset", "emotion", "au", "label", "clip")


def _apply_overrides(raw: pd.DataFrame, overrides: Mapping[str, Mapping[str, Any]], source: str,
                     col: _Collector) -> pd.DataFrame:
    raw = raw.copy()
    if "flags" not in raw.columns:
        raw["flags"] = ""
    raw["flags"] = raw["flags"].astype(object)
    subjects = [str(s).strip() for s in raw["subject"]]
    index = {f"{s}/{str(c).strip()}": i for i, (s, c) in enumerate(zip(subjects, raw["clip"]))}
    for key, changes in dict(overrides).items():
        if str(key).endswith("/*"):  # a whole subject: only its name can change
            subj = str(key)[:-2]
            rows = [i for i, s in enumerate(subjects) if s == subj]
            if not rows:
                col.error(f"{source}: override for unknown subject {key!r} (keys are '<subject>/*' as loaded)")
                continue
            bad = [f for f in changes if f != "subject"]
            if bad:
                col.error(f"{source}: override for {key!r} sets {bad}; a '<subject>/*' override can only "
                          "rename the subject ({subject: NEW})")
                continue
        elif key not in index:
            col.error(f"{source}: override for unknown clip {key!r} (keys are '<subject>/<clip>' as loaded)")
            continue
        else:
            bad = [f for f in changes if f not in _OVERRIDABLE]
            if bad:
                col.error(f"{source}: override for {key!r} sets {bad}; only {list(_OVERRIDABLE)} can be overridden")
                continue
            rows = [index[key]]
        for i in rows:
            r = raw.iloc[i]
            before = {f: _text(r.get(f)) for f in changes}
            for f, v in changes.items():
                if f not in raw.columns:
                    raw[f] = ""
                raw[f] = raw[f].astype(object)
                raw.at[i, f] = v
            raw.at[i, "flags"] = ";".join([x for x in _text(r.get("flags")).split(";") if x]
                                          + [f"override:{','.join(changes)}"])
            name = f"{subjects[i]}/{_text(r.get('clip'))}"
            col.note(f"{where(r['_file'], r['_row'], name)}: override applied {before} -> {dict(changes)}")
    return raw


def _vocab_hint(cset: ClassSet) -> set[str]:
    from bench.data.classes import SYNONYMS

    return set(SYNONYMS) if cset.canonicalise else set(cset.mapping)


def subject_key(s: Any) -> str:
    """Text of a subject cell without Excel's float noise (``6.0`` -> ``6``)."""
    s = str(s).strip()
    if re.fullmatch(r"\d+\.0+", s):
        s = s.split(".")[0]
    return s
