"""The leakage audit (bench/evaluation/audit.py): each shortcut against a hand computation, properties over
random small studies, the per-epoch snapshots, the unit-record check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.evaluation.audit import (
    LEAKY, SCORE_COLUMNS, AuditError, audit_frame, mean_precision_uar, overall_best_epoch, shortcut_scores,
    subject_best_epoch, summarize,
)

CELL = {"study": "t", "dataset": "synthetic", "flow": "tvl1", "representation": "single_phase", "model": "ststnet"}


def frames(truth: dict[str, list[int]], epochs: dict[str, list[list[int]]], seed: int = 0, **cell):
    """(audit, honest predictions) of one cell: per subject (one LOSO fold each) its clips' truth and,
    per epoch, its predictions; the honest prediction is the last epoch's (a fixed budget)."""
    audit, honest = [], []
    for subj, ys in truth.items():
        for e, preds in enumerate(epochs[subj]):
            for j, (y, p) in enumerate(zip(ys, preds)):
                audit.append({**CELL, **cell, "seed": seed, "fold": subj, "subject": subj, "clip": f"c{j}",
                              "source_dataset": "synthetic", "epoch": e, "y_true": y, "y_pred": p})
        for j, (y, p) in enumerate(zip(ys, epochs[subj][-1])):
            honest.append({**CELL, **cell, "seed": seed, "fold": subj, "subject": subj, "clip": f"c{j}",
                           "source_dataset": "synthetic", "y_true": y, "y_pred": p})
    return pd.DataFrame(audit), pd.DataFrame(honest)


# Three subjects, two clips each, three epochs (worked out by hand in the comments below).
TRUTH = {"A": [0, 1], "B": [1, 2], "C": [2, 0]}
EPOCHS = {
    "A": [[0, 0], [0, 1], [1, 1]],  # correct 1, 2, 1 -> epoch 1
    "B": [[1, 2], [0, 2], [2, 2]],  # correct 2, 1, 1 -> epoch 0
    "C": [[2, 1], [2, 1], [2, 1]],  # correct 1, 1, 1 -> tie: the latest, epoch 2
}


def test_each_shortcut_equals_a_hand_computation():
    audit, honest = frames(TRUTH, EPOCHS)
    row = shortcut_scores(audit, honest, 3).iloc[0]
    # honest = last epoch: truth [0,1,1,2,2,0], pred [1,1,2,2,2,1]
    #   class 0: TP 0, FN 2 -> F1 0, recall 0; class 1: TP 1, FP 2, FN 1 -> F1 2/5, recall 1/2;
    #   class 2: TP 2, FP 1 -> F1 4/5, recall 1.   UF1 = 6/15, UAR = 1/2
    assert row["uf1"] == pytest.approx(6 / 15) and row["uar"] == pytest.approx(1 / 2)
    # 1. per subject the epoch with most correct: A e1 [0,1], B e0 [1,2], C e2 [2,1] -> pred [0,1,1,2,2,1]
    #   class 0: TP 1, FN 1 -> 2/3, recall 1/2; class 1: TP 2, FP 1 -> 4/5, recall 1; class 2: 1, 1
    assert row["uf1_leaky_subject_best_epoch"] == pytest.approx((2 / 3 + 4 / 5 + 1) / 3)  # 37/45
    assert row["uar_leaky_subject_best_epoch"] == pytest.approx(5 / 6)
    _, picks = subject_best_epoch(audit, 3)
    assert dict(zip(picks["fold"], picks["epoch"])) == {"A": 1, "B": 0, "C": 2}
    # 2. pooled per epoch: e0 [0,0,1,2,2,1] -> UF1 (1/2+1/2+1)/3 = 2/3, UAR 2/3; e1 [0,1,0,2,2,1] -> 2/3, 2/3;
    #   e2 = honest. e0 and e1 tie: the latest, epoch 1
    assert row["uf1_leaky_overall_best_epoch"] == pytest.approx(2 / 3)
    assert row["uar_leaky_overall_best_epoch"] == pytest.approx(2 / 3)
    assert row["leaky_overall_best_epoch"] == 1
    # 3. per fold of the honest predictions: A [0,1]->[1,1]: UF1 (0 + 2/3)/2 = 1/3 (class 2 absent from
    #   both: left out), UAR (0 + 1)/2; B [1,2]->[2,2]: (0 + 2/3)/2 = 1/3, UAR 1/2; C [2,0]->[2,1]: class 1
    #   predicted but absent -> F1 0 counted, left out of UAR: UF1 (1 + 0 + 0)/3 = 1/3, UAR (1 + 0)/2
    assert row["uf1_leaky_fold_mean"] == pytest.approx(1 / 3)
    assert row["uar_leaky_fold_mean"] == pytest.approx(1 / 2)
    # 4. precision of the honest pool: class 0 never predicted -> 0; class 1 1/3; class 2 2/3
    assert row["uar_leaky_mean_precision"] == pytest.approx(1 / 3)
    # inflation = leaky - honest, signed
    assert row["uf1_leaky_subject_best_epoch_inflation"] == pytest.approx(37 / 45 - 6 / 15)
    assert row["uf1_leaky_fold_mean_inflation"] == pytest.approx(1 / 3 - 6 / 15)  # negative
    assert row["uar_leaky_fold_mean_inflation"] == pytest.approx(0.0)
    assert row["uar_leaky_mean_precision_inflation"] == pytest.approx(1 / 3 - 1 / 2)


