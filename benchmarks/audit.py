"""What the leakage audit costs: a study's wall time with ``audit=false`` vs ``audit=true``, same run.

    python -m benchmarks.audit [--study leakage_audit] [--repeats 1] [--quick] [--json out.json] [--on grid]

Both runs go through ``python -m bench.run`` in a child process, as a user runs the study (tracking
and report included), each in its own fresh run directory, sharing one flow cache that a first,
cheap run (one model, one seed, one epoch) has filled, so neither pays for the flows. With
``--repeats N`` the off/on pair is run N times, alternating which goes first, and the medians are
compared. Reported: the wall-time ratio on/off (target <= 1.25), the CPU-time ratio (steadier on a
shared machine), and, from the audited run's unit records, the seconds spent predicting the test
folds once per epoch. ``--on grid`` measures ``audit=grid`` instead (the per-epoch predictions plus
one extra inner-validation fit per unit, for the configuration shortcut's honest pick; no target).
Nothing asserts a timing; the figures go into docs/audit.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

from benchmarks import study as study_bench

TARGET = 1.25
QUICK = [study_bench._dataset_override(study_bench.QUICK_DATASET), "trainer.epochs=3", "flow.size=32",
         "study.seeds=[0]"]


def _run(study: str, root: Path, name: str, ovs: list[str], cache: Path) -> dict:
    argv = [f"study={study}", f"paths.runs={root / name / 'runs'}", f"paths.reports={root / name / 'reports'}",
            f"paths.cache={cache}", "progress=false", *ovs]
    res = study_bench.run_measured(argv, root, root / f"{name}.log")
    if res["returncode"] != 0:
        study_bench._fail(res)
    run_dir = root / name / "runs" / study
    audit_s = 0.0
    for p in (run_dir / "units").glob("*.json"):
        audit_s += float((json.loads(p.read_text()).get("audit") or {}).get("seconds", 0.0))
    facts = json.loads((run_dir / "run.json").read_text())
    return {"wall_seconds": res["wall_seconds"], "cpu_seconds": res["cpu_seconds"], "max_rss_mb": res["max_rss_mb"],
            "train_seconds": facts["timings"].get("train", 0.0), "audit_predict_seconds": audit_s,
            "units": facts["units"]["total"]}


def measure(study: str = "leakage_audit", repeats: int = 1, *, quick: bool = False,
            overrides: list[str] | None = None, workdir: str | Path | None = None,
            cache: str | Path | None = None, on: str = "true") -> dict:
    """Off/on pairs of one study (see the module docstring); medians and their ratios.

    ``cache``: an existing flow cache to reuse (it is read and completed, never cleared); by default
    a fresh one that a cheap first run fills."""
    root = Path(tempfile.mkdtemp(prefix="dualflow-bench-audit-", dir=workdir))
    ovs = [*(QUICK if quick else []), *(overrides or [])]
    flow_cache = Path(cache) if cache else root / "cache"
    try:
        # fill the flow cache once, cheaply (flows depend on the data and the flow settings only)
        _run(study, root, "warmup", [*ovs, "study.models=[ststnet]", "study.seeds=[0]", "trainer.epochs=1",
                                     "tracking=none", "report=false", "audit=false"], flow_cache)
        runs: dict[str, list[dict]] = {"off": [], "on": []}
        for i in range(repeats):
            for mode in (("off", "on") if i % 2 == 0 else ("on", "off")):
                flag = f"audit={on if mode == 'on' else 'false'}"
                runs[mode].append(_run(study, root, f"{mode}{i}", [*ovs, flag], flow_cache))
        med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in runs.items()}
        return {"study": study, "quick": quick, "repeats": repeats, "overrides": ovs, "runs": runs, "median": med, "on": on,
                "wall_ratio": med["on"]["wall_seconds"] / med["off"]["wall_seconds"],
                "cpu_ratio": med["on"]["cpu_seconds"] / med["off"]["cpu_seconds"],
                "target": TARGET, "machine": study_bench.machine()}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def format_result(r: dict) -> str:
    off, on, flag = r["median"]["off"], r["median"]["on"], r.get("on", "true")
    return "\n".join([
        f"audit benchmark: {r['study']}{' (quick)' if r['quick'] else ''}, {on['units']:.0f} units, "
        f"{r['repeats']} off/on pair(s), warm flow cache; load average {r['machine'].get('load_avg')}",
        f"  wall  audit=false {off['wall_seconds']:7.1f} s   audit={flag} {on['wall_seconds']:7.1f} s   "
        f"ratio x{r['wall_ratio']:.3f} " + (f"(target <= {r['target']:.2f}: "
                                            f"{'met' if r['wall_ratio'] <= r['target'] else 'NOT met'})"
                                            if flag == "true" else "(audit=grid: no target)"),
        f"  CPU   audit=false {off['cpu_seconds']:7.1f} s   audit={flag} {on['cpu_seconds']:7.1f} s   "
        f"ratio x{r['cpu_ratio']:.3f}",
        f"  the audit's per-epoch test predictions: {on['audit_predict_seconds']:.1f} s summed over units "
        f"(training {on['train_seconds']:.1f} s wall); peak RSS {off['max_rss_mb']:.0f} -> {on['max_rss_mb']:.0f} MB",
    ])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.audit", description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", default="leakage_audit")
    ap.add_argument("--repeats", type=int, default=1, help="off/on pairs, alternating the order (medians compared)")
    ap.add_argument("--quick", action="store_true", help="a tiny dataset and 3 epochs: seconds, to check it runs")
    ap.add_argument("--json", default=None, help="also write every number to this JSON file")
    ap.add_argument("--cache", default=None, help="reuse this flow cache (default: a fresh one, filled first)")
    ap.add_argument("--on", default="true", choices=("true", "grid"),
                    help="the audit value measured against audit=false (grid: also the inner-validation fits)")
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides for every run")
    a = ap.parse_args(argv)
    if a.repeats < 1:
        ap.error("--repeats must be at least 1")
    r = measure(a.study, a.repeats, quick=a.quick, overrides=a.overrides, cache=a.cache, on=a.on)
    print(format_result(r), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2, default=str))
    return r


if __name__ == "__main__":
    main()
