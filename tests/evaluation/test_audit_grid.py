"""The leakage audit's configuration shortcut, class-dropping metrics and stacked published protocols
(bench/evaluation/grid_audit.py, bench/evaluation/audit.py) against hand computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.evaluation.audit import AuditError, class_dropping_fold, class_dropping_scores, shortcut_scores, subject_best_epoch
from bench.evaluation.grid_audit import (
    config_choice, families, inner_frame, k_steps, protocol_scores,
)
from tests.evaluation.test_audit import frames

BASE = {"study": "t", "dataset": "synthetic", "flow": "tvl1", "model": "ststnet"}
TRUTH = {"A": [0, 1], "B": [0, 1]}
# three configurations of one family (representation cof, three θ): per fold its test predictions
PREDS = {"cof_a": {"A": [0, 1], "B": [1, 0]},   # pooled [0,1,1,0]: UF1 1/2, UAR 1/2
         "cof_b": {"A": [0, 0], "B": [0, 1]},   # pooled [0,0,0,1]: F1 4/5, 2/3 -> UF1 11/15, UAR 3/4
         "cof_c": {"A": [1, 1], "B": [1, 1]}}   # pooled [1,1,1,1]: UF1 1/3, UAR 1/2
# inner-validation UF1 per (configuration, fold): A ties cof_a and cof_c (the first wins), B picks cof_a
INNER = {("cof_a", "A"): 0.9, ("cof_b", "A"): 0.5, ("cof_c", "A"): 0.9,
         ("cof_a", "B"): 0.8, ("cof_b", "B"): 0.3, ("cof_c", "B"): 0.2}


def records(preds=PREDS, inner=INNER, seed=0):
    """Hand-made unit records: one per configuration and fold, with its inner score."""
    out = []
    for rep, folds in preds.items():
        for fold, yp in folds.items():
            row = {**BASE, "representation": rep, "seed": seed, "fold": fold, "status": "ok",
                   "representation_name": "cof", "model_name": "ststnet"}
            p = [{**BASE, "representation": rep, "seed": seed, "fold": fold, "subject": fold, "clip": f"c{j}",
                  "source_dataset": "synthetic", "y_true": y, "y_pred": v} for j, (y, v) in enumerate(zip(TRUTH[fold], yp))]
            audit = {"epochs": [0], "y_pred": [yp], "seconds": 0.0}
            if (rep, fold) in inner:
                audit["inner"] = {"uf1": inner[(rep, fold)], "uar": 0.5, "n_val": 4, "validation": "hand-made"}
            out.append({"row": row, "predictions": p, "audit": audit})
    return out


def tables(recs):
    results = pd.DataFrame([r["row"] for r in recs])
    preds = pd.DataFrame([p for r in recs for p in r["predictions"]])
    return results, preds, inner_frame(recs)


def test_best_of_k_and_its_honest_counterpart_pick_what_a_hand_pick_does():
    results, preds, inner = tables(records())
    assert len(inner) == 6 and set(inner["validation"]) == {"hand-made"}
    fam = families(results)
    assert len(set(fam.values())) == 1  # one family: three labels of one representation and model
    choices, curve = config_choice(preds, inner, fam, 2)
    r = choices.iloc[0]
    assert r["K"] == 3 and r["leaky_config"][2] == "cof_b"  # the best pooled test UF1
    assert r["uf1_leaky_best_of_k"] == pytest.approx(11 / 15) and r["uar_leaky_best_of_k"] == pytest.approx(3 / 4)
    # honest: fold A -> cof_a (tie with cof_c: the first), fold B -> cof_a: pooled = cof_a = 1/2
    assert r["uf1_inner_pick"] == pytest.approx(1 / 2) and r["inflation"] == pytest.approx(11 / 15 - 1 / 2)
    assert r["mean_uf1"] == pytest.approx((1 / 2 + 11 / 15 + 1 / 3) / 3)
    c = curve.set_index("k")
    assert c.index.tolist() == [1, 2, 3] and c.loc[1, "n_subsets"] == 3 and c.loc[2, "n_subsets"] == 3
    assert c.loc[1, "inflation"] == 0 and c.loc[1, "inflation_vs_random"] == 0  # k = 1: no choice, no inflation
    # k = 2: {a,b}: leaky b 11/15, honest a 1/2; {a,c}: a vs a; {b,c}: leaky b, honest A->c B->b = 11/15
    assert c.loc[2, "inflation"] == pytest.approx((11 / 15 - 1 / 2) / 3)
    assert c.loc[3, "inflation"] == pytest.approx(11 / 15 - 1 / 2)


def test_one_configuration_is_no_grid_and_a_missing_inner_score_is_no_honest_pick():
    results, preds, inner = tables(records({"cof_a": PREDS["cof_a"]}))
    choices, curve = config_choice(preds, inner, families(results), 2)
    assert choices.empty and curve.empty  # K = 1: nothing chosen
    partial = {k: v for k, v in INNER.items() if k != ("cof_b", "B")}
    results, preds, inner = tables(records(inner=partial))
    r = config_choice(preds, inner, families(results), 2)[0].iloc[0]
    assert r["uf1_leaky_best_of_k"] == pytest.approx(11 / 15) and np.isnan(r["uf1_inner_pick"])


def test_k_steps_double_then_end_at_k():
    assert k_steps(1) == [1] and k_steps(8) == [1, 2, 4, 8] and k_steps(36) == [1, 2, 4, 8, 16, 32, 36]


def test_class_dropping_fold_against_hand_computations():
    # class 2 absent from the fold: skipped. class 0: TP 1, FN 1 -> F1 2/3, recall 1/2; class 1: TP 1, FP 1 -> 2/3, 1
    assert class_dropping_fold([0, 0, 1], [0, 1, 1]) == pytest.approx((2 / 3, 3 / 4))
    # class 2 predicted but absent from the truth: F1 0, recall 0/0 = NaN -> the fold's UAR is NaN
    uf1, uar = class_dropping_fold([0, 0], [0, 2])
    assert uf1 == pytest.approx((2 / 3 + 0) / 2) and np.isnan(uar)
    # one class only, all right: every class is skipped (a 1x1 matrix) -> NaN; MER-CLIP returns 1, 1
    assert all(np.isnan(v) for v in class_dropping_fold([1, 1], [1, 1]))
    assert class_dropping_fold([1, 1], [1, 1], one_class_is_perfect=True) == (1.0, 1.0)
    # one class in the truth, another predicted too: not MER-CLIP's special case
    uf1, uar = class_dropping_fold([1, 1], [1, 0], one_class_is_perfect=True)
    assert uf1 == pytest.approx(1 / 3) and np.isnan(uar)
    folds = pd.DataFrame({"fold": ["A"] * 3 + ["B"] * 2, "y_true": [0, 0, 1, 1, 1], "y_pred": [0, 1, 1, 1, 1]})
    cd = class_dropping_scores(folds)  # fold B is NaN: left out of the average
    assert (cd["uf1"], cd["uar"], cd["n_nan_uf1"]) == (pytest.approx(2 / 3), pytest.approx(3 / 4), 1)
    mc = class_dropping_scores(folds, one_class_is_perfect=True)
    assert (mc["uf1"], mc["uar"]) == (pytest.approx((2 / 3 + 1) / 2), pytest.approx((3 / 4 + 1) / 2))


def test_the_class_dropping_shortcuts_are_columns_of_the_audit_table():
    truth = {"A": [0, 0, 1], "B": [1, 1]}
    audit, honest = frames(truth, {"A": [[0, 1, 1]], "B": [[1, 1]]})
    row = shortcut_scores(audit, honest, 3).iloc[0]
    assert row["uf1_leaky_class_dropping"] == pytest.approx(2 / 3)
    assert row["uar_leaky_class_dropping_one_class"] == pytest.approx(7 / 8)
    assert row["uf1_leaky_class_dropping_inflation"] == pytest.approx(2 / 3 - row["uf1"])


def test_stacked_protocols_equal_their_rules_applied_in_turn():
    truth = {"A": [0, 1], "B": [1, 2], "C": [2, 0]}
    e1 = {"A": [[0, 0], [0, 1], [1, 1]], "B": [[1, 2], [0, 2], [2, 2]], "C": [[2, 1], [2, 1], [2, 1]]}
    e2 = {s: [[(p + 1) % 3 for p in ep] for ep in eps] for s, eps in e1.items()}
    a1, h1 = frames(truth, e1, representation="cof_a")
    a2, h2 = frames(truth, e2, representation="cof_b")
    audit, honest = pd.concat([a1, a2]), pd.concat([h1, h2])
    fam = {(*(BASE[k] for k in ("dataset", "flow")), r, "ststnet"): ("synthetic", "tvl1", "cof", "ststnet")
           for r in ("cof_a", "cof_b")}
    specs = {"HTNet": {"epoch": "subject_best", "configs": "one", "score": "pooled", "uar_as": "recall"},
             "CausalNet": {"epoch": "subject_best", "configs": "best_of_k", "score": "pooled", "uar_as": "recall"},
             "plain": {"epoch": "last", "configs": "one", "score": "pooled", "uar_as": "recall"}}
    got = protocol_scores(audit, honest, specs, fam, 3).set_index(["protocol", "representation"])
    alone = {r: subject_best_epoch(a, 3)[0] for r, a in (("cof_a", a1), ("cof_b", a2))}
    for r in ("cof_a", "cof_b"):
        assert got.loc[("HTNet", r), "uf1"] == pytest.approx(alone[r]["uf1"])
        assert got.loc[("plain", r), "d_uf1"] == 0  # no shortcut: the honest headline
        best = max(alone.values(), key=lambda s: (s["uf1"], s["uar"]))
        assert got.loc[("CausalNet", r), "uf1"] == pytest.approx(best["uf1"]) and got.loc[("CausalNet", r), "K"] == 2
        assert got.loc[("CausalNet", r), "d_uf1"] == pytest.approx(best["uf1"] - got.loc[("CausalNet", r), "honest_uf1"])
    with pytest.raises(AuditError, match="protocol 'x': epoch must be one of"):
        protocol_scores(audit, honest, {"x": {"epoch": "best"}}, fam, 3)


def test_the_shipped_protocol_presets_are_valid():
    from bench.evaluation.grid_audit import check_protocol
    from bench.report.sections.shortcuts import load_protocols

    presets = load_protocols()
    assert {"HTNet", "CausalNet", "MER-CLIP"} <= {p["method"] for p in presets}
    for p in presets:
        check_protocol(p["method"], p)
        assert p["code"]
