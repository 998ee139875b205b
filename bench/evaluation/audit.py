"""The leakage audit: what the field's common evaluation shortcuts would have reported, from the
same trained models, beside the honest headline. Every figure here is LEAKY by construction and
labelled so (``*_leaky_*`` columns); none enters the headline, the significance tests or tuning.

With ``audit=true`` each unit also predicts its test fold once per epoch, after ``fit`` returned,
from that epoch's saved weights (``bench.training.fold.EpochSnapshots``); the runner gathers those
predictions into ``<run_dir>/audit.parquet`` (:func:`audit_frame`, one row per cell, seed, fold,
test clip and epoch). From it and the honest predictions (``predictions.parquet``), per cell and
seed (then mean ± sd over seeds, :func:`summarize`):

1. ``subject_best_epoch`` (HTNet / CausalNet / CapsuleNet style): for each fold, the epoch whose
   predictions get the most of that fold's own test clips right (HTNet keeps an epoch when
   ``best <= n_correct``, so of tied epochs the **latest** is kept, as here); the chosen epochs'
   predictions are pooled over folds and scored with the MEGC UF1/UAR.
2. ``overall_best_epoch``: one epoch for every fold, the one whose pooled test predictions score
   best (UF1, then UAR; ties: the latest epoch). A fold that stopped early (early stopping on
   training subjects) contributes its last epoch to every later one.
3. ``fold_mean``: UF1 and UAR of each fold's own honest predictions, averaged over folds, instead of
   scoring the pooled predictions. A fold's score follows ``bench.evaluation.metrics`` (the MEGC reference
   code's rules): a class absent from both the fold's truth and its predictions is left out of that
   fold's UF1 (the reference code's ``except: pass``); a class predicted but absent from the
   truth counts F1 = 0 and is left out of that fold's UAR (the reference code gives NaN there,
   scikit-learn 0). With one subject per fold most folds lack some classes, which is why this
   differs from the pooled score, up or down.
4. ``mean_precision`` (the published STSTNet UAR bug): "UAR" computed as the mean per-class
   precision TP_c / predicted_c of the honest pooled predictions, over the classes UAR averages
   (those with true samples); a class never predicted has precision 0 (0/0 read as 0, as
   scikit-learn's ``zero_division=0`` and a zero-guarded transposed confusion matrix give).
5. ``class_dropping`` (CausalNet's ``recognition_evaluation``, ``main_train.py``): each fold's honest
   predictions scored per class as a one-vs-rest problem whose scikit-learn confusion matrix must
   unpack into TN, FP, FN, TP inside a ``try/except: pass``: a class for which the fold's binary truth
   and predictions hold one value only (no clip is, or is predicted, that class; or every clip is and
   is predicted that class) is skipped; UF1 = mean F1 of the rest, UAR = mean TP / true count of the
   rest (a class predicted but absent from the truth gives 0/0 = NaN, so that fold's UAR is NaN).
   Folds are averaged; a fold whose figure is NaN is left out of the average (:func:`class_dropping_scores`).
6. ``class_dropping_one_class`` (MER-CLIP's ``recognition_evaluation``,
   ``mmaction/evaluation/metrics/acc_metric.py`` and ``tools/cal_metric.py``): the same, except that a
   fold whose truth and predictions are one and the same single class scores UF1 = UAR = 1.

Inflation columns (``<column>_inflation``) are the leaky figure minus the honest one of the same
cell and seed: signed, reported as measured, never assumed positive.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from bench.evaluation.metrics import confusion_matrix, per_class_scores, per_fold_scores, pooled_scores

CELL = ("dataset", "flow", "representation", "model")  # bench.results.tables.CELL_AXES without the seed
AUDIT_COLUMNS = ["study", *CELL, "seed", "fold", "subject", "clip", "source_dataset", "epoch", "y_true", "y_pred"]

# column stem -> (short label, what it is): the report and the README use these words
SHORTCUTS = {
    "subject_best_epoch": ("best test epoch per subject",
                           "per fold, the epoch that scores best on that fold's own test subject, pooled"),
    "overall_best_epoch": ("best test epoch overall", "one epoch for all folds, chosen on the pooled test score"),
    "fold_mean": ("per-fold average", "UF1/UAR averaged over folds instead of pooled"),
    "mean_precision": ("UAR as mean precision", "mean per-class precision reported as UAR"),
    "class_dropping": ("per-fold average, classes absent from a fold dropped",
                       "each fold scored with a try/except that skips classes the fold lacks (CausalNet's metric "
                       "code), averaged over folds"),
    "class_dropping_one_class": ("per-fold average, one-class fold = 1",
                                 "as the previous, and a fold of one class, all predicted right, scores "
                                 "UF1 = UAR = 1 (MER-CLIP's metric code)"),
}
LEAKY = [f"{m}_leaky_{s}" for s in SHORTCUTS for m in ("uf1", "uar") if (m, s) != ("uf1", "mean_precision")]
SCORE_COLUMNS = ["uf1", "uar", *LEAKY, *(f"{c}_inflation" for c in LEAKY)]


class AuditError(ValueError):
    """Audit predictions that do not fit the honest predictions (the message names the clip)."""


def audit_frame(records: Iterable[dict]) -> pd.DataFrame:
    """Unit records -> the long audit table (``AUDIT_COLUMNS``), one row per test clip and epoch.

    Records without an ``audit`` entry (failed units, runs without ``audit=true``) add nothing.
    """
    cols: dict[str, list] = {c: [] for c in AUDIT_COLUMNS}
    for rec in records:
        audit = rec.get("audit")
        if not audit or rec["row"].get("status") != "ok":
            continue
        preds = rec["predictions"]
        for epoch, y_pred in zip(audit["epochs"], audit["y_pred"]):
            if len(y_pred) != len(preds):
                raise AuditError(f"unit {rec['row'].get('unit_key')}: epoch {epoch} has {len(y_pred)} audit "
                                 f"predictions for {len(preds)} test clips")
            for p, yp in zip(preds, y_pred):
                for c in AUDIT_COLUMNS[:-2]:
                    cols[c].append(epoch if c == "epoch" else p[c])
                cols["y_true"].append(int(p["y_true"]))
                cols["y_pred"].append(int(yp))
    df = pd.DataFrame(cols)
    df["seed"] = df["seed"].astype(np.int64)
    df["epoch"] = df["epoch"].astype(np.int64)
    df["y_true"] = df["y_true"].astype(np.int64)
    df["y_pred"] = df["y_pred"].astype(np.int64)
    return df.sort_values([*CELL, "seed", "fold", "subject", "clip", "epoch"], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------- the shortcuts

def _epoch_grid(audit: pd.DataFrame) -> tuple[dict, list[int]]:
    """fold -> (epochs (E,), y_pred (E, n), y_true (n,), clips); and the union of epochs.

    A clip is named by subject and clip (two subjects of one fold may share a clip name); every
    clip of a fold must have exactly one prediction at each of the fold's epochs.
    """
    if not len(audit):
        return {}, []
    a = audit.assign(_clip=audit["subject"].astype(str) + "/" + audit["clip"].astype(str))
    a = a.sort_values(["fold", "_clip", "epoch"], kind="stable")
    fold_col, clip_col = a["fold"].astype(str).to_numpy(), a["_clip"].to_numpy()
    ep_col, yp_col, yt_col = (a[c].to_numpy(np.int64) for c in ("epoch", "y_pred", "y_true"))
    folds = {}
    cuts = np.flatnonzero(fold_col[1:] != fold_col[:-1]) + 1
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(a)]):
        fold, clips, eps = fold_col[lo], clip_col[lo:hi], ep_col[lo:hi]
        starts = np.r_[0, np.flatnonzero(clips[1:] != clips[:-1]) + 1]  # rows are sorted by clip, epoch
        names, epochs = clips[starts], np.unique(eps)
        n_c, n_e = len(names), len(epochs)
        if hi - lo != n_c * n_e or (eps.reshape(n_c, n_e) != epochs).any():
            seen: set = set()
            for c, e in zip(clips.tolist(), eps.tolist()):
                if (c, e) in seen:
                    raise AuditError(f"fold {fold}: clip {c} has two audit predictions at epoch {e}")
                seen.add((c, e))
            c, e = next((c, e) for c in names.tolist() for e in epochs.tolist() if (c, e) not in seen)
            raise AuditError(f"fold {fold}: clip {c} has no audit prediction at epoch {e}")
        pred = yp_col[lo:hi].reshape(n_c, n_e).T
        folds[fold] = (epochs, pred, yt_col[lo:hi][starts], names.tolist())
    grid = sorted({int(e) for f in folds.values() for e in f[0]})
    return folds, grid


def _subject_best(folds: dict, n_classes: int) -> tuple[dict[str, float], pd.DataFrame]:
    picks, yt, yp = [], [], []
    for fold, (epochs, pred, truth, _clips) in folds.items():
        correct = (pred == truth[None, :]).sum(1)
        i = len(correct) - 1 - int(np.argmax(correct[::-1]))  # the latest of the best (HTNet's <=)
        picks.append({"fold": fold, "epoch": int(epochs[i]), "correct": int(correct[i]),
                      "last_epoch": int(epochs[-1]), "last_correct": int(correct[-1]), "n": len(truth)})
        yt.append(truth)
        yp.append(pred[i])
    return pooled_scores(np.concatenate(yt), np.concatenate(yp), n_classes), pd.DataFrame(picks)


def _overall_best(folds: dict, grid: list[int], n_classes: int) -> tuple[dict[str, float], int]:
    best, best_e = None, -1
    truth = np.concatenate([f[2] for f in folds.values()])
    for e in grid:
        # a fold without epoch e stopped before it: its last epoch up to e is its model at e
        pred = np.concatenate([p[max(int(np.searchsorted(ep, e, side="right")) - 1, 0)]
                               for ep, p, _, _ in folds.values()])
        s = pooled_scores(truth, pred, n_classes)
        if best is None or (s["uf1"], s["uar"]) >= (best["uf1"], best["uar"]):
            best, best_e = s, e
    return best, best_e


def subject_best_epoch(audit: pd.DataFrame, n_classes: int) -> tuple[dict[str, float], pd.DataFrame]:
    """Shortcut 1 on one cell and seed: per fold the epoch with the most correct test predictions
    (ties: the latest), pooled. Returns the pooled ``{"uf1", "uar", "acc"}`` and one row per fold:
    fold, epoch (chosen), correct (its number right), last_epoch, last_correct, n."""
    return _subject_best(_epoch_grid(audit)[0], n_classes)


def overall_best_epoch(audit: pd.DataFrame, n_classes: int) -> tuple[dict[str, float], int]:
    """Shortcut 2 on one cell and seed: the one epoch whose pooled test predictions score best
    (UF1, then UAR; ties: the latest). Returns its pooled scores and the epoch (0-based)."""
    return _overall_best(*_epoch_grid(audit), n_classes)


def fold_mean(predictions: pd.DataFrame, n_classes: int) -> dict[str, float]:
    """Shortcut 3: each fold's own UF1 and UAR (``bench.evaluation.metrics.per_fold_scores``), averaged over folds."""
    per = per_fold_scores(predictions, n_classes)
    return {"uf1": float(per["uf1"].mean()), "uar": float(per["uar"].mean())}


