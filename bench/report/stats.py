"""Statistics for the report: pooled scores with a subject-and-seed bootstrap, paired tests, Holm.

The pooled metrics themselves (UF1, UAR, accuracy) come from ``bench.evaluation.metrics`` so that the report and
the scorer can never disagree; this module only resamples and compares. Seeds are a source of
variance: a cell's score is the mean over seeds of each seed's pooled score, and its interval resamples
subjects and seeds. A comparison's verdict is not made here: ``bench.evaluation.verdicts`` decides it
(better / practically equivalent / worse / undecided); the tests here (Wilcoxon with Holm, McNemar per
seed) are its secondary columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from bench.evaluation import metrics
from bench.evaluation.metrics import per_seed_scores  # defined beside pooled_scores: the summary and report share it

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
    """Scores of a stack of non-empty confusion matrices (..., K, K) -> metric -> array (...).

    Vectorised form of ``bench.evaluation.metrics.scores_from_confusion`` (same conventions: a class absent from
    both truth and predictions leaves the UF1 mean, a class with no true sample leaves the UAR mean),
    so that thousands of bootstrap replicates cost one pass over a NumPy array.
    """
    cms = np.asarray(cms)
    if cms.ndim < 2 or cms.shape[-1] != cms.shape[-2]:
        raise ValueError(f"scores_of expects (..., K, K) confusion matrices, got shape {cms.shape}")
    cms = cms.astype(np.float64)
    total = cms.sum(axis=(-2, -1))
    if (total <= 0).any():
        raise ValueError("cannot score an empty prediction pool (a confusion matrix is all zeros)")
    tp = np.diagonal(cms, axis1=-2, axis2=-1)
    support, n_pred = cms.sum(axis=-1), cms.sum(axis=-2)
    f1_den = support + n_pred  # 2 TP + FP + FN
    f1_ok, rec_ok = f1_den > 0, support > 0
    f1 = np.divide(2 * tp, f1_den, out=np.zeros_like(tp), where=f1_ok)
    rec = np.divide(tp, support, out=np.zeros_like(tp), where=rec_ok)
    return {"uf1": f1.sum(axis=-1) / f1_ok.sum(axis=-1), "uar": rec.sum(axis=-1) / rec_ok.sum(axis=-1),
            "acc": tp.sum(axis=-1) / total}


def bootstrap_ci(
    cms: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95, resample_seeds: bool = True
) -> dict[str, tuple[float, float]]:
    """Percentile CI of the seed-mean pooled scores, resampling SUBJECTS and SEEDS with replacement.

    ``cms`` is (S, K, K) for one seed or (n_seeds, S, K, K). A replicate draws S subjects with
    replacement and, independently, n_seeds seeds with replacement; for each drawn seed it pools the
    drawn subjects' predictions of that seed (sums their confusion matrices) and rescores; the
    replicate's value is the mean over the drawn seeds (a seed drawn twice counts twice). Subjects are
    resampled because they are the independent units under LOSO; seeds because a cell's score moves
    with the seed (initialisation, batch order). ``resample_seeds=False`` keeps every seed in every
    replicate (the subject-only bootstrap). With one seed the two are the same.

    A seed that lost a subject (a failed fold) has no rows for it: a replicate's drawn seed whose pool
    is empty is left out of that replicate's mean, and a replicate with no scoreable drawn seed at all
    is dropped (possible only when folds failed).
    """
    cms = np.asarray(cms)
    if cms.ndim == 3:
        cms = cms[None]
    if cms.ndim != 4 or cms.shape[-1] != cms.shape[-2]:
        raise ValueError(f"bootstrap_ci expects (S, K, K) or (n_seeds, S, K, K) counts, got shape {cms.shape}")
    n_seeds, n_subj = cms.shape[:2]
    if n_subj == 0 or n_seeds == 0:
        raise ValueError("bootstrap_ci needs at least one subject and one seed")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    # Multinomial counts == how often each subject (seed) is drawn: one matrix product sums the replicates.
    subj = rng.multinomial(n_subj, np.full(n_subj, 1.0 / n_subj), size=n_boot)  # (B, S)
    if resample_seeds and n_seeds > 1:
        seed_w = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot).T  # (n_seeds, B)
    else:
        seed_w = np.ones((n_seeds, n_boot), dtype=np.int64)
    boot = np.einsum("bs,nskl->nbkl", subj, cms, optimize=True)  # (n_seeds, B, K, K)
    valid = boot.sum(axis=(-2, -1)) > 0  # (n_seeds, B)
    w = seed_w * valid
    weight = w.sum(axis=0)  # (B,)
    keep = weight > 0
    if not keep.any():
        raise ValueError("bootstrap_ci: no replicate has predictions (every subject is missing in every seed)")
    scored = scores_of(boot[valid])
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    out = {}
    for m in METRICS:
        full = np.zeros(valid.shape)
        full[valid] = scored[m]
        lo, hi = np.quantile((w * full).sum(axis=0)[keep] / weight[keep], q)
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
    df: pd.DataFrame, n_classes: int, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> CellSummary:
    """Pooled scores per seed, mean ± std over seeds, and the subject-and-seed bootstrap CI of the mean."""
    subjects = sorted(df["subject"].astype(str).unique())
    seeds = sorted(int(s) for s in df["seed"].unique())
    cms = np.stack([subject_confusions(df[df["seed"] == s], subjects, n_classes) for s in seeds])
    scores = per_seed_scores(df, n_classes, [])  # one row per seed, in seed order
    per_seed = {m: [float(v) for v in scores[m]] for m in METRICS}
    mean = {m: float(np.mean(v)) for m, v in per_seed.items()}
    std = {m: (float(np.std(v, ddof=1)) if len(v) > 1 else None) for m, v in per_seed.items()}
    ci = bootstrap_ci(cms, n_boot=n_boot, seed=seed, level=level)
    n_samples = int(scores["n"].max())
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
        stat, p = _sign_flip_exact(nz)
        return PairedTest(n, len(nz), med, mean, r, stat, p, "exact sign-flip permutation (tied ranks)", "tested")
    else:
        method, label = "asymptotic", "normal approximation (tie-corrected)"
    res = sps.wilcoxon(nz, zero_method="wilcox", alternative="two-sided", method=method)
    return PairedTest(n, len(nz), med, mean, r, float(res.statistic), float(res.pvalue), label, "tested")


def _sign_flip_exact(nz: np.ndarray) -> tuple[float, float]:
    """Two-sided signed-rank test by enumerating all 2**n sign assignments of the (tied) ranks.

    Statistic min(R+, R-); p = the share of assignments whose statistic is at most the observed one.
    The same null as ``scipy.stats.wilcoxon(method=PermutationMethod(2**n))``, enumerated as one
    NumPy matrix product instead of scipy's per-permutation loop (0.8 s -> milliseconds at n = 12).
    Ranks of tied values are multiples of 1/2, so the sums are exact in float.
    """
    ranks = sps.rankdata(np.abs(nz))
    n, total = len(ranks), float(ranks.sum())
    signs = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1  # every assignment: bit j = rank j positive
    r_plus = signs @ ranks
    null = np.minimum(r_plus, total - r_plus)
    obs_plus = float(ranks[nz > 0].sum())
    obs = min(obs_plus, total - obs_plus)
    return obs, float(np.mean(null <= obs + 1e-9))


def apply_holm(tests: list[PairedTest]) -> None:
    """Fill ``p_holm`` for the tested members of one family (untested ones are not in the family)."""
    tested = [t for t in tests if t.status == "tested"]
    if tested:
        for t, pa in zip(tested, holm([t.p for t in tested])):
            t.p_holm = float(pa)


# ---------------------------------------------------------------- seeds as a source of variance


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant pairs: binomial(b; b + c, 1/2).

    ``b``: clips the baseline gets right and the other wrong; ``c``: the reverse. Under the null of
    equal error rates each discordant clip is a fair coin, so p = ``binomtest(b, b + c, 0.5)``
    (two-sided); with no discordant clip there is no evidence either way and p = 1.
    """
    for v, name in ((b, "b"), (c, "c")):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"mcnemar_exact: {name} must be a non-negative integer count, got {v!r}")
    if b + c == 0:
        return 1.0
    return float(min(1.0, sps.binomtest(int(b), int(b + c), 0.5).pvalue))


