"""Seeds as a source of variance: McNemar and the subject-and-seed bootstrap, against hand-computed cases
and brute-force reimplementations (the verdict rule: tests/evaluation/test_verdicts.py)."""

from __future__ import annotations

import time
from math import comb

import numpy as np
import pandas as pd
import pytest

from bench.evaluation import metrics
from bench.report import stats


@pytest.mark.parametrize("b, c", [(1, 6), (0, 5), (2, 9), (3, 3), (6, 1), (0, 1)])
def test_mcnemar_exact_is_the_two_sided_binomial_on_discordant_pairs(b, c):
    n, k = b + c, min(b, c)
    # two-sided exact: twice the smaller tail of Binomial(n, 1/2), capped at 1
    hand = min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n)
    assert stats.mcnemar_exact(b, c) == pytest.approx(hand, abs=1e-12)


def test_mcnemar_hand_values_and_bad_input():
    assert stats.mcnemar_exact(1, 6) == pytest.approx(0.125)  # 2 (C(7,0) + C(7,1)) / 2^7 = 16 / 128
    assert stats.mcnemar_exact(0, 5) == pytest.approx(0.0625)  # 2 / 2^5
    assert stats.mcnemar_exact(2, 9) == pytest.approx(134 / 2048)  # 2 (1 + 11 + 55) / 2^11
    assert stats.mcnemar_exact(0, 0) == 1.0  # no discordant clip: no evidence either way
    for bad in ((-1, 2), (1.5, 2), (True, 2)):
        with pytest.raises(ValueError, match="non-negative integer"):
            stats.mcnemar_exact(*bad)


def _clips(right: list[bool], truth: list[int], k: int = 3) -> pd.DataFrame:
    return pd.DataFrame(dict(subject=[f"s{i // 2}" for i in range(len(right))], clip=[f"c{i}" for i in range(len(right))],
                             y_true=truth, y_pred=[t if r else (t + 1) % k for t, r in zip(truth, right)]))


def test_mcnemar_of_seed_pairs_clips_not_rows():
    truth = [0, 1, 2, 0, 1, 2, 0, 1]
    base = _clips([True, True, False, False, True, True, False, True], truth)
    other = _clips([True, False, True, True, True, True, True, False], truth)
    # b: base right & other wrong = clips 1, 7; c: other right & base wrong = clips 2, 3, 6
    t = stats.mcnemar_of_seed(base, other.sample(frac=1, random_state=3), seed=4)  # row order must not matter
    assert (t.seed, t.n_clips, t.b, t.c) == (4, 8, 2, 3)
    assert t.p == pytest.approx(1.0)  # 2 (1 + 5 + 10) / 32 = 1
    # a clip only one cell predicted (a failed fold) is left out of the pairs
    t = stats.mcnemar_of_seed(base, other.iloc[:-1], seed=0)
    assert (t.n_clips, t.b, t.c) == (7, 1, 3)
    wrong = other.assign(y_true=(other["y_true"] + 1) % 3)
    with pytest.raises(ValueError, match="clip s0/c0 has different true labels"):
        stats.mcnemar_of_seed(base, wrong, seed=0)
    with pytest.raises(ValueError, match="predicts clip s0/c0 twice"):
        stats.mcnemar_of_seed(pd.concat([base, base.iloc[:1]]), other, seed=0)


def test_holm_over_mcnemar_family_leaves_out_powerless_tests():
    fam = [stats.McNemar(0, 10, 0, 0, 1.0), stats.McNemar(1, 10, 0, 6, stats.mcnemar_exact(0, 6)),
           stats.McNemar(2, 10, 1, 6, stats.mcnemar_exact(1, 6))]
    stats.apply_holm_mcnemar(fam)
    # family = {0.03125, 0.125}: Holm 2 * 0.03125 = 0.0625, then max(0.0625, 1 * 0.125) = 0.125
    assert [t.p_holm for t in fam] == pytest.approx([1.0, 0.0625, 0.125])


