"""``python -m benchmarks.audit``: the off/on ratio is computed and printed (no timing asserts)."""

from __future__ import annotations

import pytest

from benchmarks import audit as audit_bench


def test_ratio_lines():
    run = {"wall_seconds": 100.0, "cpu_seconds": 150.0, "max_rss_mb": 800.0, "train_seconds": 80.0,
           "audit_predict_seconds": 0.0, "units": 12}
    on = {**run, "wall_seconds": 110.0, "cpu_seconds": 156.0, "audit_predict_seconds": 2.5}
    r = {"study": "leakage_audit", "quick": False, "repeats": 1, "median": {"off": run, "on": on},
         "wall_ratio": 1.1, "cpu_ratio": 1.04, "target": audit_bench.TARGET, "machine": {"load_avg": [1.0, 1.0, 1.0]}}
    text = audit_bench.format_result(r)
    assert "ratio x1.100 (target <= 1.25: met)" in text and "ratio x1.040" in text
    assert "per-epoch test predictions: 2.5 s" in text


@pytest.mark.slow
def test_quick_benchmark_runs(tmp_path, capsys):
    r = audit_bench.main(["--quick", "--json", str(tmp_path / "a.json")])
    assert r["median"]["on"]["audit_predict_seconds"] > 0 == r["median"]["off"]["audit_predict_seconds"]
    assert r["wall_ratio"] > 0 and "audit benchmark: leakage_audit (quick)" in capsys.readouterr().out
