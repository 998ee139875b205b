"""Report statistics against hand-computed values and scipy."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.evaluation import metrics
from bench.report import stats
from bench.report.load import RunData, axis_params
from bench.report.tables import ReportOptions, significance_frame


def test_holm_known_vector():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.5, 0.001]) == pytest.approx([1.0, 1.0, 0.003])
    assert stats.holm([0.2]) == pytest.approx([0.2])
    assert len(stats.holm([])) == 0
    with pytest.raises(ValueError):
        stats.holm([0.1, float("nan")])


def test_rank_biserial_hand_values():
    # non-zero d = 1, 2, -3, 4 -> ranks 1, 2, 3, 4; R+ = 7, R- = 3 -> (7 - 3) / 10
    assert stats.rank_biserial([1, 2, -3, 4, 0]) == pytest.approx(0.4)
    # ties: |d| = 1, 1, 2 -> ranks 1.5, 1.5, 3; R+ = 3 = R- -> 0
    assert stats.rank_biserial([1, 1, -2]) == pytest.approx(0.0)
    assert stats.rank_biserial([0.3, 0.1]) == pytest.approx(1.0)
    assert stats.rank_biserial([0, 0, 0]) is None
    # relation to the Wilcoxon statistic without ties: r = 1 - 2 * min(R+, R-) / (n (n + 1) / 2) (R- smaller)
    d = np.array([0.5, 1.2, -0.3, 2.0, 0.9, -0.1, 1.5])
    w = sps.wilcoxon(d).statistic
    assert stats.rank_biserial(d) == pytest.approx(1 - 2 * w / (len(d) * (len(d) + 1) / 2))


def test_wilcoxon_matches_scipy_when_no_ties():
    x = np.array([0.8, 0.7, 0.9, 0.6, 0.75, 0.85, 0.5])
    y = np.array([0.5, 0.65, 0.61, 0.62, 0.55, 0.64, 0.49])
    t = stats.paired_wilcoxon(x, y)
    ref = sps.wilcoxon(x, y, method="exact")
    assert t.status == "tested" and t.method == "exact"
    assert t.p == pytest.approx(ref.pvalue) and t.statistic == pytest.approx(ref.statistic)
    assert t.median_diff == pytest.approx(np.median(x - y))
    assert t.n_pairs == 7 and t.n_nonzero == 7


def test_wilcoxon_with_ties_is_the_exact_sign_flip_distribution():
    d = np.array([0.25, 0.25, -0.125, 0.5, 0.125, 0.25, 0.0])  # ties in |d| and one zero
    t = stats.paired_wilcoxon(d, np.zeros_like(d))
    nz = d[d != 0]
    ranks = sps.rankdata(np.abs(nz))
    obs = min(ranks[nz > 0].sum(), ranks[nz < 0].sum())
    # independent enumeration of all 2^n sign assignments of the (tied) ranks
    null = [min(ranks[np.array(s)].sum(), ranks[~np.array(s)].sum())
            for s in itertools.product([True, False], repeat=len(nz))]
    p_ref = np.mean(np.array(null) <= obs + 1e-12)
    assert t.status == "tested" and "permutation" in t.method
    assert t.n_nonzero == 6 and t.statistic == pytest.approx(obs)
    assert t.p == pytest.approx(p_ref)


def test_wilcoxon_degenerate_cases_in_words():
    t = stats.paired_wilcoxon([0.5, 0.5, 0.25, 1.0], [0.5, 0.5, 0.25, 1.0])
    assert t.status == "all_zero" and t.p is None and t.rank_biserial is None
    assert "no difference" in t.reason and t.median_diff == 0.0
    t = stats.paired_wilcoxon([1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 6], min_pairs=6)
    assert t.status == "too_few" and t.p is None and "only 5 of 6" in t.reason
    assert t.rank_biserial == pytest.approx(1.0)  # the effect size is still defined
    assert stats.paired_wilcoxon([], []).status == "no_pairs"
    fam = [t, stats.paired_wilcoxon(np.arange(8.0), np.zeros(8) + 0.5)]
    stats.apply_holm(fam)
    assert fam[0].p_holm is None and fam[1].p_holm == pytest.approx(fam[1].p)  # family of one


def _subject_preds(rng, n_subj=8, per=5, k=3, p=0.6):
    rows = []
    for s in range(n_subj):
        for j in range(per):
            y = (s + j) % k
            rows.append(dict(subject=f"s{s}", y_true=y, y_pred=y if rng.random() < p else (y + 1) % k))
    return pd.DataFrame(rows)


def test_bootstrap_ci_is_the_subject_bootstrap():
    rng = np.random.default_rng(1)
    df = _subject_preds(rng)
    subjects = sorted(df["subject"].unique())
    cms = stats.subject_confusions(df, subjects, 3)
    assert (cms.sum(axis=0) == metrics.confusion_matrix(df["y_true"], df["y_pred"], 3)).all()
    a = stats.bootstrap_ci(cms, n_boot=300, seed=7)
    assert a == stats.bootstrap_ci(cms, n_boot=300, seed=7)  # deterministic under a seed
    assert a != stats.bootstrap_ci(cms, n_boot=300, seed=8)
    point = metrics.pooled_scores(df["y_true"], df["y_pred"], 3)
    for m in stats.METRICS:
        assert a[m][0] <= point[m] <= a[m][1]
    # independent replicate: concatenate the drawn subjects' prediction rows and rescore
    n_boot = 25
    counts = np.random.default_rng(3).multinomial(len(subjects), np.full(len(subjects), 1 / len(subjects)), size=n_boot)
    vals = []
    for c in counts:
        rows = pd.concat([df[df["subject"] == s] for s, n in zip(subjects, c) for _ in range(n)])
        vals.append(metrics.pooled_scores(rows["y_true"], rows["y_pred"], 3)["uf1"])
    b = stats.bootstrap_ci(cms, n_boot=n_boot, seed=3)
    assert b["uf1"] == pytest.approx(tuple(np.quantile(vals, [0.025, 0.975])))


def test_bootstrap_identical_subjects_gives_a_point_interval():
    cm = np.array([[2, 1, 0], [0, 3, 0], [1, 0, 2]])
    ci = stats.bootstrap_ci(np.stack([cm] * 5), n_boot=50, seed=0)
    s = metrics.scores_from_confusion(cm)
    for m in stats.METRICS:
        assert ci[m] == pytest.approx((s[m], s[m]))


def test_bootstrap_with_a_subject_missing_in_one_seed():
    # seed 1 lost subject s1 (a failed fold): replicates drawing only s1 average over seed 0 alone
    a = np.array([[[2, 0], [0, 2]], [[1, 1], [1, 1]]])  # seed 0: s0 perfect, s1 half right
    b = np.array([[[2, 0], [0, 2]], [[0, 0], [0, 0]]])  # seed 1: s0 perfect, s1 missing
    ci = stats.bootstrap_ci(np.stack([a, b]), n_boot=400, seed=0)
    # possible replicate values: {s0,s0} -> 1, {s0,s1} -> (0.75 + 1) / 2, {s1,s1} -> 0.5 (seed 0 only)
    assert ci["acc"][0] == pytest.approx(0.5) and ci["acc"][1] == pytest.approx(1.0)


def test_summarize_cell_seeds():
    rng = np.random.default_rng(2)
    d0, d1 = _subject_preds(rng).assign(seed=0), _subject_preds(rng).assign(seed=1)
    s = stats.summarize_cell(pd.concat([d0, d1]), 3, n_boot=100)
    u = [metrics.pooled_scores(d["y_true"], d["y_pred"], 3)["uar"] for d in (d0, d1)]
    assert s.mean["uar"] == pytest.approx(np.mean(u)) and s.std["uar"] == pytest.approx(np.std(u, ddof=1))
    assert s.seeds == [0, 1] and s.n_subjects == 8 and s.n_samples == 40
    one = stats.summarize_cell(d0, 3, n_boot=100)
    assert one.std["uf1"] is None  # undefined with one seed, never NaN


def _run(per_subject_acc: dict[str, list[float]], n=4) -> RunData:
    """Predictions whose per-subject accuracy is exactly the given fraction (of n samples)."""
    rows = []
    for rep, accs in per_subject_acc.items():
        for si, acc in enumerate(accs):
            k = round(acc * n)
            for j in range(n):
                rows.append(dict(dataset="d", representation=rep, model="m", seed=0, fold=f"s{si}",
                                 subject=f"s{si}", source_dataset="d", y_true=j % 2,
                                 y_pred=j % 2 if j < k else 1 - j % 2))
    return RunData(run_dir=__import__("pathlib").Path("."), study="t", facts={},
                   results=pd.DataFrame(columns=["dataset", "representation", "model", "seed", "fold", "status"]),
                   predictions=pd.DataFrame(rows), classes=["a", "b"])


def test_significance_family_against_scipy_and_holm():
    base = [0.25, 0.5, 0.25, 0.5, 0.25, 0.5, 0.0, 0.25]
    a = [1.0, 0.75, 0.5, 1.0, 0.75, 1.0, 0.25, 0.75]
    b = [0.5, 0.25, 0.5, 0.75, 0.0, 0.75, 0.5, 0.5]
    run = _run({"single_phase": base, "cof": a, "two_phase": b, "same": base})
    df, notes = significance_frame(run, ReportOptions())
    df = df.set_index("representation")
    assert notes == []
    p_raw = []
    for rep, x in (("cof", a), ("two_phase", b)):
        d = np.array(x) - np.array(base)
        nz = d[d != 0]
        ranks = sps.rankdata(np.abs(nz))
        assert df.loc[rep, "rank_biserial"] == pytest.approx((ranks[nz > 0].sum() - ranks[nz < 0].sum()) / ranks.sum())
        assert df.loc[rep, "median_diff"] == pytest.approx(np.median(d))
        p_raw.append(df.loc[rep, "p"])
    assert list(df[["p_holm"]].loc[["cof", "two_phase"], "p_holm"]) == pytest.approx(list(stats.holm(p_raw)))
    assert df.loc["same", "status"] == "all_zero" and "no difference" in df.loc["same", "result"]
    assert pd.isna(df.loc["same", "p"])  # stored empty; the table prints words
    assert df.loc["cof", "result"].startswith("better")


def test_significance_without_baseline_is_reported():
    run = _run({"cof": [0.5] * 6, "two_phase": [0.25] * 6})
    df, notes = significance_frame(run, ReportOptions())
    assert len(df) == 0 and "'single_phase' is not in this study" in notes[0]


def test_axis_params_read_the_columns_not_the_labels():
    # parse_label is gone: the option and parameters come from p_<axis> / p_<axis>_<param>; the label
    # is display text only (here deliberately unlike the parameters).
    res = pd.DataFrame([
        dict(representation="A", model="fmanet[-fusion]", p_representation="cof", p_representation_theta1=0.3,
             p_representation_eps=1e-3, p_representation_modulation=None, p_model="fmanet", p_model_fusion="none"),
        dict(representation="B", model="fmanet[-fusion]", p_representation="mm_cof", p_representation_theta1=np.nan,
             p_representation_eps=np.nan, p_representation_modulation="abs", p_model="fmanet", p_model_fusion="none"),
        dict(representation="single_phase", model="ststnet", p_representation="single_phase",
             p_representation_theta1=np.nan, p_representation_eps=np.nan, p_representation_modulation=None,
             p_model="ststnet", p_model_fusion=None),
    ])
    reps = axis_params(res, "representation")
    assert reps == {"A": ("cof", {"theta1": 0.3, "eps": 0.001}), "B": ("mm_cof", {"modulation": "abs"}),
                    "single_phase": ("single_phase", {})}
    assert type(reps["A"][1]["theta1"]) is float  # plain Python numbers, as sweeps expect
    assert axis_params(res, "model") == {"fmanet[-fusion]": ("fmanet", {"fusion": "none"}), "ststnet": ("ststnet", {})}


def test_axis_params_fall_back_to_the_json_of_old_run_directories():
    res = pd.DataFrame([dict(representation="cof[theta1=0.3]", rep_params='{"name": "cof", "theta1": 0.3}'),
                        dict(representation="x", representation_name="single_phase", rep_params="{}"),
                        dict(representation="junk", rep_params="not json")])
    assert axis_params(res, "representation") == {"cof[theta1=0.3]": ("cof", {"theta1": 0.3}),
                                                  "x": ("single_phase", {})}  # "junk": unknown, left out