def mean_precision_uar(y_true, y_pred, n_classes: int) -> float:
    """Shortcut 4: the mean per-class precision over the classes with true samples (never-predicted: 0)."""
    pc = per_class_scores(confusion_matrix(y_true, y_pred, n_classes))
    prec = pc["precision"].where(pc["precision"] >= 0, 0.0)  # -1 marks 0/0: never predicted
    return float(prec[pc["in_uar"]].mean())


def class_dropping_fold(y_true, y_pred, one_class_is_perfect: bool = False) -> tuple[float, float]:
    """One fold's (UF1, UAR) by CausalNet's / MER-CLIP's ``recognition_evaluation`` (see the module doc).

    Only the classes present in the fold's truth or predictions can enter (the others raise in that
    code and are skipped), and so can the class that is every clip's truth and prediction: that one is
    skipped as well. No class left: NaN (``np.mean([])``), or with ``one_class_is_perfect`` (MER-CLIP)
    1, 1 when truth and predictions are one and the same single class.
    """
    yt, yp = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    ut, up = np.unique(yt), np.unique(yp)
    if one_class_is_perfect and len(ut) == 1 and len(up) == 1 and ut[0] == up[0]:
        return 1.0, 1.0
    f1s, recalls = [], []
    for c in np.union1d(ut, up):
        t, p = yt == c, yp == c
        if len(np.unique(np.r_[t, p])) < 2:  # a 1x1 confusion matrix: the unpacking raises, the class is skipped
            continue
        tp, fp, fn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn))
        recalls.append(tp / int(t.sum()) if t.any() else np.nan)  # numpy's 0/0: NaN
    if not f1s:
        return np.nan, np.nan
    return float(np.mean(f1s)), float(np.mean(recalls))


