"""MEGC2019 recognition metrics on predictions POOLED over all folds.

The headline figures of a cell are computed once, from the confusion matrix of every test prediction
of every fold together (the MEGC2019 "composite database evaluation" guideline):

* ``UF1 = (1/C) * sum_c 2 TP_c / (2 TP_c + FP_c + FN_c)``  (unweighted F1)
* ``UAR = (1/C) * sum_c TP_c / N_c``                       (unweighted average recall)
* ``acc = trace / total``

Degenerate classes (so that no figure is ever NaN and no division warning is ever raised):

* a class with no true samples AND no predictions in the pool (``2TP + FP + FN == 0``): F1 is 0/0;
  the class is **left out** of the UF1 mean. This is what the MEGC reference code does in practice
  (it scores each class one-vs-rest with ``sklearn.metrics.confusion_matrix(gt, pred).ravel()``,
  which fails to unpack for a class absent from both, and the ``except: pass`` drops that class),
  and it is the only choice that does not reward or punish a model for a class the pool never
  contained. On a real MEGC2019 pool every class is present, so the case never arises there.
* a class with no true samples but some predictions: F1 = 2*0/(0+FP+0) = 0 by the formula (counted:
  predicting a class that is not there is an error). Its recall TP/N_c is 0/0 and the class is left
  out of the UAR mean (the MEGC reference code would produce NaN here; scikit-learn would count 0
  with an "ill-defined" warning).
* a class with true samples that is never predicted: F1 = 0 and recall = 0 (both counted).
* an empty pool, or a pool in which no class is scoreable: ``ValueError``.

Per-fold and per-subject figures exist for statistics only: with LOSO a test fold holds 1-3 samples
of one subject, so per-fold F1 is degenerate (mostly 0 or 1 and dominated by which classes happen to
be in the fold) and the mean of per-fold F1 is NOT the MEGC UF1. The headline is always pooled.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

SCORE_KEYS = ("uf1", "uar", "acc")


def _as_labels(y: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
    """Validate a 1-D integer label vector (integral floats accepted, NaN / fractions refused)."""
    a = np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {a.shape}")
    if a.dtype == bool:
        raise TypeError(f"{what} must hold integer class indices, got booleans")
    if a.dtype.kind in "iu":
        return a.astype(np.int64, copy=False)
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{what}[{i}] = {float(a[i])!r} is not an integer class index")
        return a.astype(np.int64)
    # object / string arrays (e.g. read from a text file): each value must be an exact integer.
    out = np.empty(a.size, dtype=np.int64)
    for i, v in enumerate(a.tolist()):
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            out[i] = int(v)
        elif isinstance(v, str) and re.fullmatch(r"\s*-?\d+\s*", v):
            out[i] = int(v)
        else:
            raise ValueError(f"{what}[{i}] = {v!r} is not an integer class index")
    return out


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """K x K int64 counts, rows = true class, columns = predicted class.

    Written with ``np.bincount`` rather than ``sklearn.metrics.confusion_matrix`` because sklearn
    silently drops samples whose label is outside ``labels=``; here every label must be in
    ``[0, n_classes)`` or the call fails naming the offending sample.
    """
    if not isinstance(n_classes, (int, np.integer)) or isinstance(n_classes, bool) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive int, got {n_classes!r}")
    k = int(n_classes)
    t = _as_labels(y_true, "y_true")
    p = _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    for a, what in ((t, "y_true"), (p, "y_pred")):
        bad = (a < 0) | (a >= k)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{what}[{i}] = {int(a[i])} is outside the {k} classes [0, {k - 1}]")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


def _check_cm(cm) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 1:
        raise ValueError(f"a confusion matrix must be square K x K, got shape {cm.shape}")
    if cm.dtype.kind not in "iu":
        if cm.dtype.kind != "f" or not np.all(np.isfinite(cm)) or np.any(cm != np.round(cm)):
            raise ValueError("a confusion matrix must hold integer counts")
        cm = cm.astype(np.int64)
    if (cm < 0).any():
        raise ValueError("a confusion matrix must hold non-negative counts")
    return cm.astype(np.int64, copy=False)


def per_class_scores(cm, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per class: support, n_pred, tp, fp, fn, precision, recall, f1 and whether the class
    counts towards UF1 / UAR (``in_uf1``, ``in_uar``). Undefined ratios are reported as -1.0 (never NaN)
    and are exactly the ones excluded from the means (see the module docstring)."""
    cm = _check_cm(cm)
    k = cm.shape[0]
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    n_pred = cm.sum(axis=0)
    fp = n_pred - tp
    fn = support - tp
    f1_den = 2 * tp + fp + fn
    # np.divide with where= never evaluates the 0/0 entries, so no RuntimeWarning can be raised.
    f1 = np.divide(2 * tp, f1_den, out=np.full(k, -1.0), where=f1_den > 0)
    recall = np.divide(tp, support, out=np.full(k, -1.0), where=support > 0)
    precision = np.divide(tp, n_pred, out=np.full(k, -1.0), where=n_pred > 0)
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for a {k}-class confusion matrix")
    return pd.DataFrame({
        "class": names, "support": support, "n_pred": n_pred, "tp": tp, "fp": fp, "fn": fn,
        "precision": precision, "recall": recall, "f1": f1,
        "in_uf1": f1_den > 0, "in_uar": support > 0,
    })