@dataclass
class McNemar:
    """One seed's exact McNemar test of a representation vs the baseline on the same clips."""

    seed: int
    n_clips: int  # clips both cells predicted in this seed
    b: int  # baseline right, other wrong
    c: int  # other right, baseline wrong
    p: float
    p_holm: float | None = None


def mcnemar_of_seed(base: pd.DataFrame, other: pd.DataFrame, seed: int) -> McNemar:
    """Pair one seed's predictions of two cells by (subject, clip) and test their disagreements."""
    key = ["subject", "clip"]
    for df, what in ((base, "baseline"), (other, "other")):
        if df.duplicated(key).any():
            first = df[df.duplicated(key)].iloc[0]
            raise ValueError(f"seed {seed}: the {what} cell predicts clip {first['subject']}/{first['clip']} twice")
    j = base[key + ["y_true", "y_pred"]].merge(other[key + ["y_true", "y_pred"]], on=key, suffixes=("_b", "_o"))
    if (j["y_true_b"] != j["y_true_o"]).any():
        bad = j[j["y_true_b"] != j["y_true_o"]].iloc[0]
        raise ValueError(f"seed {seed}: clip {bad['subject']}/{bad['clip']} has different true labels in the two cells")
    rb, ro = (j["y_pred_b"] == j["y_true_b"]).to_numpy(), (j["y_pred_o"] == j["y_true_o"]).to_numpy()
    b, c = int((rb & ~ro).sum()), int((~rb & ro).sum())
    return McNemar(int(seed), len(j), b, c, mcnemar_exact(b, c))


def apply_holm_mcnemar(tests: list[McNemar]) -> None:
    """Fill ``p_holm`` over one family; tests with no discordant clip (p = 1, no power) stay out of it."""
    tested = [t for t in tests if t.b + t.c > 0]
    for t in tests:
        t.p_holm = 1.0
    if tested:
        for t, pa in zip(tested, holm([t.p for t in tested])):
            t.p_holm = float(pa)


def sign_counts(diffs) -> tuple[int, int, int]:
    """(higher, lower, equal): how many seeds' differences are > 0, < 0 and == 0 (at 1e-12)."""
    d = np.round(np.asarray(diffs, dtype=float), 12)
    return int((d > 0).sum()), int((d < 0).sum()), int((d == 0).sum())