def test_mean_precision_counts_a_never_predicted_class_as_zero():
    # truth [0,1,2], pred [0,0,1]: precision 1/2, 0/1, class 2 never predicted -> 0
    assert mean_precision_uar([0, 1, 2], [0, 0, 1], 3) == pytest.approx(1 / 6)
    # a class absent from the truth is not averaged (as in UAR): truth [0,0,1], pred [0,2,1] -> (1 + 1)/2
    assert mean_precision_uar([0, 0, 1], [0, 2, 1], 3) == pytest.approx(1.0)


def test_subject_best_epoch_can_lower_the_pooled_score_and_says_so():
    # One subject, truth [0,0,0,1,2]: epoch 0 [0,0,0,1,0] has 4 right, UF1 (6/7 + 1 + 0)/3; the last
    # epoch [0,1,1,1,2] has 3 right but UF1 (1/2 + 1/2 + 1)/3. Keeping the most-correct epoch loses UF1.
    audit, honest = frames({"A": [0, 0, 0, 1, 2]}, {"A": [[0, 0, 0, 1, 0], [0, 1, 1, 1, 2]]})
    row = shortcut_scores(audit, honest, 3).iloc[0]
    assert row["uf1"] == pytest.approx(2 / 3)
    assert row["uf1_leaky_subject_best_epoch"] == pytest.approx((6 / 7 + 1) / 3)
    assert row["uf1_leaky_subject_best_epoch_inflation"] == pytest.approx((6 / 7 + 1) / 3 - 2 / 3)
    assert row["uf1_leaky_subject_best_epoch_inflation"] < 0


def test_several_seeds_are_scored_per_seed_then_mean_and_sd():
    a0, h0 = frames(TRUTH, EPOCHS, seed=0)
    flipped = {s: [[(p + 1) % 3 for p in ep] for ep in eps] for s, eps in EPOCHS.items()}
    a1, h1 = frames(TRUTH, flipped, seed=1)
    per_seed = shortcut_scores(pd.concat([a0, a1]), pd.concat([h0, h1]), 3)
    assert per_seed["seed"].tolist() == [0, 1]
    one = shortcut_scores(a1, h1, 3).iloc[0]
    got, want = per_seed.iloc[1][SCORE_COLUMNS].astype(float), one[SCORE_COLUMNS].astype(float)
    assert got.tolist() == pytest.approx(want.tolist())
    summ = summarize(per_seed).iloc[0]
    assert summ["n_seeds"] == 2
    for c in ("uf1", *LEAKY):
        v = per_seed[c].to_numpy(float)
        assert summ[c] == pytest.approx(v.mean()) and summ[f"{c}_sd"] == pytest.approx(v.std(ddof=1))