def test_scores_of_matches_the_metric_module_including_degenerate_classes():
    rng = np.random.default_rng(0)
    cms = list(rng.integers(0, 4, size=(200, 4, 4)))
    cms += [np.array([[0, 0, 0], [0, 2, 1], [0, 0, 3]]), np.array([[0, 1, 0], [0, 2, 1], [0, 0, 3]]),
            np.array([[2, 0, 0], [0, 0, 0], [1, 0, 0]])]  # absent class; predicted but absent; never predicted
    for cm in cms:
        if cm.sum() == 0:
            continue
        got, ref = stats.scores_of(cm), metrics.scores_from_confusion(cm)
        for m in stats.METRICS:
            assert float(got[m]) == pytest.approx(ref[m], abs=1e-12)
    with pytest.raises(ValueError, match="empty"):
        stats.scores_of(np.zeros((2, 3, 3), dtype=int))


def test_bootstrap_all_correct_is_the_point_interval_one():
    cms = np.zeros((3, 5, 3, 3), dtype=int)  # 3 seeds, 5 subjects, every prediction right
    for s in range(5):
        cms[:, s] = np.diag([1 + s % 2, 2, s % 3])
    ci = stats.bootstrap_ci(cms, n_boot=300, seed=1)
    assert all(ci[m] == pytest.approx((1.0, 1.0)) for m in stats.METRICS)


def test_bootstrap_resamples_seeds_hand_computed():
    # Every subject alike within a seed, so subject draws change nothing: seed A scores acc 1, seed B 1/2.
    # A replicate averages two seeds drawn with replacement: {A,A} -> 1 (p 1/4), {A,B} -> 3/4 (1/2),
    # {B,B} -> 1/2 (1/4); the 95 % percentile interval is [1/2, 1]. Without seed resampling: 3/4 always.
    a = np.array([[2, 0], [0, 2]])
    b = np.array([[1, 1], [1, 1]])
    cms = np.stack([np.stack([a] * 4), np.stack([b] * 4)])
    ci = stats.bootstrap_ci(cms, n_boot=2000, seed=0)
    assert ci["acc"] == pytest.approx((0.5, 1.0))
    assert stats.bootstrap_ci(cms, n_boot=2000, seed=0, resample_seeds=False)["acc"] == pytest.approx((0.75, 0.75))


def _preds(rng, n_subj=5, per=4, seeds=(0, 1, 2), k=3):
    rows = []
    for seed in seeds:
        p = 0.4 + 0.15 * seed
        for s in range(n_subj):
            for j in range(per):
                y = (s + j) % k
                rows.append(dict(seed=seed, subject=f"s{s}", y_true=y, y_pred=y if rng.random() < p else (y + 1) % k))
    return pd.DataFrame(rows)


def test_bootstrap_matches_a_brute_force_loop():
    """The vectorised bootstrap equals, replicate by replicate, concatenating the drawn subjects' prediction
    rows of each drawn seed, scoring that pool, and averaging over the drawn seeds (same random draws)."""
    df = _preds(np.random.default_rng(5))
    subjects, seeds = sorted(df["subject"].unique()), sorted(df["seed"].unique())
    cms = np.stack([stats.subject_confusions(df[df["seed"] == s], subjects, 3) for s in seeds])
    n_boot, S, N = 40, len(subjects), len(seeds)
    rng = np.random.default_rng(11)  # the draws bootstrap_ci makes: subjects first, then seeds
    subj = rng.multinomial(S, np.full(S, 1 / S), size=n_boot)
    seed_draw = rng.multinomial(N, np.full(N, 1 / N), size=n_boot)
    vals = {m: [] for m in stats.METRICS}
    for sc, dc in zip(subj, seed_draw):
        per_seed = []
        for seed, times in zip(seeds, dc):
            pool = pd.concat([df[(df["seed"] == seed) & (df["subject"] == s)] for s, n in zip(subjects, sc)
                              for _ in range(n)])
            per_seed += [metrics.pooled_scores(pool["y_true"], pool["y_pred"], 3)] * int(times)
        for m in stats.METRICS:
            vals[m].append(np.mean([p[m] for p in per_seed]))
    got = stats.bootstrap_ci(cms, n_boot=n_boot, seed=11)
    for m in stats.METRICS:
        assert got[m] == pytest.approx(tuple(np.quantile(vals[m], [0.025, 0.975])), abs=1e-12)


