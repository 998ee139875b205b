"""Per-sample prediction files: the MEGC2019 log format (writer and reader) and prediction CSVs.

MEGC2019 log (the challenge's per-fold format, plain text, fields separated by spaces)::

    casme2 sub01          <- a fold header: <database> <subject>
    EP02_01f 0 0          <- one line per test sample: <clip> <ground truth> <prediction>
    EP03_02 1 2
    samm 006
    006_1_2 2 2

Labels are 0 negative, 1 positive, 2 surprise. For other class sets the same file holds the integer
class indices of the run's own class list; the log stays header-free (as the format requires) and
``write_megc_log(..., classes=[...])`` writes the names to a companion ``<file>.classes.json``, which
the reader picks up. Names the format cannot hold (whitespace, ``#`` opening a clip, a comma in a
subject or database: ``bench.data.table.name_problem``) are refused when a dataset is loaded, so a
study never trains only to fail writing its log; the writer refuses them too. Blank lines are skipped and lines starting with ``#`` are comments (not part of
the official format; tolerated so annotated logs can be re-scored).

Prediction CSV: a header row with columns ``subject, clip, true, pred`` and optionally ``dataset``
(aliases accepted, e.g. this suite's own ``predictions.csv`` with ``y_true, y_pred, source_dataset``).

Every malformed line raises ``PredictionFileError`` whose message starts ``<file>:<line>:``; a 2-field
line after the first header is a fold header only if it names a known or already seen database,
otherwise it is a broken sample line (``EP02 x``) and an error. ``count_predictions`` (what
``python -m bench.score`` uses) streams a log line by line in bounded memory.
"""

from __future__ import annotations

import csv
import json
import re
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from bench.core.files import atomic_write_text
from bench.data.databases import known_databases, normalise_database  # noqa: F401 (normalise_database re-exported)
from bench.data.table import name_problem
from bench.results.tables import CELL_AXES

MEGC2019_CLASSES = ("negative", "positive", "surprise")
UNKNOWN_DATABASE = "unknown"  # what the writer names rows that carry no source database


def _known_databases() -> frozenset[str]:
    """Databases a fold header may name after the first header without having been seen before (any
    other 2-field line there is a broken sample line): the dataset side's names and spellings
    (``bench.data.databases``) and the writer's ``unknown``."""
    return known_databases() | {UNKNOWN_DATABASE}


def __getattr__(name: str):
    if name == "KNOWN_DATABASES":  # a constant to importers, computed on first use (it imports every loader)
        return _known_databases()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _cell_columns(columns) -> list[str]:
    """The cell-naming columns of a suite predictions file, [] for a plain prediction CSV.

    A file is the suite's own when it has every cell axis but ``flow`` (files written before the
    flow axis existed lack it); ``flow`` joins the label when present, so a study that varies only
    the flow backend is never pooled across backends. A lone ``dataset`` column is a plain CSV's
    per-row source dataset, not a cell.
    """
    cols = set(columns)
    if not all(c in cols for c in CELL_AXES if c != "flow"):
        return []
    return [c for c in CELL_AXES if c in cols]

_INT = re.compile(r"[+-]?\d+(\.0*)?")


class PredictionFileError(ValueError):
    """A malformed prediction file; ``str()`` is ``<path>:<line>: <what is wrong>``."""

    def __init__(self, path, line: int | None, msg: str):
        self.path, self.line, self.msg = str(path), line, msg
        super().__init__(f"{self.path}:{line}: {msg}" if line is not None else f"{self.path}: {msg}")


def companion_path(path) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".classes.json")


# -------------------------------------------------------------------------------------- writer


def _col(df: pd.DataFrame, *names: str) -> str | None:
    return next((n for n in names if n in df.columns), None)