def test_cells_without_audit_rows_get_only_the_prediction_shortcuts():
    _, honest = frames(TRUTH, EPOCHS)
    row = shortcut_scores(pd.DataFrame(), honest, 3).iloc[0]
    assert np.isnan(row["uf1_leaky_subject_best_epoch"]) and np.isnan(row["uar_leaky_overall_best_epoch"])
    assert row["uf1_leaky_fold_mean"] == pytest.approx(1 / 3) and row["n_epochs"] == 0


def test_audit_that_does_not_fit_the_predictions_names_the_clip():
    audit, honest = frames(TRUTH, EPOCHS)
    with pytest.raises(AuditError, match=r"clip B/c1 \(fold B\) has no audit predictions"):
        shortcut_scores(audit[~((audit["subject"] == "B") & (audit["clip"] == "c1"))], honest, 3)
    gap = audit[~((audit["subject"] == "C") & (audit["clip"] == "c0") & (audit["epoch"] == 1))]
    with pytest.raises(AuditError, match=r"fold C: clip C/c0 has no audit prediction at epoch 1"):
        shortcut_scores(gap, honest, 3)


def test_a_fold_that_stopped_early_keeps_its_last_epoch():
    # B stopped after epoch 0 (early stopping on training subjects): at epochs 1 and 2 it is its epoch 0.
    epochs = {**EPOCHS, "B": [[1, 2]]}
    audit, honest = frames(TRUTH, epochs)
    _, e = overall_best_epoch(audit, 3)
    # e0 [0,0,1,2,2,1] 2/3; e1 [0,1,1,2,2,1] 37/45 (the shortcut-1 pool); e2 [1,1,1,2,2,1]
    assert e == 1
    assert overall_best_epoch(audit, 3)[0]["uf1"] == pytest.approx(37 / 45)


def test_audit_frame_from_unit_records():
    preds = [{**CELL, "seed": 0, "fold": "s1", "subject": "s1", "clip": c, "source_dataset": "casme2",
              "y_true": y, "y_pred": 0} for c, y in (("c0", 0), ("c1", 2))]
    ok = {"row": {"status": "ok", "unit_key": "k"}, "predictions": preds,
          "audit": {"epochs": [0, 1], "y_pred": [[1, 2], [0, 2]]}}
    failed = {"row": {"status": "failed"}, "predictions": []}
    plain = {"row": {"status": "ok"}, "predictions": preds}  # a unit run without the audit
    df = audit_frame([ok, failed, plain])
    assert df[["clip", "epoch", "y_true", "y_pred"]].values.tolist() == [["c0", 0, 0, 1], ["c0", 1, 0, 0],
                                                                         ["c1", 0, 2, 2], ["c1", 1, 2, 2]]
    assert set(df["source_dataset"]) == {"casme2"} and "prob_0" not in df.columns
    bad = {**ok, "audit": {"epochs": [0], "y_pred": [[1]]}}
    with pytest.raises(AuditError, match="epoch 0 has 1 audit predictions for 2 test clips"):
        audit_frame([bad])


def test_a_unit_record_with_a_broken_audit_entry_is_not_trusted():
    from bench.results.tables import record_problem

    row = {"unit_key": "k", "cell": "c", "status": "ok", "seed": 0, "fold": "s1", "n_test": 2,
           "fold_uf1": 0.5, "fold_uar": 0.5, "fold_acc": 0.5, **{k: CELL[k] for k in CELL if k != "study"}}
    preds = [{**CELL, "seed": 0, "clip": f"c{j}", "y_true": 0, "y_pred": 0, "prob_0": 0.5, "prob_1": 0.5}
             for j in range(2)]
    rec = {"row": row, "predictions": preds, "audit": {"epochs": [0, 1], "y_pred": [[0, 1], [1, 1]]}}
    assert record_problem(rec) is None
    assert "epoch 1's predictions are not 2 class indices below 2" in record_problem(
        {**rec, "audit": {"epochs": [0, 1], "y_pred": [[0, 1], [1, 2]]}})
    assert "not increasing" in record_problem({**rec, "audit": {"epochs": [1, 0], "y_pred": [[0, 1], [1, 1]]}})
    assert "2 epoch(s) but 1 row(s)" in record_problem({**rec, "audit": {"epochs": [0, 1], "y_pred": [[0, 1]]}})


