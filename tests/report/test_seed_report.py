"""A report from a 3-seed run shows the seed spread and a verdict per comparison; a 1-seed run says that
seed variance was not measured instead of implying certainty."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.evaluation import metrics
from bench.report import ReportOptions, load_run
from bench.report.build import build_section
from bench.report.context import ReportContext
from bench.report.markdown import render
from bench.report.sections import headline, noise_floor, significance
from tests.helpers.fabricate import fabricate_run, scan_clean

OPTS = ReportOptions(n_boot=200, pdf=False)
VERDICTS = {"better", "practically equivalent", "worse", "undecided"}
SHOWN = {"ststnet": "STSTNet", "fmanet": "FMANet", "single_phase": "single-phase flow",
         "cof[theta1=0.3]": "COF[theta1=0.3]"}  # display names (bench.report.names)
SIG = "Verdicts against the baseline"


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}")[1].split("\n## ")[0]


def _seed_sections(run_dir: Path, out: Path) -> str:
    """Only the sections that show seed spread (a whole report repeats minutes of other figures)."""
    ctx = ReportContext(load_run(run_dir), out, OPTS)
    return render([b for s in (headline, noise_floor, significance) for b in build_section(s, ctx)])


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    run = fabricate_run(root, seeds=(0, 1, 2), aux=False, examples=False)
    out = root / "r"
    (out / "report.md").parent.mkdir(parents=True)
    (out / "report.md").write_text(_seed_sections(run, out))
    return run, out


def test_three_seed_report_shows_spread_tests_and_verdicts(three_seeds):
    run, out = three_seeds
    md = (out / "report.md").read_text()
    head = _section(md, "Headline results")
    assert "mean ± standard deviation over its seeds" in head and "seeds with replacement" in head
    assert "3 seeds per cell (0, 1, 2)" in head
    rows = [ln for ln in head.splitlines() if ln.startswith("| single-phase flow") or ln.startswith("| COF")]
    assert len(rows) == 4 and all(ln.count("±") == 3 for ln in rows)  # UF1, UAR and accuracy each with a spread
    assert "seed variance was not measured" not in head + _section(md, "Noise floor")

    # the noise floor: a figure and the per-seed scores behind it
    assert "## Noise floor" in md and (out / "figures" / "noise_floor.png").exists()
    seeds = pd.read_csv(out / "tables" / "seed_scores.csv")
    assert len(seeds) == 4 * 3 and set(seeds["seed"]) == {0, 1, 2}
    preds = pd.read_parquet(run / "predictions.parquet")
    for _, r in seeds.iterrows():
        g = preds[(preds["representation"] == r["representation"]) & (preds["model"] == r["model"])
                  & (preds["seed"] == r["seed"])]
        assert r["uf1"] == pytest.approx(metrics.pooled_scores(g["y_true"], g["y_pred"], 3)["uf1"], abs=1e-6)

    # per comparison: a verdict sentence under a written rule, then sign agreement, McNemar per seed, Holm
    sig = _section(md, SIG)
    assert "Region of practical equivalence (ROPE): |ΔUF1| ≤ 0.01" in sig and "otherwise undecided" in sig
    assert "within seed noise" not in md and "scipy.stats.binomtest" in sig and "Holm" in sig
    ver = pd.read_csv(out / "tables" / "verdicts.csv")
    assert len(ver) == 2 and set(ver["verdict"]) <= VERDICTS and (ver["n_seeds"] == 3).all()
    assert (ver["seeds_higher"] + ver["seeds_lower"] + ver["seeds_equal"] == 3).all()
    assert (ver["p_better"] + ver["p_equivalent"] + ver["p_worse"]).round(9).eq(1).all()
    for _, r in ver.iterrows():
        assert f"{SHOWN[r['model']]}: {SHOWN[r['representation']]} vs single-phase flow — **{r['verdict']}**:" in sig
    mc = pd.read_csv(out / "tables" / "mcnemar.csv")
    assert len(mc) == 2 * 3
    # one McNemar row recomputed by hand from the predictions
    r = mc.iloc[0]
    cell = preds[(preds["model"] == r["model"]) & (preds["seed"] == r["seed"])]
    b = cell[cell["representation"] == "single_phase"].set_index("clip")
    o = cell[cell["representation"] == r["representation"]].set_index("clip").loc[b.index]
    rb, ro = b["y_pred"] == b["y_true"], o["y_pred"] == o["y_true"]
    assert (r["b"], r["c"]) == (int((rb & ~ro).sum()), int((~rb & ro).sum()))
    assert r["p"] == pytest.approx(sps.binomtest(int(r["b"]), int(r["b"] + r["c"]), 0.5).pvalue)
    assert (mc["p_holm"] >= mc["p"] - 1e-12).all()
    # ΔUF1 per seed is the difference of the two cells' pooled UF1 in that seed
    us = seeds.set_index(["representation", "model", "seed"])["uf1"]
    for _, r in mc.iterrows():
        assert r["duf1"] == pytest.approx(us[(r["representation"], r["model"], r["seed"])]
                                          - us[("single_phase", r["model"], r["seed"])], abs=1e-5)
    scan_clean(out)


def test_verdicts_follow_the_rule_on_a_clear_and_a_noisy_comparison(tmp_path):
    # 10 subjects x 6 clips: cof is far above single_phase in every seed here (0.45 vs 0.65 correct): the
    # posterior of its UF1 gain clears the ROPE, so the report says "better", whatever Wilcoxon says.
    from bench.evaluation.verdicts import decide

    run = fabricate_run(tmp_path, seeds=(0, 1, 2), n_subjects=10, per_subject=6, aux=False, examples=False)
    out = tmp_path / "r"
    _seed_sections(run, out)
    ver = pd.read_csv(out / "tables" / "verdicts.csv").set_index("model")
    for model, r in ver.iterrows():  # the table's verdict is the rule applied to its own probabilities
        assert r["verdict"] == decide(r["p_better"], r["p_equivalent"], r["p_worse"], 0.95), (model, r.to_dict())
        assert r["duf1_lo"] <= r["duf1"] <= r["duf1_hi"]
    assert "better" in set(ver["verdict"])


def test_one_seed_report_says_seed_variance_was_not_measured(tmp_path):
    run = fabricate_run(tmp_path, seeds=(0,), aux=False, examples=False)
    out = tmp_path / "r"
    md = _seed_sections(run, out)
    (out / "report.md").write_text(md)
    head = _section(md, "Headline results")
    assert "Every cell ran with one seed: **seed variance was not measured**" in head
    assert not any("±" in ln for ln in head.splitlines() if ln.startswith("|"))
    assert "seeds with replacement" not in head  # the one-seed interval is described as what it is
    floor = _section(md, "Noise floor")
    assert "seed variance was not measured" in floor and not (out / "figures" / "noise_floor.png").exists()
    sig = _section(md, SIG)
    ver = pd.read_csv(out / "tables" / "verdicts.csv")
    assert set(ver["verdict"]) <= VERDICTS and (ver["n_seeds"] == 1).all()
    # one seed: decided by the subject bootstrap alone (said so), or undecided for want of seeds
    for _, r in ver.iterrows():
        assert ("decided by the subject bootstrap alone" in r["reason"] if r["verdict"] != "undecided"
                else "one seed ran" in r["reason"]), r.to_dict()
        assert r["reason"] in sig
    assert not re.search(r"\*\*(consistent gain|consistent loss|within seed noise)\*\*:", sig)
    scan_clean(out)


def test_mixed_seed_counts_are_flagged_per_cell(tmp_path):
    run = fabricate_run(tmp_path, seeds=(0, 1, 2), aux=False, examples=False)
    p = pd.read_parquet(run / "predictions.parquet")
    keep = ~((p["representation"] == "cof[theta1=0.3]") & (p["model"] == "ststnet") & (p["seed"] > 0))
    p[keep].to_parquet(run / "predictions.parquet")
    out = tmp_path / "r"
    md = _seed_sections(run, out)
    assert "A cell with no ± in the table ran with one seed: **seed variance was not measured**" in md
    assert "Cells drawn with a single dot ran one seed" in md
    ver = pd.read_csv(out / "tables" / "verdicts.csv").set_index("model")
    assert ver.loc["ststnet", "n_seeds"] == 1 and "one seed" in ver.loc["ststnet", "reason"]
    assert ver.loc["fmanet", "n_seeds"] == 3 and "one seed" not in ver.loc["fmanet", "reason"]
    assert np.isnan(ver.loc["ststnet", "duf1_std"])
