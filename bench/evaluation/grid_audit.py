"""The leakage audit's configuration shortcut and the published protocols stacked (``bench.evaluation.audit``).

**Configuration chosen on test** (CausalNet's 36-configuration grid scored on its LOSO test folds;
any "best of K settings" ablation). A *family* is the cells of one setting that share the
representation's and the model's registry names (``representation_name``, ``model_name`` of the
results table): a θ sweep, FMANet's switches, a learning-rate / epoch grid of one model, a tuned
study's items. Per family and seed, with its K configurations (cells):

- LEAKY ``best_of_k``: the configuration whose pooled test UF1 (then UAR; ties: the first in the
  study's order) is best, its pooled scores reported.
- honest ``inner_pick``: the same choice made per outer fold on that fold's training subjects only:
  each fold takes the configuration with the best *inner-validation* UF1 (then UAR; ties: the first),
  and the chosen configurations' test predictions are pooled over folds. The inner score is the
  record's ``audit.inner`` (``bench.training.units``): the trainer's own validation subjects
  (``protocol.validation.mode=subjects``) when the cell has them, else, with ``audit=grid``, one extra
  fit per unit on its training subjects less a held-out 20 % of them, scored on those (``validation``
  says which). Without an inner score for every configuration of a fold, the honest pick is NaN.
- inflation as a function of k (1, 2, 4, …, K): over the subsets of k of the K configurations (all
  of them up to ``MAX_SUBSETS``, else that many drawn with a fixed seed), the mean of best-of-k minus
  the honest pick among the same k; k = 1 gives 0. ``random`` is the same against the mean pooled score
  of the k (a configuration picked blindly), for runs without inner scores.

**Published protocols** (``bench/report/anchors/protocols.yaml``): each is an epoch rule, a
configuration rule and a scoring rule, computed together (:func:`protocol_scores`), so a stacked
protocol (best epoch per subject, then the best of K configurations) is one figure, not a sum.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from bench.evaluation.audit import (
    CELL, AuditError, _epoch_grid, _overall_best, class_dropping_fold, class_dropping_scores, fold_mean,
    mean_precision_uar,
)
from bench.evaluation.metrics import pooled_scores

INNER_COLUMNS = ["study", *CELL, "seed", "fold", "inner_uf1", "inner_uar", "n_val", "validation"]
MAX_SUBSETS = 256  # subsets of k configurations averaged per k (beyond: drawn, seed 0)
EPOCH_RULES = ("last", "subject_best", "subject_best_uf1_one_class", "overall_best")
CONFIG_RULES = ("one", "best_of_k")
SCORE_RULES = ("pooled", "fold_mean", "class_dropping", "class_dropping_one_class")
UAR_RULES = ("recall", "mean_precision")


def inner_frame(records) -> pd.DataFrame:
    """Unit records -> one row per unit with an inner-validation score (``INNER_COLUMNS``)."""
    rows = []
    for rec in records:
        inner = (rec.get("audit") or {}).get("inner")
        if not inner or rec["row"].get("status") != "ok":
            continue
        r = rec["row"]
        rows.append({"study": r["study"], **{c: r[c] for c in CELL}, "seed": int(r["seed"]), "fold": str(r["fold"]),
                     "inner_uf1": float(inner["uf1"]), "inner_uar": float(inner["uar"]),
                     "n_val": int(inner["n_val"]), "validation": str(inner["validation"])})
    return pd.DataFrame(rows, columns=INNER_COLUMNS)


def load_inner(run_dir: str | Path) -> pd.DataFrame:
    """``audit_inner.parquet`` checked (its columns, finite scores in [0, 1]), or an empty frame."""
    path = Path(run_dir) / "audit_inner.parquet"
    if not path.exists():
        return pd.DataFrame(columns=INNER_COLUMNS)
    df = pd.read_parquet(path)
    missing = [c for c in INNER_COLUMNS if c not in df.columns]
    if missing:
        raise AuditError(f"{path}: missing column(s) {', '.join(missing)}")
    for c in ("inner_uf1", "inner_uar"):
        bad = ~df[c].astype(float).between(0.0, 1.0)
        if bad.any():
            raise AuditError(f"{path}: row {int(np.flatnonzero(bad)[0])}: {c} must be a score in [0, 1]")
    for c in ("dataset", "flow", "representation", "model", "fold"):
        df[c] = df[c].astype(str)
    return df.assign(seed=df["seed"].astype(np.int64))


def families(results: pd.DataFrame, cell: Sequence[str] = CELL) -> dict[tuple, tuple]:
    """cell key -> its family key: the cell's columns other than representation and model, plus the
    registry names of both (the cell's own labels when the results table lacks them)."""
    cell = list(cell)
    others = [c for c in cell if c not in ("representation", "model")]
    out = {}
    for _, r in results.drop_duplicates(cell).iterrows():
        names = tuple(r.get(f"{a}_name", r[a]) for a in ("representation", "model"))
        out[tuple(r[c] for c in cell)] = (*(r[c] for c in others), *map(str, names))
    return out


def _best(scores: list[tuple[float, float]]) -> int:
    """Index of the best (UF1, UAR) pair; ties: the first."""
    best = 0
    for i, s in enumerate(scores):
        if s > scores[best]:
            best = i
    return best


class _Family:
    """One family and seed: per configuration its test predictions per fold and its inner scores."""

    def __init__(self, configs: list[tuple], preds: dict, inner: dict, n_classes: int):
        self.configs, self.n_classes = configs, n_classes
        self.folds = sorted(set.intersection(*(set(preds[c]) for c in configs)))
        self.truth = {f: preds[configs[0]][f][0] for f in self.folds}
        for c in configs:  # one family's configurations score the same test clips
            bad = next((f for f in self.folds if not np.array_equal(preds[c][f][0], self.truth[f])), None)
            if bad is not None:
                raise AuditError(f"fold {bad}: configurations {' | '.join(map(str, configs[0]))} and "
                                 f"{' | '.join(map(str, c))} of one family have different test clips or labels")
        self.pred = {c: {f: preds[c][f][1] for f in self.folds} for c in configs}
        self.pooled = []
        yt = np.concatenate([self.truth[f] for f in self.folds])
        for c in configs:
            s = pooled_scores(yt, np.concatenate([self.pred[c][f] for f in self.folds]), n_classes)
            self.pooled.append((s["uf1"], s["uar"]))
        self.inner = [[inner.get((c, f)) for f in self.folds] for c in configs]

    def leaky(self, idx: Sequence[int]) -> tuple[int, tuple[float, float]]:
        i = idx[_best([self.pooled[j] for j in idx])]
        return i, self.pooled[i]

    def honest(self, idx: Sequence[int]) -> tuple[dict, tuple[float, float]]:
        """Per fold the configuration of ``idx`` with the best inner score; NaN without every inner score."""
        picks, yp = {}, []
        for k, f in enumerate(self.folds):
            cand = [self.inner[j][k] for j in idx]
            if any(c is None for c in cand):
                return {}, (np.nan, np.nan)
            picks[f] = idx[_best(cand)]
            yp.append(self.pred[self.configs[picks[f]]][f])
        s = pooled_scores(np.concatenate([self.truth[f] for f in self.folds]), np.concatenate(yp), self.n_classes)
        return picks, (s["uf1"], s["uar"])


def _subsets(K: int, k: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    if math.comb(K, k) <= MAX_SUBSETS:
        return list(itertools.combinations(range(K), k))
    return [tuple(sorted(rng.choice(K, k, replace=False).tolist())) for _ in range(MAX_SUBSETS)]


def k_steps(K: int) -> list[int]:
    """1, 2, 4, … below K, then K."""
    ks, k = [], 1
    while k < K:
        ks.append(k)
        k *= 2
    return [*ks, K]


def _curve(fam: _Family, key: tuple, seed) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for k in k_steps(len(fam.configs)):
        vs_honest, vs_random = [], []
        for idx in _subsets(len(fam.configs), k, rng):
            leaky = fam.leaky(idx)[1][0]
            vs_honest.append(leaky - fam.honest(idx)[1][0])
            vs_random.append(leaky - float(np.mean([fam.pooled[j][0] for j in idx])))
        rows.append({"family": key, "seed": seed, "k": k, "n_subsets": len(vs_honest),
                     "inflation": float(np.mean(vs_honest)), "inflation_vs_random": float(np.mean(vs_random))})
    return rows


def _collect(predictions: pd.DataFrame, inner: pd.DataFrame, cell: list[str]) -> tuple[dict, dict]:
    """(cell, seed) -> fold -> (y_true, y_pred) sorted by clip; (cell, seed) -> {(cell, fold): (uf1, uar)}."""
    preds: dict = {}
    for key, g in predictions.sort_values(["subject", "clip"], kind="stable").groupby([*cell, "seed"], sort=False):
        preds[key] = {str(f): (h["y_true"].to_numpy(np.int64), h["y_pred"].to_numpy(np.int64))
                      for f, h in g.groupby("fold", sort=False)}
    scores: dict = {}
    for _, r in inner.iterrows():
        ck = tuple(r[c] for c in cell)
        scores.setdefault((*ck, int(r["seed"])), {})[(ck, str(r["fold"]))] = (float(r["inner_uf1"]), float(r["inner_uar"]))
    return preds, scores


def config_choice(predictions: pd.DataFrame, inner: pd.DataFrame, fam_of: dict, n_classes: int,
                  cell: Sequence[str] = CELL) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The configuration shortcut (module doc) per family of K >= 2 and seed: (choices, curve).

    choices: family, seed, K, leaky_config (the cell key chosen), uf1_leaky_best_of_k, uar_leaky_best_of_k,
    uf1_inner_pick, uar_inner_pick, inflation (UF1), validation, mean_uf1 (the K configurations'
    mean pooled UF1). curve: family, seed, k, n_subsets, inflation, inflation_vs_random."""
    cell = list(cell)
    preds, scores = _collect(predictions, inner, cell)
    groups: dict = {}
    for (*ck, seed) in preds:
        fam = fam_of.get(tuple(ck))
        if fam is not None:
            groups.setdefault((fam, seed), []).append(tuple(ck))
    validation = ", ".join(sorted(set(inner["validation"]))) if len(inner) else ""
    rows, curve = [], []
    for (key, seed), configs in groups.items():
        if len(configs) < 2:
            continue
        inner_sc = {k: v for c in configs for k, v in scores.get((*c, seed), {}).items()}
        fam = _Family(configs, {c: preds[(*c, seed)] for c in configs}, inner_sc, n_classes)
        all_idx = list(range(len(configs)))
        i, (lu, la) = fam.leaky(all_idx)
        _, (hu, ha) = fam.honest(all_idx)
        rows.append({"family": key, "seed": seed, "K": len(configs), "leaky_config": configs[i],
                     "uf1_leaky_best_of_k": lu, "uar_leaky_best_of_k": la, "uf1_inner_pick": hu,
                     "uar_inner_pick": ha, "inflation": lu - hu, "validation": validation,
                     "mean_uf1": float(np.mean([p[0] for p in fam.pooled]))})
        curve.extend(_curve(fam, key, seed))
    return pd.DataFrame(rows), pd.DataFrame(curve)


# ------------------------------------------------------------------------- published protocols

def _epoch_preds(audit: pd.DataFrame | None, honest: pd.DataFrame, rule: str, n_classes: int) -> pd.DataFrame | None:
    """The predictions a protocol's epoch rule keeps (fold, y_true, y_pred), or None without audit rows."""
    if rule == "last":
        return honest[["fold", "y_true", "y_pred"]]
    if audit is None or not len(audit):
        return None
    folds, grid = _epoch_grid(audit)
    if rule == "overall_best":
        _, e = _overall_best(folds, grid, n_classes)
        pick = {f: max(int(np.searchsorted(ep, e, side="right")) - 1, 0) for f, (ep, *_r) in folds.items()}
    else:
        crit = (lambda t, p: int((p == t).sum())) if rule == "subject_best" else \
            (lambda t, p: np.nan_to_num(class_dropping_fold(t, p, True)[0], nan=-1.0))
        pick = {}
        for f, (ep, pred, truth, _c) in folds.items():
            vals = [crit(truth, pred[i]) for i in range(len(ep))]
            pick[f] = len(vals) - 1 - int(np.argmax(vals[::-1]))  # ties: the latest
    parts = [pd.DataFrame({"fold": f, "y_true": truth, "y_pred": pred[pick[f]]})
             for f, (ep, pred, truth, _c) in folds.items()]
    return pd.concat(parts, ignore_index=True)


def _score(sel: pd.DataFrame, score: str, uar_rule: str, n_classes: int) -> tuple[float, float]:
    if score == "pooled":
        s = pooled_scores(sel["y_true"].to_numpy(), sel["y_pred"].to_numpy(), n_classes)
    elif score == "fold_mean":
        s = fold_mean(sel, n_classes)
    else:
        s = class_dropping_scores(sel, score == "class_dropping_one_class")
    uar = mean_precision_uar(sel["y_true"], sel["y_pred"], n_classes) if uar_rule == "mean_precision" else s["uar"]
    return float(s["uf1"]), float(uar)


def check_protocol(name: str, spec: dict) -> None:
    """A protocol preset's rules must be known ones (the message names the preset and the key)."""
    for key, known in (("epoch", EPOCH_RULES), ("configs", CONFIG_RULES), ("score", SCORE_RULES),
                       ("uar_as", UAR_RULES)):
        if spec.get(key, known[0]) not in known:
            raise AuditError(f"protocol {name!r}: {key} must be one of {', '.join(known)}, got {spec.get(key)!r}")


def protocol_scores(audit: pd.DataFrame, predictions: pd.DataFrame, protocols: dict[str, dict], fam_of: dict,
                    n_classes: int, cell: Sequence[str] = CELL) -> pd.DataFrame:
    """Each published protocol (``{name: {epoch, configs, score, uar_as}}``) applied to every cell and seed.

    Columns: protocol, ``cell``, seed, uf1, uar (LEAKY), honest_uf1, honest_uar, d_uf1, d_uar, K (the
    configurations a best-of-K protocol chose among; 1 otherwise). NaN where the protocol needs audit
    rows the cell lacks. Best of K: the family member whose protocol UF1 (then UAR) is best."""
    cell = list(cell)
    keys = [*cell, "seed"]
    agroups = dict(iter(audit.groupby(keys, sort=False))) if len(audit) else {}
    honest = {k: g for k, g in predictions.groupby(keys, sort=False)}
    rows = []
    for name, spec in protocols.items():
        check_protocol(name, spec)
        alone = {}
        for k, g in honest.items():
            sel = _epoch_preds(agroups.get(k), g, spec.get("epoch", "last"), n_classes)
            alone[k] = (np.nan, np.nan) if sel is None else _score(sel, spec.get("score", "pooled"),
                                                                   spec.get("uar_as", "recall"), n_classes)
        for k, g in honest.items():
            mates = [m for m in honest if m[-1] == k[-1] and fam_of.get(m[:-1]) == fam_of.get(k[:-1])] \
                if spec.get("configs", "one") == "best_of_k" else [k]
            finite = [m for m in mates if np.isfinite(alone[m][0])]
            got = alone[finite[_best([alone[m] for m in finite])]] if finite else (np.nan, np.nan)
            h = pooled_scores(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), n_classes)
            rows.append({"protocol": name, **dict(zip(keys, k)), "uf1": got[0], "uar": got[1],
                         "honest_uf1": h["uf1"], "honest_uar": h["uar"], "d_uf1": got[0] - h["uf1"],
                         "d_uar": got[1] - h["uar"], "K": len(mates)})
    return pd.DataFrame(rows)
