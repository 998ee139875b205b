"""``python -m benchmarks --quick`` executes each piece and prints its ratios (no timing asserts:
the numbers of a shared machine are noise at these sizes; the point is that the suite runs)."""

from __future__ import annotations

import json
import sys

import pytest

from benchmarks import study as study_bench
from benchmarks.__main__ import main


def test_quick_flow_and_engine_print_every_ratio(tmp_path, capsys):
    out = main(["--quick", "--only", "flow", "engine", "--json", str(tmp_path / "b.json")])
    text = capsys.readouterr().out
    assert text.startswith("machine: ") and "load average" in text
    for fragment in ("of bare (target <= 1.10)", "speed-up x", "faster (target >= 50)", "engine/bare",
                     "files/engine", "benchmarks done"):
        assert fragment in text, fragment
    assert out["flow"]["identical_to_bare_loop"] and out["flow"]["parallel_identical"]
    assert {"engine_vs_bare_cpu", "speedup_vs_files_loader_cpu"} <= set(out["engine"][0])
    saved = json.loads((tmp_path / "b.json").read_text())
    assert set(saved) >= {"machine_before", "flow", "engine", "machine_after"} and "study" not in saved


def test_tree_memory_of_this_process_is_measured():
    import os

    kb = study_bench.tree_memory_kb(os.getpid())
    assert kb > 10_000  # a Python process with numpy and torch loaded holds far more than 10 MB


def test_measured_child_reports_exit_code_and_peak(tmp_path):
    res = study_bench.run_measured(["--help"], tmp_path, tmp_path / "log.txt")
    assert res["returncode"] == 0 and res["max_rss_mb"] > 5 and res["wall_seconds"] > 0
    assert "usage: python -m bench.run" in (tmp_path / "log.txt").read_text()


@pytest.mark.slow
def test_quick_study_and_scaling_run(capsys):
    out = main(["--quick", "--only", "study", "scaling"])
    text = capsys.readouterr().out
    st = out["study"]
    assert st["returncode"] == 0 and st["units"]["failed"] == 0
    assert abs(sum(st["shares"].values()) - 1) < 1e-6 or st["stages_seconds"]["other"] == 0
    assert "peak memory" in text and "per-sample time vs 1x" in text
    rows = out["scaling"]["rows"]
    assert [r["n_samples"] for r in rows] == [9, 18, 36]
    assert sys.platform != "linux" or st["peak_tree_mb"] > 0