def test_bootstrap_is_fast_enough_for_a_report():
    rng = np.random.default_rng(0)
    cells = [rng.integers(0, 5, size=(3, 12, 3, 3)) for _ in range(12)]  # 12 cells, 3 seeds, 12 subjects
    t0 = time.perf_counter()
    for c in cells:
        stats.bootstrap_ci(c, n_boot=2000, seed=0)
    assert time.perf_counter() - t0 < 3.0  # ~0.1 s on one idle core; generous for a shared machine


def test_sign_counts():
    assert stats.sign_counts([0.1, -0.2, 0.0, 1e-15, 0.3]) == (2, 1, 2)  # float dust counts as equal


def test_the_old_seed_noise_verdict_is_gone():
    """"Within seed noise" read as equivalence; the verdict is bench.evaluation.verdicts' now (its tests:
    tests/evaluation/test_verdicts.py), and stats keeps only the secondary tests."""
    assert not any(hasattr(stats, name) for name in ("verdict", "VERDICT_RULE", "NOISE", "GAIN", "LOSS"))


def test_per_seed_scores_are_each_seeds_pool():
    df = _preds(np.random.default_rng(2)).assign(model="m")
    got = stats.per_seed_scores(df, 3, ["model"])
    assert list(got["seed"]) == [0, 1, 2] and (got["n"] == 20).all()
    for _, r in got.iterrows():
        g = df[df["seed"] == r["seed"]]
        assert r["uf1"] == pytest.approx(metrics.pooled_scores(g["y_true"], g["y_pred"], 3)["uf1"])


def test_seed_sections_never_print_nan_on_any_pool():
    """The answer, headline, noise floor, verdicts (McNemar) and ranks on arbitrary pools: words, never nan."""
    import tempfile
    from pathlib import Path

    from hypothesis import HealthCheck, given, settings

    from bench.report.build import build_section
    from bench.report.context import ReportContext
    from bench.report.load import RunData
    from bench.report.markdown import render
    from bench.report.sections import answer, headline, noise_floor, ranks, significance
    from bench.report.tables import ReportOptions
    from tests.training.test_no_nan_property import NAN_TEXT, prediction_pools

    @settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(prediction_pools())
    def check(case):
        k, preds = case
        res = preds.drop_duplicates(["dataset", "representation", "model", "seed", "fold"])[
            ["dataset", "representation", "model", "seed", "fold"]].assign(status="ok", error="")
        run = RunData(Path("."), "prop", {}, res.reset_index(drop=True), preds, [f"class{i}" for i in range(k)])
        with tempfile.TemporaryDirectory() as d:
            ctx = ReportContext(run, Path(d), ReportOptions(n_boot=50, pdf=False, dpi=150))
            text = render([b for s in (answer, headline, noise_floor, significance, ranks)
                           for b in build_section(s, ctx)])
        assert not NAN_TEXT.search(text), text

    check()


def test_tied_wilcoxon_enumeration_equals_scipys_permutation_null():
    from scipy import stats as sps

    rng = np.random.default_rng(4)
    checked = 0
    while checked < 8:
        d = rng.integers(-3, 4, size=int(rng.integers(6, 10))) / 4.0
        d = d[d != 0]
        if len(d) < 6 or len(np.unique(np.abs(d))) == len(d):
            continue  # the enumeration is the path for tied |differences|
        t = stats.paired_wilcoxon(d, np.zeros_like(d))
        ref = sps.wilcoxon(d, zero_method="wilcox", method=sps.PermutationMethod(n_resamples=2 ** len(d)))
        assert "permutation" in t.method
        assert t.statistic == pytest.approx(ref.statistic) and t.p == pytest.approx(ref.pvalue, abs=1e-12)
        checked += 1
