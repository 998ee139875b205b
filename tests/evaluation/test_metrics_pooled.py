"""bench.evaluation.metrics against hand-computed confusion matrices and an independent scikit-learn check."""

from __future__ import annotations

import warnings
from fractions import Fraction as F

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.evaluation.metrics import (
    confusion_matrix,
    format_confusion,
    per_class_scores,
    per_dataset_scores,
    per_fold_scores,
    per_subject_scores,
    pooled_scores,
    scores_from_confusion,
)


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    # Every test here must run without a RuntimeWarning (0/0) or any other warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def approx(frac) -> pytest.approx:
    return pytest.approx(float(frac), abs=1e-12)


def test_confusion_matrix_rows_true_cols_pred():
    cm = confusion_matrix([0, 0, 0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 1, 2, 0], 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[4, 0, 0], [1, 1, 0], [1, 0, 1]])


def test_hand_computed_scores():
    # cm = [[4,0,0],[1,1,0],[1,0,1]]: TP=[4,1,1], support=[4,2,2], predicted=[6,1,1]
    # F1_0 = 8/(8+2+0) = 4/5, F1_1 = 2/(2+0+1) = 2/3, F1_2 = 2/3 -> UF1 = (4/5+4/3)/3 = 32/45
    # recall = [1, 1/2, 1/2] -> UAR = 2/3; acc = 6/8
    s = pooled_scores([0, 0, 0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 1, 2, 0], 3)
    assert s == {"uf1": approx(F(32, 45)), "uar": approx(F(2, 3)), "acc": approx(F(3, 4))}


def test_class_never_predicted_gets_f1_zero_and_recall_zero():
    # class 2 is present (2 samples) but never predicted: cm [[1,0,0],[0,1,0],[1,1,0]]
    # F1 = [2/3, 2/3, 0] -> 4/9; recall = [1, 1, 0] -> 2/3; acc = 2/4
    s = pooled_scores([0, 1, 2, 2], [0, 1, 1, 0], 3)
    assert s == {"uf1": approx(F(4, 9)), "uar": approx(F(2, 3)), "acc": approx(F(1, 2))}
    pc = per_class_scores(confusion_matrix([0, 1, 2, 2], [0, 1, 1, 0], 3))
    assert pc.loc[2, "f1"] == 0.0 and pc.loc[2, "recall"] == 0.0
    assert pc.loc[2, "precision"] == -1.0  # undefined (never predicted): flagged, not NaN
    assert bool(pc.loc[2, "in_uf1"]) and bool(pc.loc[2, "in_uar"])


def test_class_absent_from_pool_is_left_out_of_both_means():
    # class 2 neither true nor predicted: F1 0/0 and recall 0/0 -> excluded, never NaN.
    # F1_0 = 2/(2+1+0) = 2/3, F1_1 = 2/(2+0+1) = 2/3 -> UF1 = 2/3; recall = [1, 1/2] -> UAR = 3/4
    s = pooled_scores([0, 1, 1], [0, 1, 0], 3)
    assert s == {"uf1": approx(F(2, 3)), "uar": approx(F(3, 4)), "acc": approx(F(2, 3))}
    pc = per_class_scores(confusion_matrix([0, 1, 1], [0, 1, 0], 3))
    assert not pc.loc[2, "in_uf1"] and not pc.loc[2, "in_uar"]
    assert not pc[["precision", "recall", "f1"]].isna().any().any()


def test_class_predicted_but_absent_counts_f1_zero_not_recall():
    # class 2 has no true samples but is predicted once: F1_2 = 0/(0+1+0) = 0 (counted),
    # recall_2 = 0/0 (left out). F1 = [2/3, 1, 0] -> 5/9; recall = [1/2, 1] -> 3/4.
    s = pooled_scores([0, 0, 1], [0, 2, 1], 3)
    assert s == {"uf1": approx(F(5, 9)), "uar": approx(F(3, 4)), "acc": approx(F(2, 3))}


