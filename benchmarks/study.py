"""Whole-study cost: wall time, peak memory and where the time goes; and how cost grows with data.

    python -m benchmarks.study [--study ablation_phases] [--scaling [--scaling-cells all]]
                                     [--factors 1 2 4] [--no-study] [--quick]

(a) ``study_cost``: the study run exactly as a user runs it (``python -m bench.run study=NAME``, a
    fresh flow cache, default tracking and report), in a child process. Reported: wall time (start-up
    included), the share of it spent in flow extraction, training, MLflow tracking and reporting (from
    the run's ``run.json`` timings; "other" is interpreter start-up, imports, planning, the
    representations and writing the tables), and peak memory two ways:

    * ``max_rss_mb``: the largest resident set of any one process of the tree (the runner or one
      worker), exact, from ``os.wait4`` (the kernel's RUSAGE_BOTH of the child: its own peak and the
      peaks of every descendant it reaped, i.e. what ``getrusage(RUSAGE_CHILDREN)`` reports);
    * ``peak_tree_mb``: the peak of the *sum* over the live tree (runner + workers), sampled every
      0.25 s from ``/proc`` (Linux) using PSS, which splits shared pages (torch's libraries mapped by
      every worker) between the processes instead of counting them once per process.

(b) ``scaling``: the same kind of run at 1x, 2x, 4x the synthetic sample count (``clips_per_class``;
    subjects, hence folds, fixed), each with its own fresh cache, ``tracking=none report=false``, and
    by default a cheaper cell subset of the main study (one representation, one model: the cost per
    sample of the full grid is a sum of such cells). Reported: time per sample at each size relative
    to 1x, for the whole run, flow extraction and training (target: linear, i.e. ratios ~1.0; the fixed
    start-up cost makes small sizes look dearer per sample).

Nothing here asserts a timing: a shared machine's noise would make that flaky; the numbers are printed
and returned for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# issue 15: the main study with its default three seeds in <= 6 minutes on 2 idle cores, cold cache
TARGETS = {"wall_seconds": 360.0, "peak_mb": 4096.0}
QUICK_DATASET = {"n_subjects": 3, "clips_per_class": 1, "size": 48}
QUICK_OVERRIDES = ["trainer.epochs=1", "flow.size=32", "study.models=[ststnet]",
                   "study.representations=[single_phase,cof]"]
SCALING_CELLS = ["study.representations=[cof]", "study.models=[ststnet]"]


# ---------------------------------------------------------------------------------------- machine


def machine() -> dict:
    """What the numbers were measured on (for docs/performance.md)."""
    info = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_gb"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    info["load_avg"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return info


def format_machine(m: dict) -> str:
    return (f"machine: {m.get('cpu', '?')}, {m['cpus']} cpu(s), {m.get('mem_gb', '?')} GB, {m['platform']}, "
            f"python {m['python']}, torch {m.get('torch', '?')}; load average {m.get('load_avg')}")


# ------------------------------------------------------------------------------- process tree memory


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: parse after the last ')'
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d.name))
    return kids


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    try:  # no smaps_rollup (old kernel, or not permitted): resident pages, shared ones counted per process
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError):
        return 0


def tree_memory_kb(pid: int) -> int:
    """Summed PSS of ``pid`` and all its live descendants (0 when /proc is unavailable)."""
    if not Path("/proc/self/stat").exists():
        return 0
    kids = _children_map()
    todo, total = [pid], 0
    while todo:
        p = todo.pop()
        total += _pss_kb(p)
        todo.extend(kids.get(p, []))
    return total


class _Sampler(threading.Thread):
    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak_kb = pid, interval, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak_kb = max(self.peak_kb, tree_memory_kb(self.pid))
            self.stop.wait(self.interval)


def run_measured(argv: list[str], cwd: Path, log_path: Path, interval: float = 0.25) -> dict:
    """Run ``python -m bench.run ARGV`` in a child; wall time, exit code and peak memory."""
    cmd = [sys.executable, "-m", "bench.run", *argv]
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        sampler = _Sampler(proc.pid, interval)
        sampler.start()
        # wait4, not proc.wait(): it returns the child's rusage, whose ru_maxrss covers its reaped
        # descendants (the worker processes) too, without mixing in earlier children of this process.
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop.set()
        sampler.join()
    # ru_maxrss is in KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return {"cmd": cmd, "returncode": proc.returncode, "wall_seconds": wall,
            "max_rss_mb": usage.ru_maxrss * scale / 2**20, "peak_tree_mb": sampler.peak_kb / 1024,
            "cpu_seconds": usage.ru_utime + usage.ru_stime, "log": str(log_path)}


def _fail(res: dict) -> None:
    tail = Path(res["log"]).read_text()[-3000:]
    raise RuntimeError(f"benchmark run failed (exit {res['returncode']}): {' '.join(res['cmd'])}\n{tail}")


def _dataset_override(params: dict) -> str:
    inner = ", ".join(f"{k}: {v}" for k, v in params.items())
    return f"study.datasets=[{{option: synthetic, label: synthetic, params: {{{inner}}}}}]"


# ----------------------------------------------------------------------------------------- (a)


def study_cost(study: str = "ablation_phases", overrides: list[str] | None = None, *, quick: bool = False,
               workdir: str | Path | None = None, keep: bool = False) -> dict:
    """Run one study from a cold cache as a user would; time, memory and the share of each stage."""
    root = Path(tempfile.mkdtemp(prefix="dualflow-bench-study-", dir=workdir))
    ovs = list(overrides or [])
    if quick:
        ovs = [_dataset_override(QUICK_DATASET), *QUICK_OVERRIDES, *ovs]
    try:
        argv = [f"study={study}", f"paths.runs={root / 'runs'}", f"paths.reports={root / 'reports'}",
                f"paths.cache={root / 'cache'}", "progress=false", *ovs]
        res = run_measured(argv, root, root / "study.log")
        if res["returncode"] != 0:
            _fail(res)
        facts = json.loads((root / "runs" / study / "run.json").read_text())
        t = facts["timings"]
        wall = res["wall_seconds"]
        stages = {"flow": t.get("flow", 0.0), "training": t.get("train", 0.0), "tracking": t.get("tracking", 0.0),
                  "reporting": t.get("report", 0.0)}
        stages["other"] = max(0.0, wall - sum(stages.values()))
        by_model = _unit_seconds_by_model(root / "runs" / study)
        return {
            "study": study, "overrides": ovs, "quick": quick, **{k: res[k] for k in (
                "wall_seconds", "max_rss_mb", "peak_tree_mb", "cpu_seconds", "returncode")},
            "in_process_wall_seconds": facts.get("wall_seconds"), "timings": t,
            "stages_seconds": stages, "shares": {k: v / wall for k, v in stages.items()},
            "units": facts.get("units"), "n_cells": len(facts.get("cells", [])),
            "unit_seconds_by_model": by_model,
            "n_samples": sum(d["n_samples"] for d in facts.get("datasets", {}).values()),
            "targets": TARGETS,
            "target_met": {"wall": wall <= TARGETS["wall_seconds"],
                           "memory": max(res["max_rss_mb"], res["peak_tree_mb"]) <= TARGETS["peak_mb"]},
        }
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _unit_seconds_by_model(run_dir: Path) -> dict[str, float]:
    """Training + prediction seconds summed per model over the units (where training time goes)."""
    import pandas as pd

    res = pd.read_parquet(run_dir / "results.parquet")
    sec = res["train_seconds"].astype(float) + res["predict_seconds"].astype(float) + res["tune_seconds"].astype(float)
    return {str(k): float(v) for k, v in sec.groupby(res["model"]).sum().sort_values(ascending=False).items()}


def format_study_cost(r: dict) -> str:
    s, q = r["stages_seconds"], r["shares"]
    lines = [
        f"study benchmark: {r['study']}{' (quick)' if r['quick'] else ''}: {r['n_cells']} cells, "
        f"{r['units']['total']} units, {r['n_samples']} samples, cold flow cache",
        f"  wall time           {r['wall_seconds']:8.1f} s   (target <= {TARGETS['wall_seconds']:.0f} s: "
        f"{'met' if r['target_met']['wall'] else 'NOT met'}); CPU {r['cpu_seconds']:.1f} s",
        f"  peak memory         {r['max_rss_mb']:8.0f} MB largest process; {r['peak_tree_mb']:.0f} MB whole tree (PSS) "
        f"(target <= {TARGETS['peak_mb']:.0f} MB: {'met' if r['target_met']['memory'] else 'NOT met'})",
    ]
    for k in ("flow", "training", "tracking", "reporting", "other"):
        lines.append(f"  {k:<19s} {s[k]:8.1f} s   {100 * q[k]:5.1f} %")
    by_model = r.get("unit_seconds_by_model") or {}
    if by_model:
        total = sum(by_model.values()) or 1.0
        lines.append("  fit+predict seconds by model (summed over units; workers run in parallel): " + ", ".join(
            f"{m} {v:.0f} s ({100 * v / total:.0f} %)" for m, v in by_model.items()))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- (b)


def scaling(study: str = "ablation_phases", factors: tuple[int, ...] = (1, 2, 4), *, base_clips: int = 4,
            n_subjects: int | None = None, cells: list[str] | None = None, overrides: list[str] | None = None,
            quick: bool = False, workdir: str | Path | None = None) -> dict:
    """Cost per sample at ``factors`` x the synthetic sample count (clips per class; folds fixed)."""
    cells = SCALING_CELLS if cells is None else cells
    extra = list(overrides or [])
    if quick:
        base_clips, n_subjects = 1, n_subjects or 3
        extra = ["trainer.epochs=1", "flow.size=32", *extra]
    rows = []
    for f in factors:
        params = {"clips_per_class": base_clips * f}
        if n_subjects:
            params["n_subjects"] = n_subjects
        if quick:
            params["size"] = 48
        r = study_cost(study, [_dataset_override(params), *cells, "tracking=none", "report=false", *extra],
                       workdir=workdir)
        n = r["n_samples"]
        rows.append({"factor": f, "n_samples": n, "wall_seconds": r["wall_seconds"],
                     "flow_seconds": r["timings"].get("flow", 0.0), "train_seconds": r["timings"].get("train", 0.0),
                     "cpu_seconds": r["cpu_seconds"],
                     "peak_tree_mb": r["peak_tree_mb"]})
    base = rows[0]
    for row in rows:
        for k in ("wall", "flow", "train", "cpu"):
            per = row[f"{k}_seconds"] / row["n_samples"]
            row[f"{k}_per_sample"] = per
            b = base[f"{k}_seconds"] / base["n_samples"]
            row[f"{k}_per_sample_ratio"] = per / b if b > 0 else float("nan")
    return {"study": study, "cells": cells, "overrides": extra, "quick": quick, "rows": rows}


def format_scaling(r: dict) -> str:
    lines = [f"scaling: {r['study']} restricted to {' '.join(r['cells']) or 'all cells'}"
             f"{' (quick)' if r['quick'] else ''}; tracking and report off; fresh cache per size",
             f"  {'size':>5s} {'samples':>8s} {'wall s':>8s} {'flow s':>8s} {'train s':>8s} {'CPU s':>8s}   "
             f"per-sample time vs 1x: {'wall':>6s} {'flow':>6s} {'train':>6s} {'CPU':>6s}  (target ~1.00 = linear)"]
    for row in r["rows"]:
        lines.append(f"  {row['factor']:>4d}x {row['n_samples']:>8d} {row['wall_seconds']:8.1f} "
                     f"{row['flow_seconds']:8.1f} {row['train_seconds']:8.1f} {row['cpu_seconds']:8.1f}   {'':22s} "
                     f"{row['wall_per_sample_ratio']:6.2f} {row['flow_per_sample_ratio']:6.2f} "
                     f"{row['train_per_sample_ratio']:6.2f} {row['cpu_per_sample_ratio']:6.2f}")
    lines.append("  (CPU = the whole process tree's user+system time: the figure least disturbed by other jobs; "
                 "fixed start-up costs make small sizes dearer per sample)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="ablation_phases")
    ap.add_argument("--quick", action="store_true", help="tiny data, one epoch (to check that it runs)")
    ap.add_argument("--scaling", action="store_true", help="also measure 1x/2x/4x sample counts")
    ap.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--scaling-cells", choices=["subset", "all"], default="subset",
                    help="subset: one cheap cell (cof x STSTNet; the grid's cost per sample is a sum of such "
                         "cells); all: the whole study at every size (4x the main study takes ~20 min on 2 cores)")
    ap.add_argument("--no-study", action="store_true", help="skip (a), e.g. to run only --scaling")
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides for the study")
    a = ap.parse_args(argv)
    print(format_machine(machine()), flush=True)
    out = {}
    if not a.no_study:
        out["study"] = study_cost(a.study, a.overrides, quick=a.quick)
        print(format_study_cost(out["study"]), flush=True)
    if a.scaling:
        out["scaling"] = scaling(a.study, tuple(a.factors), overrides=a.overrides, quick=a.quick,
                                 cells=[] if a.scaling_cells == "all" else None)
        print(format_scaling(out["scaling"]), flush=True)
    return out


if __name__ == "__main__":
    main()
