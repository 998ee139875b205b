"""Score any per-sample prediction file with the suite's own pooled MEGC2019 metrics.

    python -m bench.score FILE [--classes N] [--per-dataset | --no-per-dataset] [--cell LABEL] [--json]

FILE is a MEGC2019 log (``<database> <subject>`` fold headers, ``<clip> <ground truth> <prediction>``
sample lines), a CSV with columns ``subject, clip, true, pred[, dataset]``, or this suite's own
``predictions.csv`` / ``predictions.parquet`` (pick a cell with ``--cell dataset|flow|representation|model|seed``);
the format is detected from the content. It prints UF1, UAR, accuracy and the confusion matrix of
all predictions pooled, and the same per source dataset (MEGC2019: SMIC, CASME II, SAMM). The mean
per-class precision is printed as a diagnostic because it is sometimes published as "UAR".

A malformed file exits with status 2 and one line ``bench.score: error: <file>:<line>: <reason>``.
What is read is bounded before it is parsed (``check_inputs``): regular files only (not a directory,
device or FIFO), lines of at most ``MAX_LINE_BYTES``, CSV and parquet files of at most
``MAX_TABLE_BYTES`` (a MEGC2019 log is streamed, so any length), at most ``MAX_CLASSES`` classes
(``--classes``, the companion ``.classes.json``, or the largest label + 1).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench.evaluation.prediction_files import (
    PredictionCounts,
    PredictionFileError,
    companion_path,
    count_predictions,
    detect_format,
    read_classes,
    read_predictions,
)
from bench.evaluation.metrics import format_confusion, per_class_scores, scores_from_confusion
from bench.protocols.folds import MEGC2019_DATASETS

MAX_CLASSES = 1000  # a K x K confusion matrix is built and printed: 1000 classes is 8 MB, 1M numbers
MAX_LINE_BYTES = 64 * 1024  # a sample line is a clip name and two labels
MAX_TABLE_BYTES = 1 << 30  # CSV / parquet files are read whole (a MEGC2019 log is streamed instead)
MAX_COMPANION_BYTES = 1 << 20  # <file>.classes.json
_CHUNK = 1 << 20


def _block(cm: np.ndarray) -> dict[str, Any]:
    pc = per_class_scores(cm)
    # Never-predicted classes count as precision 0, as sklearn's macro precision (zero_division=0)
    # reports them: that is the figure a mislabelled "UAR" would have been computed with.
    prec = np.where(pc["n_pred"].to_numpy() > 0, pc["precision"].to_numpy(), 0.0)
    return {**scores_from_confusion(cm), "n": int(cm.sum()), "confusion": cm.tolist(),
            "mean_class_precision": float(prec.mean())}


def score_file(path, n_classes: int | None = None, cell: str | None = None) -> dict[str, Any]:
    """Read and score one prediction file.

    Returns ``{"path", "format", "n", "n_classes", "classes", "overall": {uf1, uar, acc, n, confusion,
    mean_class_precision}, "per_dataset": {dataset: {...same}}}`` (``per_dataset`` is empty when the
    file names no dataset). Raises ``PredictionFileError`` on a malformed or oversized file
    (``check_inputs``). Only confusion counts are kept: a MEGC2019 log is read line by line
    (``count_predictions``), so memory stays bounded whatever its size.
    """
    if n_classes is not None and not 1 <= n_classes <= MAX_CLASSES:
        raise ValueError(f"n_classes must be in [1, {MAX_CLASSES}], got {n_classes}")
    path = Path(path)
    check_inputs(path)
    try:
        counts = _counts(path, n_classes, cell)
    except OverflowError:  # a label too long for a float: find its line to name it
        raise _overflow_error(path) from None
    k, names, by_ds = counts.n_classes, counts.names, counts.confusion
    out: dict[str, Any] = {
        "path": str(path), "format": counts.format, "n": counts.n, "n_classes": k,
        "classes": names if names is not None else [str(i) for i in range(k)],
        "overall": _block(sum(by_ds.values(), np.zeros((k, k), np.int64))), "per_dataset": {},
    }
    if "" not in by_ds:
        # The MEGC2019 composite's own order first (SMIC, CASME II, SAMM), then any others sorted.
        order = {d: i for i, d in enumerate(MEGC2019_DATASETS)}
        for name in sorted(by_ds, key=lambda d: (order.get(d, len(order)), d)):
            out["per_dataset"][name] = _block(by_ds[name])
    return out


def check_inputs(path: Path) -> None:
    """Refuse, before parsing, what cannot be read in bounded time and memory (see the module
    docstring): ``PredictionFileError`` naming the file (and the line, for an overlong one)."""
    fmt = _regular_file(path, MAX_TABLE_BYTES if path.suffix.lower() in (".parquet", ".pq") else None)
    comp = companion_path(path)
    if os.path.lexists(comp):
        _regular_file(comp, MAX_COMPANION_BYTES)
        names = read_classes(path)
        if names is not None and len(names) > MAX_CLASSES:
            raise PredictionFileError(comp, None, f"{len(names)} classes; bench.score takes at most {MAX_CLASSES}")
    if fmt != "parquet":
        line = _overlong_line(path)
        if line is not None:
            raise PredictionFileError(path, line, f"line longer than {MAX_LINE_BYTES} bytes (not a prediction file?)")
        if detect_format(path) == "csv" and path.stat().st_size > MAX_TABLE_BYTES:
            raise PredictionFileError(path, None, f"a CSV of {path.stat().st_size} bytes; bench.score reads CSV files "
                                                  f"of at most {MAX_TABLE_BYTES} bytes (a MEGC2019 log is streamed)")


def _regular_file(path: Path, max_bytes: int | None) -> str:
    """``'parquet'`` or ``'text'`` for a regular file within ``max_bytes``; refused otherwise."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PredictionFileError(path, None, "no such file") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a plain file")
        raise PredictionFileError(path, None, f"{kind}, not a regular file: nothing read")
    if max_bytes is not None and st.st_size > max_bytes:
        raise PredictionFileError(path, None, f"{st.st_size} bytes; bench.score reads at most {max_bytes} of it")
    return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "text"