def write_megc_log(pred_df: pd.DataFrame, path, *, classes: Sequence[str] | None = None) -> Path:
    """Write one cell's per-sample predictions as a MEGC2019 log; returns the path.

    ``pred_df`` has the ``predictions`` columns of results_schema.md: subject, clip, y_true, y_pred,
    source_dataset (or dataset; without either the database is written as ``unknown``) and fold.
    One ``<database> <subject>`` block per (fold, database, subject) in order of first appearance; a
    composite's ``casme2/`` subject prefix is dropped since the header names the database. With
    ``classes`` (the class names of the integer labels) the companion ``<file>.classes.json`` is
    written too. Errors name the offending row by position.
    """
    path = Path(path)
    for c in ("subject", "clip", "y_true", "y_pred"):
        if c not in pred_df.columns:
            raise KeyError(f"write_megc_log: column {c!r} missing; columns are {list(pred_df.columns)}")
    present = [c for c in CELL_AXES + ("study",) if c in pred_df.columns]
    if present and pred_df[present].drop_duplicates().shape[0] > 1:
        raise ValueError(f"write_megc_log: the frame holds several cells (by {', '.join(present)}); "
                         "a log holds one cell's predictions: filter it first")
    if len(pred_df) == 0:
        raise ValueError("write_megc_log: no predictions to write")
    db_col = _col(pred_df, "source_dataset", "dataset")
    df = pred_df.reset_index(drop=True)
    lines: list[str] = []
    seen: set[tuple[str, str, str]] = set()

    def field(v, what: str, i: int) -> str:
        s = str(v).strip()
        if not s or s.lower() in ("nan", "<na>", "none") or any(ch.isspace() for ch in s):
            raise ValueError(f"write_megc_log: row {i}: {what} {v!r} is empty or contains whitespace, "
                             "which the space-separated log format cannot hold")
        why = name_problem(s, "dataset" if what == "database" else what)  # the rule loaded tables passed
        if why:
            raise ValueError(f"write_megc_log: row {i}: {what} {v!r} {why}")
        return s

    def label(v, what: str, i: int) -> int:
        try:
            iv = int(v)
        except (TypeError, ValueError):
            iv = None
        if iv is None or iv != v or iv < 0:
            raise ValueError(f"write_megc_log: row {i}: {what} {v!r} is not a non-negative integer label")
        return iv

    keys = [df["fold"].astype(str)] if "fold" in df.columns else []
    dbs = df[db_col].astype(str) if db_col else pd.Series([UNKNOWN_DATABASE] * len(df))
    group_keys = keys + [dbs, df["subject"].astype(str)]
    for _, g in df.groupby(group_keys, sort=False):
        i0 = int(g.index[0])
        db = field(dbs.iat[i0], "database", i0)
        subj = str(g["subject"].iat[0])
        if subj.startswith(db + "/"):
            subj = subj[len(db) + 1:]
        subj = field(subj, "subject", i0)
        lines.append(f"{db} {subj}")
        for i, clip, yt, yp in zip(g.index, g["clip"], g["y_true"], g["y_pred"]):
            clip = field(clip, "clip", int(i))
            key = (db, subj, clip)
            if key in seen:
                raise ValueError(f"write_megc_log: row {i}: clip {clip!r} of {db} {subj} appears twice")
            seen.add(key)
            lines.append(f"{clip} {label(yt, 'y_true', int(i))} {label(yp, 'y_pred', int(i))}")
    # Atomic writes replace a name, never write through it: a symlink planted at the log's name is
    # replaced, its target untouched.
    atomic_write_text(path, "\n".join(lines) + "\n")
    if classes is not None:
        atomic_write_text(companion_path(path), json.dumps(
            {"classes": [str(c) for c in classes],
             "note": "class names of the integer labels in the MEGC2019-format log beside this file"},
            indent=1) + "\n")
    return path


# -------------------------------------------------------------------------------------- readers


def _parse_label(tok: str, what: str, n_classes: int | None, path, lineno: int) -> int:
    if not _INT.fullmatch(tok):
        raise PredictionFileError(path, lineno, f"{what} {tok!r} is not an integer label")
    v = int(float(tok))
    if v < 0 or (n_classes is not None and v >= n_classes):
        rng = f"[0, {n_classes - 1}]" if n_classes is not None else ">= 0"
        raise PredictionFileError(path, lineno, f"{what} {v} is out of range {rng} "
                                                f"(pass --classes N if the file has more classes)")
    return v


