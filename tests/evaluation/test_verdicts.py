"""The verdict rule (bench.evaluation.verdicts) against hand-computed cases.

The cells are built so that their pooled UF1 is known by hand: every subject has ``per_class`` clips of
each of 3 classes, and ``m`` of each class are predicted as the next class. Then each class has
TP = n − m, FN = FP = m, so F1 = 1 − m / n per class and UF1 = 1 − m / n; pooled over subjects with
any weights, m is their weighted mean, so ΔUF1 of two such cells is linear in the subject weights.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.evaluation import metrics
from bench.evaluation import verdicts as V


def cell(wrong, rep: str, per_class: int = 20, model: str = "m") -> pd.DataFrame:
    """Predictions of one cell; ``wrong[seed][subject]``: clips of each class predicted as the next one."""
    rows = []
    for seed, subjects in enumerate(wrong):
        for s, m in enumerate(subjects):
            for c in range(3):
                for j in range(per_class):
                    rows.append(dict(dataset="synthetic", flow="farneback", representation=rep, model=model, seed=seed,
                                     subject=f"s{s:02d}", clip=f"s{s:02d}_{c}_{j}", y_true=c,
                                     y_pred=(c + 1) % 3 if j < m else c, source_dataset="synthetic"))
    return pd.DataFrame(rows)


def test_pooled_uf1_of_the_construction_is_one_minus_m_over_n():
    df = cell([[5, 5, 5]], "x")  # 5 of 20 wrong per class: UF1 = 0.75
    assert metrics.pooled_scores(df["y_true"], df["y_pred"], 3)["uf1"] == pytest.approx(0.75)


def test_a_large_consistent_loss_is_worse_never_equivalent():
    base = cell([[0] * 8] * 3, "base")  # every clip right: UF1 1
    rep = cell([[10] * 8] * 3, "rep")  # half of every class wrong in every subject and seed: UF1 0.5
    c = V.compare(rep, base, 3)
    # every subject has the same counts, so every weighting pools to UF1 0.5: every draw is exactly -0.5
    assert c.verdict == V.WORSE and c.duf1 == pytest.approx(-0.5)
    assert (c.lo, c.hi) == pytest.approx((-0.5, -0.5)) and c.p_worse == 1.0 and c.p_equivalent == 0.0
    assert c.needs == "" and c.n_seeds == 3 and c.n_subjects == 8 and "P(worse) 1.00 ≥ 0.95" in c.reason
    # however wide the ROPE short of the loss itself, a loss this size is never "equivalent"
    for rope in (0.01, 0.1, 0.3, 0.49):
        assert V.compare(rep, base, 3, V.Rule(rope=rope)).verdict == V.WORSE


def test_two_near_identical_cells_are_practically_equivalent():
    wrong = [[4] * 12] * 3
    base = cell(wrong, "base")
    rep = cell([[5] + [4] * 11, [4] * 12, [4] * 12], "rep")  # one more wrong clip per class, one subject, one seed
    c = V.compare(rep, base, 3)
    # seed 0: the mean m rises from 4 to 4 + 1/12, so UF1 falls by 1 / (12 * 20); the other seeds are equal
    assert c.duf1 == pytest.approx(-(1 / 240) / 3)
    assert c.verdict == V.EQUIVALENT and c.p_equivalent >= 0.95 and c.p_better == 0.0
    same = V.compare(base.assign(representation="copy"), base, 3)  # the same predictions: every draw is 0
    assert same.verdict == V.EQUIVALENT and same.p_equivalent == 1.0 and (same.lo, same.hi) == (0.0, 0.0)


# Half the subjects gain 0.2, half lose 0.15 (m 6 and 13 against 10 of 20): ΔUF1 +0.025 pooled, but which
# subjects the data happened to have moves it by about ±0.06 (sd of the weighted mean: 0.175 / sqrt(9)).
NOISY = [6, 13] * 4


def test_a_noisy_small_difference_is_undecided_and_needs_more_subjects():
    base, rep = cell([[10] * 8] * 3, "base"), cell([NOISY] * 3, "rep")
    c = V.compare(rep, base, 3)
    assert c.duf1 == pytest.approx(0.025) and c.lo < -0.01 and c.hi > 0.01
    assert c.verdict == V.UNDECIDED and max(c.p_better, c.p_equivalent, c.p_worse) < 0.95
    # the seeds are identical, so no seed variance: more seeds cannot decide it, more subjects could
    assert c.needs == V.SUBJECTS and "more subjects than the data have" in c.reason


def test_one_seed_undecided_asks_for_seeds_and_one_seed_can_still_be_decided():
    c = V.compare(cell([NOISY], "rep"), cell([[10] * 8], "base"), 3)
    assert c.verdict == V.UNDECIDED and c.needs == V.SEEDS and "one seed ran" in c.reason
    loss = V.compare(cell([[10] * 8], "rep"), cell([[0] * 8], "base"), 3)
    assert loss.verdict == V.WORSE and loss.n_seeds == 1 and "decided by the subject bootstrap alone" in loss.reason


def test_seed_noise_asks_for_more_seeds_with_an_estimate():
    # Every subject alike within a seed (no subject variance); the seeds differ: +0.1, -0.05, +0.05.
    base = cell([[10] * 6] * 3, "base")
    rep = cell([[8] * 6, [11] * 6, [9] * 6], "rep")
    c = V.compare(rep, base, 3)
    assert c.duf1 == pytest.approx(0.1 / 3) and c.verdict == V.UNDECIDED and c.needs == V.SEEDS
    # normal projection: the seed part of the variance (pop. var 0.0039 / 4 with 3 seeds) scaled by 3 / n
    # falls below (0.0233 / 1.645)^2 at n = 20, not by 10: more seeds than the cap, then an estimate
    assert c.seeds_wanted is None and "more seeds than max_seeds=10" in c.reason
    wide = V.compare(rep, base, 3, V.Rule(max_seeds=40))
    assert wide.needs == V.SEEDS and 15 <= wide.seeds_wanted <= 25 and f"about {wide.seeds_wanted}" in wide.reason


def test_the_decision_rule_on_given_probabilities():
    assert V.decide(0.96, 0.03, 0.01, 0.95) == V.BETTER
    assert V.decide(0.01, 0.03, 0.96, 0.95) == V.WORSE
    assert V.decide(0.02, 0.97, 0.01, 0.95) == V.EQUIVALENT
    assert V.decide(0.94, 0.06, 0.0, 0.95) == V.UNDECIDED
    assert V.probabilities(np.array([-0.02, -0.005, 0.0, 0.01, 0.03]), 0.01) == pytest.approx((0.2, 0.6, 0.2))
    assert V.prob(0.9499) == "0.94"  # never printed as the level it missed
    for bad in (dict(rope=-0.1), dict(decide_at=0.5), dict(decide_at=1.0), dict(n_boot=0), dict(max_seeds=0)):
        with pytest.raises(ValueError):
            V.Rule(**bad)


def test_verdicts_table_one_row_per_comparison_and_per_source_database():
    base = cell([[0] * 8] * 2, "single_phase")
    loss = cell([[10] * 8] * 2, "cof")
    same = cell([[0] * 8] * 2, "two_phase")
    preds = pd.concat([base, loss, same, base.assign(model="other")], ignore_index=True)
    preds["source_dataset"] = np.where(preds["subject"] < "s04", "casme2", "samm")
    t = V.verdicts(preds, 3, "single_phase")
    assert list(t.columns) == ["dataset", "flow", *V.RESULT_COLUMNS]
    full = t[t["source"] == V.FULL].set_index("representation")
    assert list(full.index) == ["cof", "two_phase"] and set(full["model"]) == {"m"}  # "other" has no other cell
    assert full.loc["cof", "verdict"] == V.WORSE and full.loc["two_phase", "verdict"] == V.EQUIVALENT
    per = t[t["source"] != V.FULL]
    assert sorted(per["source"].unique()) == ["casme2", "samm"] and (per["n_subjects"] == 4).all()
    assert V.verdicts(preds, 3, "nope").empty  # no such baseline: no comparison
    by_option = V.verdicts(preds, 3, "sp", options={"single_phase": "sp"}, per_source=False)
    assert len(by_option) == 2 and (by_option["baseline"] == "single_phase").all()


def test_verdicts_are_fast_enough_for_the_end_of_a_run():
    import time

    rng = np.random.default_rng(0)
    parts = [cell([list(rng.integers(0, 10, 12)) for _ in range(3)], rep, per_class=4, model=model)
             for rep in ("a", "b", "c", "d") for model in ("x", "y", "z")]
    t0 = time.perf_counter()
    t = V.verdicts(pd.concat(parts, ignore_index=True), 3, "a")
    assert len(t) == 9 and time.perf_counter() - t0 < 5.0  # ~0.3 s on one idle core
