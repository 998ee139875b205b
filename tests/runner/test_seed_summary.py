"""The summary printed at the end of a run: mean ± sd over seeds per cell, per-source UF1/UAR for a composite."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from bench.run import print_summary, summary_table


def _preds(correct: dict[tuple[str, int], list[bool]], sources=None) -> pd.DataFrame:
    """Two-class predictions of one dataset/flow: (representation, seed) -> right/wrong per clip."""
    rows = []
    for (rep, seed), right in correct.items():
        for i, ok in enumerate(right):
            y = i % 2
            rows.append(dict(study="t", dataset="d", flow="tvl1", representation=rep, model="m", seed=seed,
                             fold=f"s{i // 2}", subject=f"s{i // 2}", clip=f"c{i}",
                             source_dataset=sources[i % len(sources)] if sources else "d",
                             y_true=y, y_pred=y if ok else 1 - y))
    return pd.DataFrame(rows)


def test_summary_is_mean_and_sd_over_seeds():
    # rep a: seed 0 all 4 right (acc 1), seed 1 half right (acc 1/2), seed 2 3 of 4 (acc 3/4)
    p = _preds({("a", 0): [True] * 4, ("a", 1): [True, True, False, False], ("a", 2): [True, True, True, False],
                ("b", 0): [False, True, True, True]})
    tab = summary_table(p, 2).set_index("representation")
    assert tab.loc["a", "seeds"] == 3 and tab.loc["a", "n"] == 4
    assert tab.loc["a", "ACC"] == pytest.approx(0.75) and tab.loc["a", "ACC_sd"] == pytest.approx(0.25)  # sd(1, .5, .75)
    # UF1 per seed: 1; 1/2 (each class F1 = 1/2); seed 2: y = 0,1,0,1, pred = 0,1,0,0 -> F1 0.8 and 2/3
    uf1 = [1.0, 0.5, (0.8 + 2 / 3) / 2]
    assert tab.loc["a", "UF1"] == pytest.approx(np.mean(uf1)) and tab.loc["a", "UF1_sd"] == pytest.approx(np.std(uf1, ddof=1))
    assert tab.loc["b", "seeds"] == 1 and np.isnan(tab.loc["b", "UF1_sd"])
    assert not [c for c in tab.columns if c.startswith("UF1_") and c != "UF1_sd"]  # one source: no breakdown

    out = io.StringIO()
    print_summary(None, p, 2, out=out)
    text = out.getvalue()
    assert "mean ± sd over seeds" in text and "0.750 ± 0.250" in text
    assert "seed variance was not measured for cells with seeds = 1" in text


def test_one_seed_summary_says_seed_variance_was_not_measured():
    p = _preds({("a", 0): [True, False, True, True], ("b", 0): [True] * 4})
    out = io.StringIO()
    print_summary(None, p, 2, out=out)
    text = out.getvalue()
    assert "Pooled over all folds" in text and "±" not in text
    assert "seed variance was not measured for every cell (one seed)" in text


def test_composite_summary_adds_full_and_per_source_columns():
    right = {("a", 0): [True, True, False, True, True, True, False, False],
             ("a", 1): [True] * 8}
    p = _preds(right, sources=["casme2", "samm"])  # clips alternate between the two sources
    tab = summary_table(p, 2).iloc[0]
    # seed 0: casme2 clips 0,2,4,6 (all y = 0) right, wrong, right, wrong -> acc 1/2; samm clips 1,3,5,7 -> 3/4
    # casme2 seed 0: y all 0, preds 0,1,0,1 -> class 0 F1 = 2*2/(4+0+2) = 2/3, class 1 (predicted, absent) F1 0
    assert tab["UAR_casme2"] == pytest.approx((0.5 + 1.0) / 2)  # recall of class 0 only (class 1 absent)
    assert tab["UF1_casme2"] == pytest.approx((1 / 3 + 1.0) / 2)
    assert tab["UF1_casme2_sd"] == pytest.approx(np.std([1 / 3, 1.0], ddof=1))
    assert {"UF1_samm", "UAR_samm", "UF1", "UAR", "ACC"} <= set(tab.index)
    out = io.StringIO()
    print_summary(None, p, 2, out=out)
    head = out.getvalue().splitlines()[2]
    for col in ("UF1 full", "UAR full", "UF1 casme2", "UAR casme2", "UF1 samm", "UAR samm"):
        assert col in head