def _megc_lines(path: Path, n_classes: int | None) -> Iterator[tuple[str, str, int, str, int, int, int]]:
    """Sample lines of a MEGC2019 log in file order, ``(dataset, subject, fold, clip, y_true, y_pred,
    line)``; a malformed line raises ``PredictionFileError`` when reached. One line in memory at a
    time; repeated clips are ``_megc_samples``' business."""
    seen_db: set[str] = set()
    known = _known_databases()
    cur: tuple[str, str] | None = None
    subject = ""
    block = -1
    # the canonical spellings of the valid labels skip the regular expression; anything else goes
    # through _parse_label, so its errors (and its acceptance of "+1", "01", "1.0") are unchanged
    fast = {str(i): i for i in range(n_classes if n_classes is not None else 100)}
    with path.open("r", encoding="utf-8-sig") as fh:
        for lineno, raw in enumerate(fh, start=1):
            tok = raw.split()
            if len(tok) == 3 and tok[0][0] != "#":  # the hot path: a sample line
                if cur is None:
                    raise PredictionFileError(path, lineno, "sample line before any fold header "
                                                            "'<database> <subject>'")
                gt = fast.get(tok[1])
                if gt is None:
                    gt = _parse_label(tok[1], "ground truth", n_classes, path, lineno)
                pr = fast.get(tok[2])
                if pr is None:
                    pr = _parse_label(tok[2], "prediction", n_classes, path, lineno)
                yield cur[0], subject, block, tok[0], gt, pr, lineno
                continue
            if not tok or tok[0].startswith("#"):
                continue
            if len(tok) == 2:
                if not (cur is None or tok[0].lower() in known or tok[0] in seen_db):
                    # "EP02 x" or "EP02 1" after a header: a broken sample line, never a new fold
                    line = raw.strip()
                    raise PredictionFileError(
                        path, lineno, f"2 fields {line!r}: a sample line needs 3 fields "
                                      "'<clip> <ground truth> <prediction>' (a fold header "
                                      "'<database> <subject>' names a database seen before)")
                seen_db.add(tok[0])
                cur = (normalise_database(tok[0]), tok[1])
                subject = f"{cur[0]}/{cur[1]}"
                block += 1
            else:
                raise PredictionFileError(path, lineno, f"{len(tok)} fields: expected a fold header "
                                                        "'<database> <subject>' or a sample line "
                                                        "'<clip> <ground truth> <prediction>'")


def _megc_samples(path: Path, n_classes: int | None) -> Iterator[tuple[str, str, int, str, int, int, int]]:
    """``_megc_lines`` plus the repeated-clip check, in bounded memory.

    Instead of a set of every (subject, clip) seen, each sample adds one 8-byte hash to an array;
    after the pass an in-place sort tells whether any hash repeats. Only then (``_first_repeat``)
    are the lines read again to name the first repeated clip. The first problem in file order is
    raised, as a one-pass check would: rows are yielded as read, so a consumer may use its totals
    only once the iteration has ended without an error. Raises on an empty log too.
    """
    hashes = array("q")
    stop: PredictionFileError | None = None
    try:
        for row in _megc_lines(path, n_classes):
            hashes.append(hash((row[1], row[3])))
            yield row
    except PredictionFileError as e:
        stop = e
    n = len(hashes)
    if n > 1:
        h = np.frombuffer(hashes, dtype=np.int64)
        h.sort()  # in place: file order is not needed to know whether a hash repeats
        repeats = bool((h[1:] == h[:-1]).any())
        del h, hashes
        if repeats:
            dup = _first_repeat(path, n_classes, n)
            if dup is not None:
                stop = dup  # it precedes the malformed line, if any: only samples before it were hashed
    if stop is not None:
        raise stop
    if n == 0:
        raise PredictionFileError(path, None, "no prediction lines")


def _samples_before_error(path: Path, n_classes: int | None, n: int):
    """The first ``n`` sample rows, read no further (they all precede any malformed line)."""
    if n <= 0:
        return
    lines = _megc_lines(path, n_classes)
    try:
        for k, row in enumerate(lines, start=1):
            yield row
            if k >= n:
                return
    finally:
        lines.close()


def _repeat_error(path: Path, row: tuple, first_line: int) -> PredictionFileError:
    ds, subj, _, clip, _, _, lineno = row
    return PredictionFileError(path, lineno, f"clip {clip!r} of {ds} {subj[len(ds) + 1:]} is listed "
                                             f"twice (first on line {first_line})")