def test_perfect_classifier():
    y = [0, 1, 2, 3, 4, 0, 2]
    assert pooled_scores(y, y, 5) == {"uf1": 1.0, "uar": 1.0, "acc": 1.0}


def test_all_predictions_one_class():
    # everything predicted as 2: cm [[0,0,2],[0,0,1],[0,0,3]]
    # F1 = [0, 0, 6/(6+3)] -> 2/9; recall = [0, 0, 1] -> 1/3; acc = 3/6
    s = pooled_scores([0, 0, 1, 2, 2, 2], [2] * 6, 3)
    assert s == {"uf1": approx(F(2, 9)), "uar": approx(F(1, 3)), "acc": approx(F(1, 2))}


def test_scores_from_confusion_matches_pooled():
    cm = np.array([[5, 2, 1], [0, 3, 4], [2, 2, 9]])
    yt = np.repeat(np.arange(3).repeat(3), cm.ravel())
    yp = np.repeat(np.tile(np.arange(3), 3), cm.ravel())
    assert scores_from_confusion(cm) == pooled_scores(yt, yp, 3)


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_sklearn_when_every_class_is_present(seed):
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    rng = np.random.default_rng(seed)
    k = 3 + seed % 3
    # every class present in both truth and predictions, so no definition ambiguity remains
    yt = np.concatenate([np.arange(k), rng.integers(0, k, 150)])
    yp = np.where(rng.random(yt.size) < 0.55, yt, rng.integers(0, k, yt.size))
    yp[:k] = rng.permutation(k)
    s = pooled_scores(yt, yp, k)
    assert s["uf1"] == pytest.approx(f1_score(yt, yp, average="macro"), abs=1e-12)
    assert s["uar"] == pytest.approx(recall_score(yt, yp, average="macro"), abs=1e-12)
    assert s["acc"] == pytest.approx(accuracy_score(yt, yp), abs=1e-12)


def test_mean_per_fold_f1_is_not_pooled_uf1():
    # fold A: [0,1] predicted [0,1] -> UF1 1; fold B: [2] predicted [0] -> F1_0 = 0, F1_2 = 0 -> UF1 0.
    # Mean of per-fold UF1 = 1/2, but the pooled UF1 = (2/3 + 1 + 0)/3 = 5/9: pooling is the definition.
    df = pd.DataFrame({"fold": ["A", "A", "B"], "y_true": [0, 1, 2], "y_pred": [0, 1, 0]})
    pf = per_fold_scores(df, 3)
    assert pf["uf1"].tolist() == [1.0, 0.0]
    pooled = pooled_scores(df.y_true, df.y_pred, 3)["uf1"]
    assert pooled == approx(F(5, 9))
    assert pf["uf1"].mean() != pytest.approx(pooled)


def test_mean_per_class_precision_is_not_uar():
    # The published mix-up: "UAR" computed as mean per-class precision. cm [[4,0,0],[1,1,0],[1,0,1]]:
    # precision = [4/6, 1, 1] -> 8/9, but UAR (mean recall) = 2/3.
    cm = confusion_matrix([0, 0, 0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 1, 2, 0], 3)
    mean_precision = per_class_scores(cm)["precision"].mean()
    assert mean_precision == approx(F(8, 9))
    assert scores_from_confusion(cm)["uar"] == approx(F(2, 3))


def test_per_fold_with_a_class_absent_from_a_fold_has_no_nan():
    df = pd.DataFrame({
        "fold": ["s1", "s1", "s2", "s2", "s3"],
        "y_true": [0, 0, 1, 2, 2],
        "y_pred": [0, 1, 1, 2, 0],
    })
    pf = per_fold_scores(df, 3)
    # s1: cm [[1,1,0],[0,0,0],...]: F1_0 = 2/3, F1_1 = 0 (predicted, absent) -> 1/3; recall_0 = 1/2
    # s2: perfect on classes 1 and 2 (class 0 absent, never predicted: left out) -> 1, 1
    # s3: true 2 predicted 0: F1_0 = 0, F1_2 = 0 -> 0; recall_2 = 0
    assert pf["fold"].tolist() == ["s1", "s2", "s3"]
    assert pf["uf1"].tolist() == [approx(F(1, 3)), 1.0, 0.0]
    assert pf["uar"].tolist() == [0.5, 1.0, 0.0]
    assert pf["n"].tolist() == [2, 2, 1]
    assert not pf.isna().any().any()


