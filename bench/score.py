"""Score any per-sample prediction file with the suite's own pooled MEGC2019 metrics.

    python -m bench.score FILE [--classes N] [--per-dataset | --no-per-dataset] [--cell LABEL] [--json]

FILE is a MEGC2019 log (``<database> <subject>`` fold headers, ``<clip> <ground truth> <prediction>``
sample lines), a CSV with columns ``subject, clip, true, pred[, dataset]``, or this suite's own
``predictions.csv`` / ``predictions.parquet`` (pick a cell with ``--cell dataset|flow|representation|model|seed``);
the format is detected from the content. It prints UF1, UAR, accuracy and the confusion matrix of
all predictions pooled, and the same per source dataset (MEGC2019: SMIC, CASME II, SAMM). The mean
per-class precision is printed as a diagnostic because it is sometimes published as "UAR".

A malformed file exits with status 2 and one line ``bench.score: error: <file>:<line>: <reason>``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

import numpy as np

from bench.evaluation.prediction_files import PredictionFileError, count_predictions
from bench.evaluation.metrics import format_confusion, per_class_scores, scores_from_confusion
from bench.protocols.folds import MEGC2019_DATASETS


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
    file names no dataset). Raises ``PredictionFileError`` on a malformed file. Only confusion counts
    are kept: a MEGC2019 log is read line by line (``count_predictions``), so memory stays bounded
    whatever its size.
    """
    counts = count_predictions(path, n_classes=n_classes, cell=cell)
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
                        "log, else the largest label + 1)")
    p.add_argument("--per-dataset", action=argparse.BooleanOptionalAction, default=None,
                   help="print the per-dataset breakdown (default: when the file holds more than one)")
    p.add_argument("--cell", default=None, metavar="LABEL",
                   help="for a multi-cell predictions file: 'dataset|representation|model|seed'")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.classes is not None and args.classes < 1:
        print(f"bench.score: error: --classes must be >= 1, got {args.classes}", file=sys.stderr)
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
    if args.json:
        if args.per_dataset is False:
            res = {**res, "per_dataset": {}}
        print(json.dumps(res, indent=1))
    else:
        print(format_report(res, args.per_dataset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