def _first_repeat(path: Path, n_classes: int | None, n: int) -> PredictionFileError | None:
    """The error for the first sample (in file order) whose (subject, clip) came before, or None.

    Hashes in file order (8 bytes a sample) and their stable argsort (8 more) give the earliest
    repeat and its first occurrence; a third, early-stopping read checks the two keys really are
    equal (a 64-bit hash collision falls back to an exact set of keys)."""
    hashes = array("q", (hash((r[1], r[3])) for r in _samples_before_error(path, n_classes, n)))
    h = np.frombuffer(hashes, dtype=np.int64)
    order = np.argsort(h, kind="stable")
    hs = h[order]
    again = np.flatnonzero(hs[1:] == hs[:-1]) + 1  # sorted positions repeating their predecessor
    if not again.size:
        return None
    p = int(again[np.argmin(order[again])])  # the repeat that comes first in the file
    i2 = int(order[p])
    while p > 0 and hs[p - 1] == hs[p]:
        p -= 1
    j = int(order[p])  # its group's first sample: the stable sort keeps file order within a group
    del hashes, h, order, hs, again
    rows = {}
    for k, row in enumerate(_samples_before_error(path, n_classes, i2 + 1)):
        if k in (j, i2):
            rows[k] = row
    a, b = rows[j], rows[i2]
    if (a[1], a[3]) == (b[1], b[3]):
        return _repeat_error(path, b, a[6])
    first: dict[tuple[str, str], int] = {}  # a hash collision: find the repeat exactly
    for row in _samples_before_error(path, n_classes, n):
        key = (row[1], row[3])
        if key in first:
            return _repeat_error(path, row, first[key])
        first[key] = row[6]
    return None


def read_megc_log(path, n_classes: int | None = 3) -> pd.DataFrame:
    """Parse a MEGC2019 log into ``DataFrame[dataset, subject, fold, clip, y_true, y_pred, line]``.

    ``dataset`` is the header's database normalised (``CASME_II`` -> ``casme2``), ``subject`` is
    ``<dataset>/<subject>`` (unique across the composite), ``fold`` the 0-based block number and
    ``line`` the 1-based line number. A 2-field line is a fold header when it is the first line, or
    its first field is a known database (``KNOWN_DATABASES``) or one already used in a header;
    otherwise it is a broken sample line (``EP02 x``, ``EP02 1``): an error naming its line.
    Scoring does not build this frame: ``count_predictions`` streams the file.
    """
    rows = list(_megc_samples(Path(path), n_classes))
    return pd.DataFrame(rows, columns=["dataset", "subject", "fold", "clip", "y_true", "y_pred", "line"])


def _megc_counts(path: Path, n_classes: int) -> dict[str, np.ndarray]:
    """Confusion counts per database of a MEGC2019 log, read line by line (see ``count_predictions``)."""
    k = n_classes
    flat: dict[str, list[int]] = {}
    last_ds, cur = None, None
    for ds, _, _, _, gt, pr, _ in _megc_samples(path, k):
        if ds is not last_ds:
            cur = flat.get(ds)
            if cur is None:
                cur = flat[ds] = [0] * (k * k)
            last_ds = ds
        cur[gt * k + pr] += 1
    return {ds: np.asarray(v, np.int64).reshape(k, k) for ds, v in flat.items()}


_CSV_ALIASES = {
    "subject": ("subject", "subj", "subject_id"),
    "clip": ("clip", "sample", "filename", "video", "clip_id"),
    "y_true": ("true", "y_true", "gt", "ground_truth", "label", "target"),
    "y_pred": ("pred", "y_pred", "prediction", "predicted"),
    # source_dataset first: in this suite's predictions.csv ``dataset`` is the (composite) table name.
    "dataset": ("source_dataset", "database", "db", "dataset"),
}