def class_dropping_scores(predictions: pd.DataFrame, one_class_is_perfect: bool = False) -> dict[str, float]:
    """Shortcuts 5 and 6: :func:`class_dropping_fold` per fold of the honest predictions, averaged over
    folds (NaN folds left out; NaN when every fold is). ``n_nan_uf1`` / ``n_nan_uar``: folds left out."""
    per = [class_dropping_fold(g["y_true"], g["y_pred"], one_class_is_perfect)
           for _, g in predictions.groupby("fold", sort=False)]
    uf1, uar = (np.array([p[i] for p in per], dtype=float) for i in (0, 1))
    mean = (lambda v: float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else np.nan)
    return {"uf1": mean(uf1), "uar": mean(uar), "n_nan_uf1": int((~np.isfinite(uf1)).sum()),
            "n_nan_uar": int((~np.isfinite(uar)).sum())}


# -------------------------------------------------------------------------------- the tables

def _check_fits(audit: pd.DataFrame, honest: pd.DataFrame, where: str) -> None:
    """The audit must cover exactly the honest predictions' clips, with the same truth."""
    ids = ["fold", "subject", "clip"]
    h = honest.set_index(ids)["y_true"]
    a = audit.drop_duplicates(ids).set_index(ids)["y_true"]
    missing = h.index.difference(a.index)
    extra = a.index.difference(h.index)
    if len(missing) or len(extra):
        fold, subject, clip = (missing if len(missing) else extra)[0]
        what = "has no audit predictions" if len(missing) else "is in the audit but not in the predictions"
        raise AuditError(f"{where}: clip {subject}/{clip} (fold {fold}) {what}")
    diff = h[h != a.reindex(h.index)]
    if len(diff):
        fold, subject, clip = diff.index[0]
        raise AuditError(f"{where}: clip {subject}/{clip} (fold {fold}): y_true differs between the audit "
                         "and the predictions")


