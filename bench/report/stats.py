"""Statistics for the report: pooled scores with subject-bootstrap CIs, paired Wilcoxon tests, Holm.

The pooled metrics themselves (UF1, UAR, accuracy) come from ``bench.metrics`` so that the report and
the scorer can never disagree; this module only resamples and compares.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from bench import metrics

METRICS = ("uf1", "uar", "acc")
# Exact two-sided signed-rank p-values cannot go below 2 / 2**n: with n = 5 non-zero pairs the
# smallest possible p is 0.0625, so fewer than 6 non-zero pairs can never reject at 5 %.
DEFAULT_MIN_PAIRS = 6
# Exact enumeration of the 2**n sign flips (the correct null when |differences| tie) stays cheap here.
_MAX_PERMUTATION_N = 16


def subject_confusions(df: pd.DataFrame, subjects: list[str], n_classes: int) -> np.ndarray:
    """Per-subject confusion matrices, shape (len(subjects), K, K); a subject with no rows is all zero."""
    out = np.zeros((len(subjects), n_classes, n_classes), dtype=np.int64)
    index = {s: i for i, s in enumerate(subjects)}
    for subj, grp in df.groupby("subject", sort=False):
        out[index[str(subj)]] = metrics.confusion_matrix(
            grp["y_true"].to_numpy(), grp["y_pred"].to_numpy(), n_classes
        )
    return out


def scores_of(cms: np.ndarray) -> dict[str, np.ndarray]:
    """Scores of a stack of non-empty confusion matrices (..., K, K) -> metric -> array (...)."""
    cms = np.asarray(cms)
    flat = cms.reshape(-1, *cms.shape[-2:])
    vals = {m: np.empty(len(flat)) for m in METRICS}
    for i, cm in enumerate(flat):
        s = metrics.scores_from_confusion(cm)
        for m in METRICS:
            vals[m][i] = s[m]
    return {m: v.reshape(cms.shape[:-2]) for m, v in vals.items()}


def bootstrap_ci(
    cms: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile CI of the pooled scores, resampling SUBJECTS with replacement.

    ``cms`` is (S, K, K) for one seed or (n_seeds, S, K, K). A replicate draws S subjects with
    replacement, pools their predictions (sums their confusion matrices) and rescores; with several
    seeds the same subject draw is applied to every seed and the replicate's value is the mean over
    seeds, so the interval is for the seed-averaged score that the headline table reports. Resampling
    subjects (not samples) because subjects are the independent units under LOSO.
    """
    cms = np.asarray(cms)
    if cms.ndim == 3:
        cms = cms[None]
    n_seeds, n_subj = cms.shape[:2]
    if n_subj == 0:
        raise ValueError("bootstrap_ci needs at least one subject")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    # Multinomial counts == how often each subject is drawn: one matrix product sums the replicates.
    counts = rng.multinomial(n_subj, np.full(n_subj, 1.0 / n_subj), size=n_boot)  # (B, S)
    boot = np.einsum("bs,nskl->nbkl", counts, cms, optimize=True)  # (n_seeds, B, K, K)
    # A seed whose fold failed for a subject has no rows for it; a replicate drawing only such subjects
    # is empty for that seed and the replicate's mean is over the seeds that have predictions.
    valid = boot.sum(axis=(-2, -1)) > 0  # (n_seeds, B)
    n_valid = valid.sum(axis=0)
    if (n_valid == 0).any():
        raise ValueError("bootstrap_ci: a subject has no predictions in any seed")
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    out = {}
    scored = scores_of(boot[valid])  # (n_valid_total,)
    for m in METRICS:
        full = np.zeros(valid.shape)
        full[valid] = scored[m]
        lo, hi = np.quantile(full.sum(axis=0) / n_valid, q)
        out[m] = (float(lo), float(hi))
    return out


@dataclass
class CellSummary:
    """Pooled scores of one (dataset, representation, model) over its seeds."""

    seeds: list[int]
    per_seed: dict[str, list[float]]  # metric -> pooled score of each seed
    mean: dict[str, float]
    std: dict[str, float | None]  # None with a single seed (undefined, never NaN)
    ci: dict[str, tuple[float, float]]
    n_subjects: int
    n_samples: int  # per seed (max over seeds)
    confusion: np.ndarray  # summed over seeds (K, K)


