"""Verdicts: is a representation better than, practically equivalent to, or worse than the baseline?

One rule, stated once, for the report, the end-of-run console and ``study.seeds=auto``:

* **The quantity**: ΔUF1, the mean over the seeds both cells ran of the difference of their pooled UF1
  (each seed's predictions pooled over all its leave-one-subject-out folds, MEGC2019).
* **Its posterior**: the Bayesian bootstrap (Rubin 1981) over subjects and seeds, paired. A draw weighs
  the subjects with Dirichlet(1, …, 1) weights and, independently, the seeds likewise; for each seed it
  pools the weighted subjects' confusion counts of both cells, scores both, and averages the difference
  over the weighted seeds. The same weights serve both cells, so what two cells share (the faces, the
  folds) cancels. This is the posterior of ΔUF1 under the non-informative Dirichlet-process prior over
  subjects and seeds, the same family of prior as Benavoli et al.'s (2017, JMLR) Bayesian signed-rank
  test, but on the pooled UF1 itself rather than on per-subject scores (degenerate under LOSO).
* **The decision**, with a region of practical equivalence ``rope`` (UF1 units) and a level
  ``decide_at``: P(ΔUF1 > rope) ≥ decide_at → better; P(ΔUF1 < −rope) ≥ decide_at → worse;
  P(|ΔUF1| ≤ rope) ≥ decide_at → practically equivalent; else undecided.
* **What would decide an undecided one**: the posterior's variance split into its subject part
  (subjects weighted, seeds fixed) and its seed part (seeds weighted, subjects fixed); the seed part
  shrinks as seeds are added, the subject part does not. A normal projection with the seed part scaled
  to n seeds says whether (and at about how many seeds, up to ``max_seeds``) more seeds would decide;
  when even no seed variance at all would not, it takes more subjects than the data have.

``verdicts(predictions, n_classes, baseline)`` gives one row per comparison (model, representation vs
the baseline, per dataset · flow and, for a composite, per source database) from the predictions table
that ``bench.results.tables`` writes; ``compare(a, b, n_classes)`` compares any two cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

BETTER, EQUIVALENT, WORSE, UNDECIDED = "better", "practically equivalent", "worse", "undecided"
VERDICTS = (BETTER, EQUIVALENT, WORSE, UNDECIDED)
SEEDS, SUBJECTS = "seeds", "subjects"  # what an undecided comparison needs (``Comparison.needs``)
FULL = ""  # ``source`` of a comparison over every source database of its setting
# The predictions columns a verdict reads (the smallest input that suffices: per cell, seed and subject,
# the confusion counts of y_true against y_pred).
COLUMNS = ("representation", "model", "seed", "subject", "y_true", "y_pred")


@dataclass(frozen=True)
class Rule:
    """The decision rule's settings (``report_options``: ``rope``, ``decide_at``, ``n_boot``, ``seed``,
    ``ci_level``; ``max_seeds``: the most seeds a cell may get, ``study.max_seeds``)."""

    rope: float = 0.01
    decide_at: float = 0.95
    n_boot: int = 2000
    seed: int = 0
    ci_level: float = 0.95
    max_seeds: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.rope < 1:
            raise ValueError(f"rope must be in [0, 1) (UF1 units), got {self.rope}")
        if not 0.5 < self.decide_at < 1:
            raise ValueError(f"decide_at must be in (0.5, 1), got {self.decide_at}")
        if self.n_boot < 1:
            raise ValueError(f"n_boot must be >= 1, got {self.n_boot}")
        if not 0 < self.ci_level < 1:
            raise ValueError(f"ci_level must be in (0, 1), got {self.ci_level}")
        if self.max_seeds < 1:
            raise ValueError(f"max_seeds must be >= 1, got {self.max_seeds}")

    def words(self) -> str:
        """The rule in one sentence (the report states it)."""
        r, d = f"{self.rope:g}", f"{self.decide_at:g}"
        return (f"better when P(ΔUF1 > {r}) ≥ {d}, worse when P(ΔUF1 < −{r}) ≥ {d}, practically equivalent "
                f"when P(|ΔUF1| ≤ {r}) ≥ {d}, otherwise undecided")


@dataclass
class Comparison:
    """One cell against another (``a − b``)."""

    verdict: str
    duf1: float  # mean over the common seeds of the pooled-UF1 difference
    lo: float  # ci_level posterior interval of ΔUF1
    hi: float
    p_better: float
    p_equivalent: float
    p_worse: float
    n_seeds: int
    seeds: tuple[int, ...]
    n_subjects: int
    needs: str  # "" (decided), SEEDS or SUBJECTS
    seeds_wanted: int | None  # about how many seeds would decide it (normal projection), when known
    reason: str  # why this verdict, in words; for undecided, what would decide it


# ---------------------------------------------------------------- counts and scores


def subject_counts(df: pd.DataFrame, n_classes: int, subjects: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
    """Confusion counts per seed and subject, shape (len(seeds), len(subjects), K, K); absent ones are zero."""
    out = np.zeros((len(seeds), len(subjects), n_classes, n_classes), dtype=np.int64)
    si = pd.Index([int(s) for s in seeds]).get_indexer(df["seed"].astype(int))
    ui = pd.Index([str(s) for s in subjects]).get_indexer(df["subject"].astype(str))
    keep = (si >= 0) & (ui >= 0)
    yt, yp = df["y_true"].to_numpy(int)[keep], df["y_pred"].to_numpy(int)[keep]
    np.add.at(out, (si[keep], ui[keep], yt, yp), 1)
    return out


def uf1_of(cms: np.ndarray) -> np.ndarray:
    """UF1 of a stack of confusion matrices (..., K, K), counts or weights (``bench.evaluation.metrics``'
    convention: a class absent from both truth and predictions leaves the mean)."""
    cms = np.asarray(cms, dtype=np.float64)
    tp = np.diagonal(cms, axis1=-2, axis2=-1)
    den = cms.sum(axis=-1) + cms.sum(axis=-2)
    ok = den > 0
    f1 = np.divide(2 * tp, den, out=np.zeros_like(tp), where=ok)
    return f1.sum(axis=-1) / np.maximum(ok.sum(axis=-1), 1)


# ---------------------------------------------------------------- the posterior


def _weights(rng: np.random.Generator, n: int, n_boot: int, random: bool) -> np.ndarray:
    """(n_boot, n) Dirichlet(1, …, 1) weights, or equal ones when ``random`` is off."""
    if not random or n == 1:
        return np.full((n_boot, n), 1.0 / n)
    return rng.dirichlet(np.ones(n), size=n_boot)


def posterior(cms_a: np.ndarray, cms_b: np.ndarray, n_boot: int = 2000, seed: int = 0, *,
              subjects: bool = True, seeds: bool = True) -> np.ndarray:
    """Draws of ΔUF1 (a − b) by the paired Bayesian bootstrap; ``cms_*``: (n_seeds, S, K, K) counts.

    ``subjects=False`` keeps every subject at equal weight (the seed part of the variance);
    ``seeds=False`` every seed (the subject part). A seed a cell has no prediction in must not be passed.
    """
    a, b = np.asarray(cms_a, dtype=np.float64), np.asarray(cms_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"posterior expects two (n_seeds, S, K, K) count arrays of one shape, got {a.shape}, {b.shape}")
    n_seeds, n_subj = a.shape[:2]
    rng = np.random.default_rng(seed)
    w = _weights(rng, n_subj, n_boot, subjects)  # (B, S)
    v = _weights(rng, n_seeds, n_boot, seeds)  # (B, n_seeds)
    pooled_a = np.einsum("bs,nskl->bnkl", w, a, optimize=True)
    pooled_b = np.einsum("bs,nskl->bnkl", w, b, optimize=True)
    return ((uf1_of(pooled_a) - uf1_of(pooled_b)) * v).sum(axis=1)


def probabilities(draws: np.ndarray, rope: float) -> tuple[float, float, float]:
    """(P(better), P(equivalent), P(worse)) of ΔUF1 draws against the ROPE."""
    d = np.asarray(draws, dtype=float)
    return float(np.mean(d > rope)), float(np.mean(np.abs(d) <= rope)), float(np.mean(d < -rope))


def decide(p_better: float, p_equivalent: float, p_worse: float, decide_at: float) -> str:
    """The verdict of the three probabilities (``Rule.words``)."""
    for p, verdict in ((p_better, BETTER), (p_worse, WORSE), (p_equivalent, EQUIVALENT)):
        if p >= decide_at:
            return verdict
    return UNDECIDED


def _normal_probs(mu: float, sd: float, rope: float) -> tuple[float, float, float]:
    if sd <= 0:
        return float(mu > rope), float(abs(mu) <= rope), float(mu < -rope)
    cdf = [0.5 * (1 + math.erf((x - mu) / (sd * math.sqrt(2)))) for x in (-rope, rope)]
    return 1 - cdf[1], cdf[1] - cdf[0], cdf[0]


def _projected(mu: float, var_subj: float, var_seed: float, n: int, n_new: float, rule: Rule) -> bool:
    """Whether the normal projection of the posterior with ``n_new`` seeds decides (seed part ∝ 1/n)."""
    seed_part = 0.0 if math.isinf(n_new) else var_seed * n / n_new
    p_b, p_e, p_w = _normal_probs(mu, math.sqrt(max(var_subj + seed_part, 0.0)), rule.rope)
    return decide(p_b, p_e, p_w, rule.decide_at) != UNDECIDED


def what_decides(mu: float, var_subj: float, var_seed: float | None, n: int, rule: Rule) -> tuple[str, int | None, str]:
    """(needs, seeds_wanted, words) for an undecided comparison (the module docstring's projection)."""
    if var_seed is None:
        return SEEDS, None, ("more seeds: one seed ran, so the seed part of the variance was not measured "
                             "and the subject bootstrap alone does not decide")
    for n_new in range(n + 1, rule.max_seeds + 1):
        if _projected(mu, var_subj, var_seed, n, n_new, rule):
            return SEEDS, n_new, (f"more seeds: about {n_new} would decide it (the seed part of the variance, "
                                  f"{_share(var_seed, var_subj)} of it, shrinks with each seed)")
    if _projected(mu, var_subj, var_seed, n, math.inf, rule):
        return SEEDS, None, (f"more seeds than max_seeds={rule.max_seeds}: the seed part of the variance "
                             f"({_share(var_seed, var_subj)}) keeps it undecided up to that many")
    return SUBJECTS, None, (f"more subjects than the data have: the subject part of the variance "
                            f"({_share(var_subj, var_seed)}) keeps it undecided however many seeds run")


def _share(part: float, other: float) -> str:
    total = part + other
    return f"{part / total:.0%}" if total > 0 else "0%"


# ---------------------------------------------------------------- one comparison


def compare(a: pd.DataFrame, b: pd.DataFrame, n_classes: int, rule: Rule = Rule()) -> Comparison | None:
    """Cell ``a`` against cell ``b`` (predictions with ``COLUMNS``), paired on their common seeds and
    on the union of their subjects; None when no seed ran both."""
    seeds = tuple(sorted(set(a["seed"].astype(int)) & set(b["seed"].astype(int))))
    if not seeds:
        return None
    subjects = sorted(set(a["subject"].astype(str)) | set(b["subject"].astype(str)))
    ca, cb = (subject_counts(x, n_classes, subjects, seeds) for x in (a, b))
    draws = posterior(ca, cb, rule.n_boot, rule.seed)
    per_seed = uf1_of(ca.sum(axis=1)) - uf1_of(cb.sum(axis=1))
    p_b, p_e, p_w = probabilities(draws, rule.rope)
    verdict = decide(p_b, p_e, p_w, rule.decide_at)
    q = (1 - rule.ci_level) / 2
    lo, hi = np.quantile(draws, [q, 1 - q])
    out = Comparison(verdict, float(per_seed.mean()), float(lo), float(hi), p_b, p_e, p_w, len(seeds), seeds,
                     len(subjects), "", None, "")
    out.needs, out.seeds_wanted, out.reason = _reason(out, ca, cb, rule)
    return out


def _reason(c: Comparison, ca: np.ndarray, cb: np.ndarray, rule: Rule) -> tuple[str, int | None, str]:
    p = {BETTER: c.p_better, WORSE: c.p_worse, EQUIVALENT: c.p_equivalent}
    if c.verdict != UNDECIDED:
        words = f"P({_short(c.verdict)}) {prob(p[c.verdict])} ≥ {rule.decide_at:g}"
        if c.n_seeds == 1:
            words += "; one seed: decided by the subject bootstrap alone (seed variance not measured)"
        return "", None, words
    var_subj = float(np.var(posterior(ca, cb, rule.n_boot, rule.seed + 1, seeds=False)))
    var_seed = (float(np.var(posterior(ca, cb, rule.n_boot, rule.seed + 2, subjects=False)))
                if c.n_seeds > 1 else None)
    needs, wanted, words = what_decides(c.duf1, var_subj, var_seed, c.n_seeds, rule)
    top = max(p, key=p.get)
    return needs, wanted, f"largest P({_short(top)}) {prob(p[top])} < {rule.decide_at:g}; {words}"


def _short(verdict: str) -> str:
    return "equivalent" if verdict == EQUIVALENT else verdict


def prob(p: float) -> str:
    """A probability in two decimals, rounded down, so that one below ``decide_at`` never prints as it."""
    return f"{math.floor(p * 100 + 1e-9) / 100:.2f}"


# ---------------------------------------------------------------- every comparison of a run


def baseline_label(labels: list[str], baseline: str, options: dict[str, str] | None = None) -> tuple[str | None, str]:
    """The representation label that is the baseline, and words explaining a failure to find one.

    ``baseline`` matches a label exactly, else the one label whose option (``options``: label ->
    ``p_representation``) it names.
    """
    if baseline in labels:
        return baseline, ""
    named = [lab for lab in labels if (options or {}).get(lab) == baseline]
    if len(named) == 1:
        return named[0], ""
    if named:
        return None, f"the baseline {baseline!r} is ambiguous: several cells use it ({', '.join(named)})"
    return None, f"the baseline representation {baseline!r} is not in this study"


RESULT_COLUMNS = ["source", "model", "representation", "baseline", "verdict", "duf1", "duf1_lo", "duf1_hi",
                  "p_better", "p_equivalent", "p_worse", "n_seeds", "seeds", "n_subjects", "needs", "seeds_wanted",
                  "reason"]


def verdicts(predictions: pd.DataFrame, n_classes: int, baseline: str, *, by: Sequence[str] | None = None,
             options: dict[str, str] | None = None, per_source: bool = True, rule: Rule = Rule()) -> pd.DataFrame:
    """Every representation against ``baseline`` with the same model: one row per comparison.

    ``predictions``: the predictions table (``COLUMNS``, plus ``source_dataset`` for a composite). ``by``:
    the columns within which cells are compared (default: ``dataset`` and ``flow``, those present).
    ``per_source``: for a group whose predictions come from several source databases, also one row per
    source database (``source``; ``""`` is every database pooled). Columns: ``by``, ``RESULT_COLUMNS``.
    A group without the baseline, or a model without a baseline cell, has no row.
    """
    by = [c for c in (by if by is not None else ("dataset", "flow")) if c in predictions.columns]
    rows = []
    groups = predictions.groupby(by, sort=False) if by else [((), predictions)]
    for key, grp in groups:
        key = key if isinstance(key, tuple) else (key,)
        reps = list(dict.fromkeys(grp["representation"].astype(str)))
        base, _ = baseline_label(reps, baseline, options)
        if base is None:
            continue
        for source, part in _sources(grp, per_source):
            rows += [{**dict(zip(by, key)), "source": source, **r} for r in _family(part, base, n_classes, rule)]
    return pd.DataFrame(rows, columns=[*by, *RESULT_COLUMNS])


def _sources(grp: pd.DataFrame, per_source: bool) -> list[tuple[str, pd.DataFrame]]:
    out = [(FULL, grp)]
    if per_source and "source_dataset" in grp.columns and grp["source_dataset"].nunique() > 1:
        src = grp["source_dataset"].astype(str)
        out += [(s, grp[src == s]) for s in dict.fromkeys(src)]
    return out


def _family(grp: pd.DataFrame, base: str, n_classes: int, rule: Rule) -> list[dict]:
    rows = []
    for model, mgrp in grp.groupby(grp["model"].astype(str), sort=False):
        rep = mgrp["representation"].astype(str)
        if base not in set(rep):
            continue
        for other in dict.fromkeys(rep):
            if other == base:
                continue
            c = compare(mgrp[rep == other], mgrp[rep == base], n_classes, rule)
            if c is not None:
                rows.append(row_of(c, model=model, representation=other, baseline=base))
    return rows


def row_of(c: Comparison, **keys) -> dict:
    """A comparison as a table row (``RESULT_COLUMNS`` less ``source``)."""
    return {**keys, "verdict": c.verdict, "duf1": c.duf1, "duf1_lo": c.lo, "duf1_hi": c.hi,
            "p_better": c.p_better, "p_equivalent": c.p_equivalent, "p_worse": c.p_worse, "n_seeds": c.n_seeds,
            "seeds": ";".join(map(str, c.seeds)), "n_subjects": c.n_subjects, "needs": c.needs,
            "seeds_wanted": c.seeds_wanted, "reason": c.reason}