def shortcut_scores(audit: pd.DataFrame, predictions: pd.DataFrame, n_classes: int,
                    cell: Sequence[str] = CELL) -> pd.DataFrame:
    """One row per cell and seed of the honest predictions: honest UF1/UAR, every shortcut, the inflation.

    ``cell``: the columns that name a cell (the report passes its setting column instead of
    dataset and flow). Shortcuts 1 and 2 need the cell's audit rows: without them they are NaN;
    3 and 4 come from the honest predictions alone. Columns: ``cell``, seed, n_folds, n_epochs,
    ``leaky_overall_best_epoch`` (0-based), ``SCORE_COLUMNS``.
    """
    keys = [*cell, "seed"]
    groups = dict(iter(audit.groupby(keys, sort=False))) if len(audit) else {}
    rows = []
    for key, honest in predictions.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        where = "cell " + " | ".join(map(str, key))
        s = pooled_scores(honest["y_true"].to_numpy(), honest["y_pred"].to_numpy(), n_classes)
        row = {**dict(zip(keys, key)), "n_folds": int(honest["fold"].nunique()), "n_epochs": 0,
               "leaky_overall_best_epoch": np.nan, "uf1": s["uf1"], "uar": s["uar"],
               **{c: np.nan for c in LEAKY}}
        a = groups.get(key)
        if a is not None:
            _check_fits(a, honest, where)
            folds, grid = _epoch_grid(a)
            s1, _ = _subject_best(folds, n_classes)
            s2, e2 = _overall_best(folds, grid, n_classes)
            row.update(n_epochs=int(a["epoch"].nunique()), leaky_overall_best_epoch=e2,
                       uf1_leaky_subject_best_epoch=s1["uf1"], uar_leaky_subject_best_epoch=s1["uar"],
                       uf1_leaky_overall_best_epoch=s2["uf1"], uar_leaky_overall_best_epoch=s2["uar"])
        fm = fold_mean(honest, n_classes)
        row.update(uf1_leaky_fold_mean=fm["uf1"], uar_leaky_fold_mean=fm["uar"],
                   uar_leaky_mean_precision=mean_precision_uar(honest["y_true"], honest["y_pred"], n_classes))
        for s, one in (("class_dropping", False), ("class_dropping_one_class", True)):
            cd = class_dropping_scores(honest, one)
            row.update({f"uf1_leaky_{s}": cd["uf1"], f"uar_leaky_{s}": cd["uar"]})
        for c in LEAKY:
            row[f"{c}_inflation"] = row[c] - row[c.split("_", 1)[0]]
        rows.append(row)
    cols = [*keys, "n_folds", "n_epochs", "leaky_overall_best_epoch", *SCORE_COLUMNS]
    return pd.DataFrame(rows, columns=cols)


def summarize(per_seed: pd.DataFrame, cell: Sequence[str] = CELL) -> pd.DataFrame:
    """Per cell: the mean over seeds of every score column, ``<column>_sd`` (sample sd over seeds;
    NaN with one seed) and ``n_seeds``. A shortcut missing for some seed is averaged over the rest."""
    cell = list(cell)
    if not len(per_seed):
        return pd.DataFrame(columns=[*cell, "n_seeds", *SCORE_COLUMNS, *(f"{c}_sd" for c in SCORE_COLUMNS)])
    g = per_seed.groupby(cell, sort=False)
    mean = g[SCORE_COLUMNS].mean()
    sd = g[SCORE_COLUMNS].std(ddof=1).add_suffix("_sd")
    out = pd.concat([g["seed"].nunique().rename("n_seeds"), mean, sd], axis=1).reset_index()
    return out