def _overlong_line(path: Path) -> int | None:
    """The number of the first line over ``MAX_LINE_BYTES``; None when there is none. Read in
    chunks, so a file without newlines costs one chunk of memory."""
    with open(path, "rb") as f:
        open_len, before = 0, 0  # bytes of the line still open at the last chunk's end; lines before it
        while chunk := f.read(_CHUNK):
            parts = chunk.split(b"\n")
            if open_len + len(parts[0]) > MAX_LINE_BYTES:
                return before + 1
            if max(map(len, parts)) > MAX_LINE_BYTES:
                return before + 1 + next(i for i, p in enumerate(parts) if len(p) > MAX_LINE_BYTES)
            open_len = open_len + len(parts[0]) if len(parts) == 1 else len(parts[-1])
            before += len(parts) - 1
    return None


def _counts(path: Path, n_classes: int | None, cell: str | None) -> PredictionCounts:
    """The confusion counts; a class count read off the labels is bounded before any matrix is made."""
    if n_classes is None and read_classes(path) is None and detect_format(path) != "megc2019":
        return _counts_inferred(path, cell)
    return count_predictions(path, n_classes=n_classes, cell=cell)


def _counts_inferred(path: Path, cell: str | None) -> PredictionCounts:
    """Counts of a CSV / parquet file whose class count is its largest label + 1 (at most ``MAX_CLASSES``)."""
    df, fmt, _, names = read_predictions(path, n_classes=None, cell=cell)
    top = df[["y_true", "y_pred"]].max(axis=1).to_numpy()
    i = int(np.argmax(top))
    if int(top[i]) + 1 > MAX_CLASSES:
        line = int(df["line"].iloc[i])
        msg = (f"label {int(top[i])} would make {int(top[i]) + 1} classes; bench.score takes at most {MAX_CLASSES} "
               "(a typo? else give the class count with --classes N)")
        raise PredictionFileError(path, None, f"row {line}: {msg}") if fmt == "parquet" \
            else PredictionFileError(path, line, msg)
    k = int(top[i]) + 1
    yt, yp = df["y_true"].to_numpy(np.int64), df["y_pred"].to_numpy(np.int64)
    ds = df["dataset"].astype(str).to_numpy()
    confusion = {str(d): np.bincount(yt[ds == d] * k + yp[ds == d], minlength=k * k).reshape(k, k).astype(np.int64)
                 for d in dict.fromkeys(ds)}
    return PredictionCounts(fmt, k, names, confusion)