# ----------------------------------------------------------------------------------- properties

@st.composite
def small_studies(draw):
    n_classes = draw(st.integers(2, 4))
    n_epochs = draw(st.integers(1, 6))
    truth, epochs = {}, {}
    for s in range(draw(st.integers(1, 5))):
        n = draw(st.integers(1, 4))
        truth[f"s{s}"] = draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n))
        epochs[f"s{s}"] = draw(st.lists(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n),
                                        min_size=n_epochs, max_size=n_epochs))
    return n_classes, truth, epochs


@settings(max_examples=60, deadline=None)
@given(small_studies())
def test_shortcut_picks_are_never_below_the_last_epoch(study):
    n_classes, truth, epochs = study
    audit, honest = frames(truth, epochs)
    _, picks = subject_best_epoch(audit, n_classes)
    for _, p in picks.iterrows():
        correct = [sum(int(a == b) for a, b in zip(truth[p["fold"]], ep)) for ep in epochs[p["fold"]]]
        assert p["correct"] >= p["last_correct"] == correct[-1]  # the last epoch is one of its candidates
        assert p["correct"] == max(correct) and p["epoch"] == max(i for i, c in enumerate(correct) if c == p["correct"])
    row = shortcut_scores(audit, honest, n_classes).iloc[0]
    # shortcut 2 chooses on pooled UF1 among candidates that include the last epoch (= the headline)
    assert row["uf1_leaky_overall_best_epoch"] >= row["uf1"] - 1e-12
    # the inflation is what was measured (no clipping at zero), whatever its sign
    for c in LEAKY:  # NaN where the rule gives none (a class-dropping fold left with no class)
        want = row[c] - row[c.split("_", 1)[0]]
        assert row[f"{c}_inflation"] == want or (np.isnan(want) and np.isnan(row[f"{c}_inflation"]))


# ------------------------------------------------------------------------ per-epoch snapshots

def _tiny_fit(snapshots_budget=None):
    import torch

    from bench.training.engine import TrainConfig, fit
    from bench.training.fold import EpochSnapshots

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 2, 8, 8, generator=g), torch.arange(24) % 3
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Dropout(0.3),
                                torch.nn.Linear(4, 3))
    size = sum(v.numel() * v.element_size() for v in model.state_dict().values())
    snaps = None if snapshots_budget is None else EpochSnapshots(model, snapshots_budget * size)
    fit(model, x, y, TrainConfig(epochs=4, batch_size=8, lr=1e-2, device="cpu", seed=0), on_epoch=snaps)
    return model, snaps, torch.randn(5, 2, 8, 8, generator=g)


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread (and the machine is shared); restored afterwards."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_snapshots_change_nothing_and_replay_every_epoch(one_thread):
    import os

    import torch

    from bench.training.engine import predict_proba

    plain, _, xt = _tiny_fit()
    model, snaps, _ = _tiny_fit(snapshots_budget=2)  # two copies fit in memory, two are spilled to disk
    for (k, a), b in zip(plain.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k  # training with snapshots is bit-identical
    assert [isinstance(s, dict) for s in snaps.states] == [True, True, False, False]
    tmp = snaps._tmp.name
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = snaps.predict(model, xt)
    assert out["epochs"] == [0, 1, 2, 3] and out["y_pred"].shape == (4, 5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the trained model is untouched
    # the last (spilled) epoch's weights are the trained model's: the same predictions
    assert (out["y_pred"][-1] == predict_proba(model, xt).argmax(1)).all()
    assert not os.path.exists(tmp)  # the spill folder is removed