def test_per_subject_and_per_dataset_scores():
    df = pd.DataFrame({
        "subject": ["casme2/a", "casme2/a", "samm/b", "samm/b", "samm/c"],
        "source_dataset": ["casme2", "casme2", "samm", "samm", "samm"],
        "y_true": [0, 1, 1, 2, 2],
        "y_pred": [0, 1, 1, 2, 1],
    })
    ps = per_subject_scores(df, 3)
    assert list(ps.columns) == ["subject", "uf1", "uar", "acc", "n"]
    assert ps["subject"].tolist() == ["casme2/a", "samm/b", "samm/c"]
    assert ps["acc"].tolist() == [1.0, 1.0, 0.0]
    pdf = per_dataset_scores(df, 3)
    assert list(pdf.columns) == ["dataset", "uf1", "uar", "acc", "n"]
    # samm pool: true [1,2,2] pred [1,2,1]: F1_1 = 2/(2+1+0) = 2/3, F1_2 = 2/(2+0+1) = 2/3; recall [1, 1/2]
    samm = pdf.set_index("dataset").loc["samm"]
    assert samm["uf1"] == approx(F(2, 3)) and samm["uar"] == approx(F(3, 4)) and samm["n"] == 3


@pytest.mark.parametrize("yt, yp, k, match", [
    ([0, 3], [0, 1], 3, r"y_true\[1\] = 3 is outside the 3 classes"),
    ([0, 1], [0, -1], 3, r"y_pred\[1\] = -1 is outside"),
    ([0, 1], [0], 3, "differ in length"),
    ([0, 1.5], [0, 1], 3, r"y_true\[1\] = 1.5 is not an integer"),
    ([0, np.nan], [0, 1], 3, r"y_true\[1\] = nan is not an integer"),
    (["0", "x"], [0, 1], 3, r"y_true\[1\] = 'x' is not an integer"),
    ([0], [0], 0, "n_classes must be a positive int"),
])
def test_bad_labels_are_refused(yt, yp, k, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(yt, yp, k)


def test_empty_pool_is_an_error():
    with pytest.raises(ValueError, match="empty prediction pool"):
        pooled_scores([], [], 3)
    with pytest.raises(ValueError, match="square"):
        scores_from_confusion(np.zeros((2, 3)))


def test_integral_float_and_string_labels_are_accepted():
    assert pooled_scores(np.array([0.0, 1.0]), ["0", "1"], 2)["acc"] == 1.0


def test_format_confusion_is_aligned_text():
    txt = format_confusion(np.array([[12, 0], [3, 4]]), ["neg", "positive"])
    lines = txt.splitlines()
    assert lines[0].split() == ["true\\pred", "neg", "positive"]
    assert lines[1].split() == ["neg", "12", "0"] and lines[2].split() == ["positive", "3", "4"]
    assert len({len(line) for line in lines}) == 1


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 6).flatmap(lambda k: st.tuples(
    st.just(k), st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=40))))
def test_property_scores_are_finite_bounded_and_order_free(case):
    k, pairs = case
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yt, yp = map(np.array, zip(*pairs))
        s = pooled_scores(yt, yp, k)
        for v in s.values():
            assert np.isfinite(v) and 0.0 <= v <= 1.0
        perm = np.random.default_rng(len(pairs)).permutation(len(pairs))
        assert pooled_scores(yt[perm], yp[perm], k) == s
        assert s["acc"] == pytest.approx(np.mean(yt == yp))
