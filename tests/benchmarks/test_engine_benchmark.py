"""The engine benchmark executes and reports every timing and ratio (no timing assertions)."""

from __future__ import annotations

import math

from benchmarks import engine as bench_engine


def test_benchmark_run_returns_every_key():
    r = bench_engine.run("ststnet", n=12, size=16, epochs=1, batch_size=4, repeats=1, threads=None)
    for k in ("engine", "bare", "files_loader", "tensor_loader"):
        assert r[f"{k}_s"] > 0 and r[f"{k}_cpu_s"] >= 0
    for k in ("engine_vs_bare", "speedup_vs_files_loader", "speedup_vs_tensor_loader"):
        assert math.isfinite(r[k]) and math.isfinite(r[k + "_cpu"])
    assert isinstance(r["target_engine_vs_bare_met"], bool)


def test_benchmark_main_prints_ratios(capsys):
    rows = bench_engine.main(["--models", "ststnet", "--n", "8", "--size", "16", "--epochs", "1",
                              "--repeats", "1", "--threads", "0"])
    out = capsys.readouterr().out
    assert len(rows) == 1 and "engine/bare" in out and "ststnet" in out


def test_benchmark_changes_reports_a_ratio_per_change():
    rows = bench_engine.changes(n=12, size=28, epochs=1, repeats=1)
    assert [r["change"] for r in rows] == ["ststnet_one_stream", "resnet10t_trim", "no_nan_fill", "resnet10t_half"]
    assert all(r["old_cpu_s"] > 0 and r["new_cpu_s"] > 0 and math.isfinite(r["ratio"]) for r in rows)
    import torch

    assert torch.utils.deterministic.fill_uninitialized_memory is True  # the NaN-fill baseline left no trace