def read_prediction_csv(path, n_classes: int | None = None, cell: str | None = None) -> pd.DataFrame:
    """Parse a prediction CSV into ``DataFrame[dataset, subject, clip, y_true, y_pred, line]``.

    A file holding several cells (this suite's ``predictions.csv``: columns dataset, representation,
    model, seed) must be narrowed with ``cell="dataset|representation|model|seed"``.
    """
    path = Path(path)
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = None
        for row in reader:
            if row and any(c.strip() for c in row):
                header = [c.strip() for c in row]
                break
        if header is None:
            raise PredictionFileError(path, None, "empty file")
        hline = reader.line_num
        lower = {c.lower(): j for j, c in enumerate(header)}
        pos = {k: next((lower[a] for a in al if a in lower), None) for k, al in _CSV_ALIASES.items()}
        missing = [k for k in ("subject", "y_true", "y_pred") if pos[k] is None]
        if missing:
            raise PredictionFileError(path, hline, f"the header lacks column(s) {', '.join(missing)} "
                                                   f"(expected subject, clip, true, pred[, dataset]); got {header}")
        cell_pos = {c: lower[c] for c in _cell_columns(lower)}
        rows, cells = [], {}
        for row in reader:
            lineno = reader.line_num
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise PredictionFileError(path, lineno, f"{len(row)} fields, the header has {len(header)}")
            label = "|".join(row[j].strip() for j in cell_pos.values()) if cell_pos else ""
            cells.setdefault(label, lineno)
            if cell is not None and label != cell:
                continue
            subj = row[pos["subject"]].strip()
            if not subj:
                raise PredictionFileError(path, lineno, "empty subject")
            gt = _parse_label(row[pos["y_true"]].strip(), "true label", n_classes, path, lineno)
            pr = _parse_label(row[pos["y_pred"]].strip(), "predicted label", n_classes, path, lineno)
            clip = row[pos["clip"]].strip() if pos["clip"] is not None else ""
            ds = normalise_database(row[pos["dataset"]]) if pos["dataset"] is not None else ""
            rows.append((ds, subj, clip, gt, pr, lineno))
    if cell is not None and cell not in cells:
        raise PredictionFileError(path, None, f"no cell {cell!r}; cells: {', '.join(sorted(cells))}")
    if cell is None and len(cells) > 1:
        raise PredictionFileError(path, None, f"the file holds {len(cells)} cells ({', '.join(CELL_AXES)}); "
                                              f"pick one with --cell, one of: {', '.join(sorted(cells))}")
    if not rows:
        raise PredictionFileError(path, None, "no prediction rows")
    df = pd.DataFrame(rows, columns=["dataset", "subject", "clip", "y_true", "y_pred", "line"])
    if pos["clip"] is not None:
        dup = df.duplicated(["dataset", "subject", "clip"], keep=False)
        if dup.any():
            d = df[dup]
            first = d.iloc[0]
            key = ["dataset", "subject", "clip"]
            again = d[(d[key] == first[key]).all(axis=1)]["line"]
            raise PredictionFileError(path, int(again.iloc[1]),
                                      f"clip {first['clip']!r} of subject {first['subject']!r} is listed twice "
                                      f"(first on line {int(again.iloc[0])})")
    return df


