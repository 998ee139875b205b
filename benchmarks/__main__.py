"""``python -m benchmarks``: every speed figure of the suite, each against a baseline measured
in the same run, with the machine and its load printed alongside.

    python -m benchmarks [--quick] [--only flow engine study scaling roofline] [--json results.json]

* flow     — ``compute_flows`` vs a bare OpenCV loop on the same frames (target <= 1.10x), 1 vs 2
             workers (near-linear), cached rerun vs uncached (>= 50x)      [benchmarks.flow]
* engine   — ``bench.training.engine.fit`` vs a bare PyTorch loop on preloaded tensors (<= 1.10x) and vs an
             HTNet-style loop reading image files through a DataLoader every epoch (>= 3x)
                                                                           [benchmarks.engine]
* study    — the whole default ``ablation_phases`` study: wall time and peak memory on this machine
             (targets: < 5 min, < 4 GB) and the share spent in flow, training, tracking, reporting
* scaling  — the main study's data at 1x, 2x, 4x the synthetic sample count (target: linear)
                                                                           [benchmarks.study]
* roofline — each composite model's training step vs its own floor (GEMMs / convolutions replayed
             alone + the optimizer's bytes at the measured bandwidth; target <= 1.5x)
                                                                           [benchmarks.roofline]

``--quick`` shrinks every piece to seconds (to check that the suite runs; its numbers mean little).
A full run takes many minutes on 2 cores. Nothing asserts a timing (a shared machine is noisy); the
figures go into docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

from benchmarks import study as study_bench

PIECES = ("flow", "engine", "study", "scaling", "roofline")


def _flow(quick: bool) -> dict:
    from benchmarks import flow

    r = flow.run(n_samples=4 if quick else 24, workers=2, size=32 if quick else 112,
                 frame_size=48 if quick else 160, repeats=1 if quick else 3)
    print(flow.format_result(r), flush=True)
    return r


def _engine(quick: bool) -> list[dict]:
    from benchmarks import engine

    argv = ["--models", "ststnet", "--n", "32", "--epochs", "2", "--repeats", "1"] if quick else []
    return engine.main(argv)


def _study(quick: bool) -> dict:
    r = study_bench.study_cost("ablation_phases", quick=quick)
    print(study_bench.format_study_cost(r), flush=True)
    return r


def _scaling(quick: bool) -> dict:
    r = study_bench.scaling("ablation_phases", (1, 2, 4), quick=quick)
    print(study_bench.format_scaling(r), flush=True)
    return r


def _roofline(quick: bool) -> list[dict]:
    from benchmarks import roofline

    argv = ["--models", "ststnet", "--steps-per-epoch", "2", "--epochs", "1", "--repeats", "1",
            "--profile-steps", "2"] if quick else []
    return roofline.main(argv)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: seconds, to check that everything runs")
    ap.add_argument("--only", nargs="+", choices=PIECES, default=list(PIECES), metavar="PIECE",
                    help=f"run only these pieces ({', '.join(PIECES)})")
    ap.add_argument("--json", default=None, help="also write every number to this JSON file")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out: dict = {"machine_before": study_bench.machine(), "quick": a.quick}
    print(study_bench.format_machine(out["machine_before"]), flush=True)
    runners = {"flow": _flow, "engine": _engine, "study": _study, "scaling": _scaling, "roofline": _roofline}
    t0 = time.perf_counter()
    for piece in PIECES:
        if piece in a.only:
            print(f"\n== {piece} ==", flush=True)
            out[piece] = runners[piece](a.quick)
    out["machine_after"] = study_bench.machine()
    out["seconds"] = time.perf_counter() - t0
    print(f"\nbenchmarks done in {out['seconds']:.0f} s; load average now {out['machine_after']['load_avg']} "
          f"(other jobs on the machine inflate wall times; the engine's CPU-time ratios are the stable ones)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2, default=str)
    return out


if __name__ == "__main__":  # the flow pool's forkserver/spawn workers re-import __main__
    main()
