"""Issue 16's report pieces: learning curves from the unit histories, model size in the cost table,
and the seed spread of FMANet's fusion weights per class."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.report import ReportOptions, make_report
from bench.report.context import ReportContext
from bench.report.load import load_run
from bench.report.sections import costs, explanations, learning_curves
from test_report_e2e import fabricate_run

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
    blocks = learning_curves.build(ReportContext(run, tmp_path / "r", OPTS))
    text = " ".join(getattr(b, "text", "") for b in blocks)
    assert "only the training loss" in text
    frame = learning_curves.curves(ReportContext(run, tmp_path / "r2", OPTS))
    assert "val_loss" not in frame.columns


def test_no_histories_no_section(tmp_path):
    run = load_run(fabricate_run(tmp_path, examples=False, aux=False, seeds=(0,)))
    assert run.histories.empty
    assert learning_curves.build(ReportContext(run, tmp_path / "r", OPTS)) == []


def test_cost_table_gives_parameters_and_flops_by_hand(tmp_path):
    run_dir = fabricate_run(tmp_path, examples=False, aux=False, seeds=(0,), reps=("single_phase",),
                            models=("ststnet", "fmanet"))
    res = pd.read_parquet(run_dir / "results.parquet")
    res["model_params"] = res["model"].map({"ststnet": '{"name": "ststnet"}', "fmanet": '{"name": "fmanet"}'})
    res["rep_params"] = '{"name": "single_phase", "size": 28}'
    res.to_parquet(run_dir / "results.parquet")
    blocks = costs.build(ReportContext(load_run(run_dir), tmp_path / "r", OPTS))
    t = blocks[1]
    row = dict(zip(t.columns, next(r for r in t.rows if r[1] == "ststnet")))
    # STSTNet on (u1, v1, m1): 3 convs 3->3/5/8 (3x3, bias) + BN + fc 400->3
    n = (3 * 3 * 9 + 3 + 6) + (3 * 5 * 9 + 5 + 10) + (3 * 8 * 9 + 8 + 16) + (400 * 3 + 3)
    flops = 2 * 28 * 28 * 9 * 3 * 16 + 2 * 400 * 3
    assert n == 1683 and row["Parameters"] == "1.68 k"
    assert row["FLOPs / sample"] == f"{flops / 1e3:.2f} k"
    csv = pd.read_csv(tmp_path / "r" / "tables" / "cost.csv")
    assert int(csv.loc[csv["model"] == "ststnet", "parameters"].iloc[0]) == n
    assert int(csv.loc[csv["model"] == "ststnet", "flops_per_sample"].iloc[0]) == flops
    # a model that cannot be rebuilt for its input (fmanet streams=both on 3 channels) is named, not fatal
    fm = dict(zip(t.columns, next(r for r in t.rows if r[1] == "fmanet")))
    assert fm["Parameters"] == "not rebuilt"
    assert "two-phase stack" in blocks[-1].text


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