def detect_format(path) -> str:
    """``parquet`` (by suffix), ``csv`` (the first non-blank, non-comment line has a comma) or
    ``megc2019``."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return "parquet"
    with path.open("r", encoding="utf-8-sig") as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            # Log fields are space-separated clip ids and ints, never commas: a comma means CSV.
            return "csv" if "," in line else "megc2019"
    raise PredictionFileError(path, None, "empty file")


def read_classes(path) -> list[str] | None:
    """Class names from the companion ``<file>.classes.json``, if there is one."""
    comp = companion_path(path)
    if not comp.exists():
        return None
    try:
        classes = json.loads(comp.read_text(encoding="utf-8"))["classes"]
    except (ValueError, KeyError, TypeError) as e:
        raise PredictionFileError(comp, None, f"unreadable class list: {e}") from None
    if not isinstance(classes, list) or not classes:
        raise PredictionFileError(comp, None, "'classes' must be a non-empty list")
    return [str(c) for c in classes]


def _resolve(path: Path, n_classes: int | None) -> tuple[str, int | None, list[str] | None]:
    """``(format, class count or None (CSV/parquet: from the labels), class names or None)``."""
    if not path.exists():
        raise PredictionFileError(path, None, "no such file")
    names = read_classes(path)
    k = n_classes if n_classes is not None else (len(names) if names else None)
    if names is not None and k != len(names):
        names = None  # an explicit --classes overrides the companion file's names
    fmt = detect_format(path)
    if fmt == "megc2019":
        k = 3 if k is None else k
        if names is None and k == 3:
            names = list(MEGC2019_CLASSES)
    return fmt, k, names


@dataclass
class PredictionCounts:
    """What scoring needs of a prediction file: ``confusion[dataset]`` is the K x K int64 count
    matrix (rows true, columns predicted) of that dataset's samples, in order of first appearance;
    dataset ``""`` holds the samples of a file that names none."""

    format: str
    n_classes: int
    names: list[str] | None
    confusion: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return int(sum(int(c.sum()) for c in self.confusion.values()))


def count_predictions(path, n_classes: int | None = None, cell: str | None = None) -> PredictionCounts:
    """Confusion counts per dataset of any supported prediction file, with the errors of
    ``read_predictions``. A MEGC2019 log is streamed line by line: memory does not grow with the
    log beyond 8 bytes a sample (the repeated-clip check; 24 if a clip does repeat)."""
    path = Path(path)
    fmt, k, names = _resolve(path, n_classes)
    if fmt == "megc2019":
        return PredictionCounts(fmt, int(k), names, _megc_counts(path, int(k)))
    df, fmt, k, names = read_predictions(path, n_classes=n_classes, cell=cell)
    yt, yp = df["y_true"].to_numpy(), df["y_pred"].to_numpy()
    ds = df["dataset"].astype(str).to_numpy()
    confusion = {}
    for name in pd.unique(ds):
        m = ds == name
        t, p = yt[m].astype(np.int64), yp[m].astype(np.int64)
        confusion[str(name)] = np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)
    return PredictionCounts(fmt, int(k), names, confusion)


def read_predictions(path, n_classes: int | None = None, cell: str | None = None
                     ) -> tuple[pd.DataFrame, str, int, list[str] | None]:
    """Read any supported prediction file: ``(df, format, n_classes, class_names or None)``.

    The class count is ``n_classes`` if given, else the companion file's length, else 3 for a
    MEGC2019 log, else (CSV / parquet) the largest label + 1.
    """
    path = Path(path)
    fmt, k, names = _resolve(path, n_classes)
    if fmt == "megc2019":
        df = read_megc_log(path, k)
    elif fmt == "csv":
        df = read_prediction_csv(path, k, cell)
    else:
        df = _read_parquet(path, k, cell)
    if k is None:
        k = int(max(df.y_true.max(), df.y_pred.max())) + 1
    return df, fmt, int(k), names


def _read_parquet(path: Path, n_classes: int | None, cell: str | None) -> pd.DataFrame:
    try:
        raw = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises its own error types for a damaged / non-parquet file
        raise PredictionFileError(path, None, f"cannot read as parquet: {e}") from None
    lower = {c.lower(): c for c in raw.columns}
    cols = {k: next((lower[a] for a in al if a in lower), None) for k, al in _CSV_ALIASES.items()}
    missing = [k for k in ("subject", "y_true", "y_pred") if cols[k] is None]
    if missing:
        raise PredictionFileError(path, None, f"lacks column(s) {', '.join(missing)}; has {list(raw.columns)}")
    present = _cell_columns(raw.columns)
    if present:
        labels = raw[present].astype(str).agg("|".join, axis=1)
        uniq = sorted(labels.unique())
        if cell is not None:
            if cell not in uniq:
                raise PredictionFileError(path, None, f"no cell {cell!r}; cells: {', '.join(uniq)}")
            raw = raw[(labels == cell).to_numpy()]
        elif len(uniq) > 1:
            raise PredictionFileError(path, None, f"the file holds {len(uniq)} cells; pick one with --cell, "
                                                  f"one of: {', '.join(uniq)}")
    out = pd.DataFrame({
        "dataset": raw[cols["dataset"]].astype(str).map(normalise_database) if cols["dataset"] else "",
        "subject": raw[cols["subject"]].astype(str),
        "clip": raw[cols["clip"]].astype(str) if cols["clip"] else "",
        "line": np.arange(len(raw)),  # row number (0-based) in lieu of a line number
    })
    for k in ("y_true", "y_pred"):
        vals = raw[cols[k]].to_numpy()
        try:
            ints = np.asarray(vals, dtype=np.float64)
        except (TypeError, ValueError):
            ints = None
        bad = (np.ones(len(vals), bool) if ints is None
               else ~np.isfinite(ints) | (ints != np.round(ints)) | (ints < 0)
               | ((ints >= n_classes) if n_classes is not None else False))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise PredictionFileError(path, None, f"row {i}: {k} {vals[i]!r} is not a valid class index")
        out[k] = ints.astype(np.int64)
    if out.empty:
        raise PredictionFileError(path, None, "no prediction rows")
    return out.reset_index(drop=True)


__all__ = [
    "MEGC2019_CLASSES", "PredictionFileError", "write_megc_log", "read_megc_log", "read_prediction_csv",
    "read_predictions", "count_predictions", "PredictionCounts", "KNOWN_DATABASES", "detect_format", "read_classes", "companion_path", "normalise_database",
]