def summarize_cell(
    df: pd.DataFrame, n_classes: int, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> CellSummary:
    """Pooled scores per seed, mean ± std over seeds, and the subject-bootstrap CI of the mean."""
    subjects = sorted(df["subject"].astype(str).unique())
    seeds = sorted(int(s) for s in df["seed"].unique())
    cms = np.stack([subject_confusions(df[df["seed"] == s], subjects, n_classes) for s in seeds])
    per_seed = {m: [] for m in METRICS}
    for s, grp in zip(seeds, (df[df["seed"] == s] for s in seeds)):
        sc = metrics.pooled_scores(grp["y_true"].to_numpy(), grp["y_pred"].to_numpy(), n_classes)
        for m in METRICS:
            per_seed[m].append(float(sc[m]))
    mean = {m: float(np.mean(v)) for m, v in per_seed.items()}
    std = {m: (float(np.std(v, ddof=1)) if len(v) > 1 else None) for m, v in per_seed.items()}
    ci = bootstrap_ci(cms, n_boot=n_boot, seed=seed, level=level)
    n_samples = int(df.groupby("seed").size().max())
    return CellSummary(seeds, per_seed, mean, std, ci, len(subjects), n_samples, cms.sum(axis=(0, 1)))


def per_subject_table(df: pd.DataFrame, n_classes: int) -> pd.DataFrame:
    """Per-subject scores averaged over seeds: columns subject, uf1, uar, acc, n (samples per seed)."""
    parts = []
    for s, grp in df.groupby("seed", sort=True):
        t = metrics.per_subject_scores(grp, n_classes).copy()
        t["seed"] = s
        parts.append(t)
    allp = pd.concat(parts, ignore_index=True)
    allp["subject"] = allp["subject"].astype(str)
    return allp.groupby("subject", sort=True)[["uf1", "uar", "acc", "n"]].mean().reset_index()


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (same order as the input).

    Written here because scipy has none and statsmodels is not a dependency:
    p_adj(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) over the ascending order.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError("holm expects a 1-D sequence of p-values")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"holm: p-values must lie in [0, 1], got {p.tolist()}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


def rank_biserial(diffs) -> float | None:
    """Matched-pairs rank-biserial correlation (Kerby 2014): (R+ - R-) / (R+ + R-).

    Ranks of |d| over the non-zero differences (average ranks for ties), matching the Wilcoxon
    ``zero_method='wilcox'`` convention. In [-1, 1]; None when every difference is zero.
    """
    d = np.asarray(diffs, dtype=float)
    d = d[d != 0]
    if len(d) == 0:
        return None
    ranks = sps.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


@dataclass
class PairedTest:
    """One representation vs the baseline for one model, paired over subjects."""

    n_pairs: int
    n_nonzero: int
    median_diff: float | None
    mean_diff: float | None
    rank_biserial: float | None
    statistic: float | None
    p: float | None
    method: str  # how p was computed, or "" when not tested
    status: str  # "tested" | "all_zero" | "too_few" | "no_pairs"
    reason: str = ""  # words for an untested comparison
    p_holm: float | None = field(default=None)


def paired_wilcoxon(x, y, min_pairs: int = DEFAULT_MIN_PAIRS) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of x - y (paired arrays), zeros discarded ('wilcox').

    p-value method: exact null when the non-zero |differences| have no ties (n <= 50); exact
    enumeration of the sign-flip permutation distribution when they tie (n <= 16; scipy's exact
    table assumes distinct ranks); the tie-corrected normal approximation otherwise.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired_wilcoxon: shapes differ {x.shape} vs {y.shape}")
    # Rounded so that float noise neither invents nor hides a zero or a tie (scores are ratios of counts).
    d = np.round(x - y, 12)
    n = len(d)
    if n == 0:
        return PairedTest(0, 0, None, None, None, None, None, "", "no_pairs", "no subject has both scores")
    nz = d[d != 0]
    med, mean, r = float(np.median(d)), float(np.mean(d)), rank_biserial(d)
    if len(nz) == 0:
        return PairedTest(
            n, 0, med, mean, None, None, None, "", "all_zero",
            f"not tested: no difference on any of the {n} subjects",
        )
    if len(nz) < min_pairs:
        return PairedTest(
            n, len(nz), med, mean, r, None, None, "", "too_few",
            f"not tested: only {len(nz)} of {n} subjects differ (at least {min_pairs} needed)",
        )
    absd = np.abs(nz)
    ties = len(np.unique(absd)) < len(absd)
    if not ties and len(nz) <= 50:
        method, label = "exact", "exact"
    elif ties and len(nz) <= _MAX_PERMUTATION_N:
        method = sps.PermutationMethod(n_resamples=2 ** len(nz))  # >= 2**n -> exact enumeration
        label = "exact sign-flip permutation (tied ranks)"
    else:
        method, label = "asymptotic", "normal approximation (tie-corrected)"
    res = sps.wilcoxon(nz, zero_method="wilcox", alternative="two-sided", method=method)
    return PairedTest(n, len(nz), med, mean, r, float(res.statistic), float(res.pvalue), label, "tested")


def apply_holm(tests: list[PairedTest]) -> None:
    """Fill ``p_holm`` for the tested members of one family (untested ones are not in the family)."""
    tested = [t for t in tests if t.status == "tested"]
    if tested:
        for t, pa in zip(tested, holm([t.p for t in tested])):
            t.p_holm = float(pa)