def scores_from_confusion(cm) -> dict[str, float]:
    """``{"uf1", "uar", "acc"}`` from a K x K confusion matrix (rows true, columns predicted)."""
    cm = _check_cm(cm)
    total = int(cm.sum())
    if total == 0:
        raise ValueError("cannot score an empty prediction pool (the confusion matrix is all zeros)")
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    n_pred = cm.sum(axis=0).astype(np.float64)
    f1_den = 2 * tp + (n_pred - tp) + (support - tp)
    f1_ok = f1_den > 0
    rec_ok = support > 0
    # total > 0 guarantees at least one class with support > 0 (and so f1_den > 0): both means exist.
    uf1 = float(np.mean(2 * tp[f1_ok] / f1_den[f1_ok]))
    uar = float(np.mean(tp[rec_ok] / support[rec_ok]))
    acc = float(tp.sum() / total)
    return {"uf1": uf1, "uar": uar, "acc": acc}


def pooled_scores(y_true, y_pred, n_classes: int) -> dict[str, float]:
    """UF1 / UAR / accuracy of one pool of predictions (all folds of a cell together)."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred, n_classes))


def per_seed_scores(df: pd.DataFrame, n_classes: int, by: list[str]) -> pd.DataFrame:
    """Each seed's pooled scores per group of a predictions table (``y_true``, ``y_pred``, ``seed``):
    columns ``*by, seed, uf1, uar, acc, n`` (n: clips pooled). The report, the composite table and the
    end-of-run summary all start from these rows."""
    rows = []
    for key, g in df.groupby([*by, "seed"], sort=True, dropna=False):
        sc = pooled_scores(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), n_classes)
        rows.append({**dict(zip([*by, "seed"], key)), **{m: float(sc[m]) for m in ("uf1", "uar", "acc")},
                     "n": len(g)})
    return pd.DataFrame(rows, columns=[*by, "seed", "uf1", "uar", "acc", "n"])


def _grouped(df: pd.DataFrame, by: str, n_classes: int, true_col: str, pred_col: str) -> pd.DataFrame:
    for c in (by, true_col, pred_col):
        if c not in df.columns:
            raise KeyError(f"column {c!r} missing; columns are {list(df.columns)}")
    if df[by].isna().any():
        i = int(np.flatnonzero(df[by].isna().to_numpy())[0])
        raise ValueError(f"column {by!r} is empty in row {i}")
    rows = []
    # sort=True: a deterministic order (sorted group ids) whatever the row order of the input.
    for key, g in df.groupby(by, sort=True, observed=True):
        cm = confusion_matrix(g[true_col].to_numpy(), g[pred_col].to_numpy(), n_classes)
        rows.append({by: key, **scores_from_confusion(cm), "n": int(len(g))})
    return pd.DataFrame(rows, columns=[by, *SCORE_KEYS, "n"])


def per_fold_scores(df: pd.DataFrame, n_classes: int, fold_col: str = "fold", *,
                    true_col: str = "y_true", pred_col: str = "y_pred") -> pd.DataFrame:
    """``DataFrame[<fold_col>, uf1, uar, acc, n]``, each fold scored on its own test predictions.

    For statistics only: with LOSO a fold holds 1-3 samples, so its F1 is degenerate; the mean of
    these rows is not the MEGC UF1 (use ``pooled_scores``)."""
    return _grouped(df, fold_col, n_classes, true_col, pred_col)


def per_subject_scores(df: pd.DataFrame, n_classes: int, *, subject_col: str = "subject",
                       true_col: str = "y_true", pred_col: str = "y_pred") -> pd.DataFrame:
    """``DataFrame[subject, uf1, uar, acc, n]`` (for paired statistics across cells; not the headline)."""
    out = _grouped(df, subject_col, n_classes, true_col, pred_col)
    return out.rename(columns={subject_col: "subject"})


def per_dataset_scores(df: pd.DataFrame, n_classes: int, dataset_col: str = "source_dataset", *,
                       true_col: str = "y_true", pred_col: str = "y_pred") -> pd.DataFrame:
    """``DataFrame[dataset, uf1, uar, acc, n]``: each source dataset's own pooled predictions, the
    MEGC2019 composite breakdown (SMIC, CASME II, SAMM)."""
    out = _grouped(df, dataset_col, n_classes, true_col, pred_col)
    return out.rename(columns={dataset_col: "dataset"})


def format_confusion(cm, class_names: Sequence[str] | None = None) -> str:
    """The confusion matrix as an aligned text table (rows true, columns predicted)."""
    cm = _check_cm(cm)
    k = cm.shape[0]
    names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(k)]
    head = ["true\\pred", *names]
    body = [[names[i], *(str(int(v)) for v in cm[i])] for i in range(k)]
    widths = [max(len(r[j]) for r in [head, *body]) for j in range(k + 1)]
    fmt = lambda r: "  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join(fmt(r) for r in [head, *body])


def scores_dict(scores: Mapping[str, float], prefix: str = "") -> dict[str, float]:
    """``{prefix + key: value}`` for the three headline keys (for results rows / MLflow metrics)."""
    return {f"{prefix}{k}": float(scores[k]) for k in SCORE_KEYS}


__all__ = [
    "SCORE_KEYS", "confusion_matrix", "scores_from_confusion", "pooled_scores", "per_class_scores",
    "per_fold_scores", "per_subject_scores", "per_dataset_scores", "format_confusion", "scores_dict",
]