_HUGE_INT = re.compile(r"[+-]?\d{300,}(\.0*)?")


def _overflow_error(path: Path) -> PredictionFileError:
    """The error naming the first line with a label too large for a float (read on the error path only)."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if any(_HUGE_INT.fullmatch(f.strip()) for f in re.split(r"[\s,]+", line)):
                return PredictionFileError(path, lineno, "a label of 300 or more digits is not a class index "
                                                         f"(bench.score takes at most {MAX_CLASSES} classes)")
    return PredictionFileError(path, None, "a label too large to be a class index")


def format_report(res: dict[str, Any], per_dataset: bool | None = None) -> str:
    """Human-readable text of a ``score_file`` result. ``per_dataset=None``: shown when >1 dataset."""
    names = res["classes"]
    lines = [f"{res['path']}: {res['format']} file, {res['n']} predictions, {res['n_classes']} classes "
             f"({', '.join(names)})"]

    def block(title: str, b: dict[str, Any]) -> None:
        lines.append("")
        lines.append(f"{title}  n={b['n']}  UF1={b['uf1']:.4f}  UAR={b['uar']:.4f}  acc={b['acc']:.4f}")
        lines.append(format_confusion(np.asarray(b["confusion"]), names))

    block("pooled", res["overall"])
    lines.append(f"(diagnostic) mean per-class precision = {res['overall']['mean_class_precision']:.4f}"
                 "  -- NOT the UAR (a known published mix-up reports this figure as UAR)")
    show = per_dataset if per_dataset is not None else len(res["per_dataset"]) > 1
    if show:
        if not res["per_dataset"]:
            lines.append("\n(no per-dataset breakdown: the file does not name a dataset per sample)")
        for name, b in res["per_dataset"].items():
            block(f"dataset {name}", b)
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.score",
        description="Pooled MEGC2019 UF1 / UAR / accuracy of a per-sample prediction file "
                    "(MEGC2019 log, CSV subject,clip,true,pred[,dataset], or predictions.parquet).")
    p.add_argument("file", help="the prediction file")
    p.add_argument("--classes", type=int, default=None, metavar="N",
                   help="number of classes (default: the companion .classes.json, else 3 for a MEGC2019 "
                        "log, else the largest label + 1; at most MAX_CLASSES = 1000)")
    p.add_argument("--per-dataset", action=argparse.BooleanOptionalAction, default=None,
                   help="print the per-dataset breakdown (default: when the file holds more than one)")
    p.add_argument("--cell", default=None, metavar="LABEL",
                   help="for a multi-cell predictions file: 'dataset|representation|model|seed'")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.classes is not None and not 1 <= args.classes <= MAX_CLASSES:
        print(f"bench.score: error: --classes must be in [1, {MAX_CLASSES}], got {args.classes}", file=sys.stderr)
        return 2
    try:
        res = score_file(args.file, n_classes=args.classes, cell=args.cell)
    except PredictionFileError as e:
        print(f"bench.score: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unreadable file, a directory, ...
        print(f"bench.score: error: {args.file}: {e.strerror or e}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as e:
        print(f"bench.score: error: {args.file}: not a text file ({e.reason})", file=sys.stderr)
        return 2
    except csv.Error as e:  # e.g. a quoted field spanning past the csv module's field limit
        print(f"bench.score: error: {args.file}: not a readable CSV ({e})", file=sys.stderr)
        return 2
    if args.json:
        if args.per_dataset is False:
            res = {**res, "per_dataset": {}}
        print(json.dumps(res, indent=1))
    else:
        print(format_report(res, args.per_dataset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
