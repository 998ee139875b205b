"""Issue 16's report pieces: learning curves from the unit histories, model size in the cost table,
and the seed spread of FMANet's fusion weights per class."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.report import ReportOptions, make_report
from bench.report.build import build_section
from bench.report.context import ReportContext
from bench.report.load import load_run
from bench.report.sections import costs, explanations, learning_curves
from tests.helpers.fabricate import fabricate_run

OPTS = ReportOptions(n_boot=50, pdf=False)


def _with_histories(run, val=True):
    """Give every unit a key and a units/<key>.json history: train_loss = 1/(epoch+1) + seed/10 + fold/100."""
    res = pd.read_parquet(run / "results.parquet")
    res["unit_key"] = [f"u{i:04d}" for i in range(len(res))]
    res.to_parquet(run / "results.parquet")
    (run / "units").mkdir()
    for i, r in res.iterrows():
        f = int(r["fold"][1:])  # s00, s01, ...
        hist = [{"epoch": e, "train_loss": 1 / (e + 1) + r["seed"] / 10 + f / 100, "lr": 1e-3,
                 **({"val_loss": 2.0 - e / 10, "val_uf1": 0.5 + e / 20} if val else {})} for e in range(4)]
        (run / "units" / f"{r['unit_key']}.json").write_text(json.dumps({"row": {}, "history": hist}))
    return run


def test_learning_curves_average_folds_then_seeds(tmp_path):
    run = load_run(_with_histories(fabricate_run(tmp_path, examples=False, aux=False, models=("ststnet",))))
    assert len(run.histories) == len(run.results) * 4
    frame = learning_curves.curves(ReportContext(run, tmp_path / "r", OPTS))
    c = frame[(frame["representation"] == "single_phase") & (frame["model"] == "ststnet")].set_index("epoch")
    # folds s00..s05 -> mean fold/100 = 0.025; seeds 0, 1 -> mean seed/10 = 0.05, sd over seeds = 0.1/sqrt(2)
    assert c.loc[0, "train_loss"] == pytest.approx(1 + 0.05 + 0.025)
    assert c.loc[3, "train_loss"] == pytest.approx(0.25 + 0.05 + 0.025)
    assert c.loc[0, "train_loss_sd"] == pytest.approx(0.1 / 2 ** 0.5)
    assert c.loc[2, "val_uf1"] == pytest.approx(0.6) and c.loc[0, "folds"] == 12 and c.loc[0, "seeds"] == 2
    md = (make_report(run.run_dir, tmp_path / "rep", OPTS) / "report.md").read_text()
    assert "## Learning curves" in md and "figures/learning_curves.png" in md
    assert "training subjects" in md and "Min val loss" in md
    assert (tmp_path / "rep" / "tables" / "learning_curves.csv").exists()


def test_learning_curves_without_validation_show_training_loss_only(tmp_path):
    run = load_run(_with_histories(fabricate_run(tmp_path, examples=False, aux=False, seeds=(0,)), val=False))
    blocks = build_section(learning_curves, ReportContext(run, tmp_path / "r", OPTS))
    text = " ".join(getattr(b, "text", "") for b in blocks)
    assert "only the training loss" in text
    frame = learning_curves.curves(ReportContext(run, tmp_path / "r2", OPTS))
    assert "val_loss" not in frame.columns


def test_no_histories_no_section(tmp_path):
    run = load_run(fabricate_run(tmp_path, examples=False, aux=False, seeds=(0,)))
    assert run.histories.empty
    assert build_section(learning_curves, ReportContext(run, tmp_path / "r", OPTS)) == []


def test_cost_table_reads_the_recorded_size(tmp_path):
    """Parameters and FLOPs come from the results row (n_params, flops_per_sample), never a rebuilt model."""
    run_dir = fabricate_run(tmp_path, examples=False, aux=False, seeds=(0,), reps=("single_phase",),
                            models=("ststnet", "fmanet"))
    res = pd.read_parquet(run_dir / "results.parquet")
    res["model_params"] = '{"name": "no_such_model"}'  # not read: nothing is rebuilt
    res["n_params"] = res["model"].map({"ststnet": 1683, "fmanet": 16400})
    res["flops_per_sample"] = res["model"].map({"ststnet": 679776.0, "fmanet": 2.5e6})
    res.loc[(res["model"] == "fmanet") & (res["fold"] == "s01"), "n_params"] = 7600  # tuned: another model
    res.to_parquet(run_dir / "results.parquet")
    blocks = costs.build(ReportContext(load_run(run_dir), tmp_path / "r", OPTS))
    t = blocks[1]
    row = dict(zip(t.columns, next(r for r in t.rows if r[1] == "STSTNet")))
    assert row["Parameters"] == "1.68 k" and row["FLOPs / sample"] == "679.78 k"
    fm = dict(zip(t.columns, next(r for r in t.rows if r[1] == "FMANet")))  # display names
    assert fm["Parameters"] == "7.60 k–16.40 k" and fm["FLOPs / sample"] == "2.50 M"
    assert "recorded by each unit" in t.caption and len(blocks) == 2
    csv = pd.read_csv(tmp_path / "r" / "tables" / "cost.csv")
    assert int(csv.loc[csv["model"] == "ststnet", "parameters"].iloc[0]) == 1683
    assert int(csv.loc[csv["model"] == "ststnet", "flops_per_sample"].iloc[0]) == 679776


def test_cost_table_of_an_old_run_says_not_recorded(tmp_path):
    """A run directory from before the size columns (with config_hash) rebuilds nothing: "not recorded"."""
    run_dir = fabricate_run(tmp_path, examples=False, aux=False, seeds=(0,), reps=("single_phase",))
    res = pd.read_parquet(run_dir / "results.parquet")
    assert "config_hash" in res.columns and "n_params" not in res.columns
    res["model_params"] = res["model"].map({"ststnet": '{"name": "ststnet"}', "fmanet": '{"name": "fmanet"}'})
    res.to_parquet(run_dir / "results.parquet")
    blocks = costs.build(ReportContext(load_run(run_dir), tmp_path / "r", OPTS))
    t = blocks[1]
    assert all(r[-2:] == ["not recorded", "not recorded"] for r in t.rows)
    assert "were not recorded" in blocks[-1].text and "Rerun the study" in blocks[-1].text


def test_fusion_weights_seed_spread_by_hand(tmp_path):
    run_dir = fabricate_run(tmp_path, examples=False, seeds=(0, 1), reps=("single_phase",), models=("fmanet",))
    aux = dict(np.load(run_dir / "aux.npz"))
    res = pd.read_parquet(run_dir / "results.parquet")
    hashes = res.drop_duplicates("seed").set_index("seed")["cell_hash"]
    for seed, w in ((0, 0.2), (1, 0.6)):  # every sample of seed 0 weighs phase 1 by 0.2, seed 1 by 0.6
        n = len(aux[f"{hashes[seed]}/fusion_weights"])
        aux[f"{hashes[seed]}/fusion_weights"] = np.tile([w, 1 - w], (n, 1)).astype(np.float32)
    np.savez(run_dir / "aux.npz", **aux)
    frame, rows = explanations.seed_spread(ReportContext(load_run(run_dir), tmp_path / "r", OPTS), "fusion_weights")
    f0 = frame[(frame["component"] == 0)]
    assert np.allclose(f0["mean"], 0.4) and np.allclose(f0["sd"], np.std([0.2, 0.6], ddof=1))
    assert (f0["seeds"] == 2).all() and len(rows) == 3  # one row per class
    md = (make_report(run_dir, tmp_path / "rep", OPTS) / "report.md").read_text()
    assert "fusion_weights per true class" in md and "0.400 ± 0.283" in md
