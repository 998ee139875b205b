"""Flow extraction speed: pipeline vs a bare OpenCV loop, 1 vs N workers, cached vs uncached.

    python -m benchmarks.flow [--samples 24] [--workers 2] [--backend tvl1] [--size 112]

On the same frames (textured PNGs written to a temporary folder), measured in one run:

(a) ``compute_flows`` (crop none, no cache) / a bare loop of ``cv2.imread`` + ``cv2.resize`` + the
    backend's two ``calc`` calls (target <= 1.10); also with cache writing;
(b) 1 worker / N workers (speed-up; pool start-up included, so small sample counts understate it);
(c) uncached run / cached rerun (target >= 50).

Both sides run OpenCV single-threaded (the pipeline always does, see ``compute_flows``), so the
ratios compare like with like. Timings are the best of ``repeats``. No assertion: a shared machine's
noise would make a timed test flaky; ``run()`` returns the numbers for aggregation.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from bench.data.table import SampleTable
from bench.flow import compute_flows, create_backend


def make_frames(root: Path, n_samples: int, frame_size: int, seed: int = 0) -> SampleTable:
    """``n_samples`` clips of 3 frames: a smooth texture moved by small sub-pixel shifts."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_samples):
        pad = 16
        base = cv2.GaussianBlur(rng.normal(size=(frame_size + 2 * pad,) * 2), (0, 0), 2.0)
        base = (base - base.min()) / (base.max() - base.min()) * 220 + 20
        d = root / f"s{s:03d}"
        d.mkdir(parents=True)
        for k, (dx, dy) in enumerate([(0, 0), tuple(rng.uniform(-1, 1, 2)), tuple(rng.uniform(-1, 1, 2))], 1):
            m = np.float64([[1, 0, dx], [0, 1, dy]])
            img = cv2.warpAffine(base, m, base.shape[::-1], flags=cv2.INTER_CUBIC)[pad:-pad, pad:-pad]
            cv2.imwrite(str(d / f"{k}.png"), np.clip(np.round(img), 0, 255).astype(np.uint8))
        rows.append(dict(dataset="bench", subject=f"s{s:03d}", clip="c", onset=1, apex=2, offset=3, label=0,
                         frame_template=str(d / "{frame}.png")))
    return SampleTable(pd.DataFrame(rows), ["x"], "bench", source=str(root))


def bare_loop(table: SampleTable, backend: str, backend_params: dict, size: int) -> np.ndarray:
    """What a user would write by hand: read, resize, two calc calls per sample."""
    be = create_backend(backend, **backend_params)
    out = np.empty((len(table), 2, 2, size, size), np.float32)
    for i in range(len(table)):
        frames = []
        for p in table.key_frame_paths(i):
            g = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            frames.append(cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA))
        out[i, 0] = be(frames[0], frames[1])
        out[i, 1] = be(frames[1], frames[2])
    return out


def _best(fn, repeats: int) -> tuple[float, Any]:
    best, res = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t)
    return best, res


def run(n_samples: int = 24, workers: int = 2, backend: str = "tvl1", backend_params: dict | None = None,
        size: int = 112, frame_size: int = 160, repeats: int = 1, workdir: str | Path | None = None) -> dict:
    """Measure (a), (b), (c) once; return timings (s) and ratios."""
    params = dict(backend_params or {})
    root = Path(tempfile.mkdtemp(prefix="dualflow-bench-flow-", dir=workdir))
    prev_threads = cv2.getNumThreads()
    try:
        table = make_frames(root / "frames", n_samples, frame_size)
        common = dict(backend=backend, backend_params=params, crop={"method": "none"}, size=size, progress=False)
        cv2.setNumThreads(1)
        bare_loop(SampleTable(table.df.iloc[:1], table.classes, "warm-up"), backend, params, size)  # warm caches
        t_bare, ref = _best(lambda: bare_loop(table, backend, params, size), repeats)
        cv2.setNumThreads(prev_threads)
        t_pipe, fs = _best(lambda: compute_flows(table, cache_dir=None, workers=1, **common), repeats)
        same = bool(np.array_equal(ref, fs.flows))
        t_par, fs_par = _best(lambda: compute_flows(table, cache_dir=None, workers=workers, **common), repeats)
        cache_runs = []

        def uncached():
            d = root / f"cache{len(cache_runs)}"
            cache_runs.append(d)
            return compute_flows(table, cache_dir=d, workers=1, **common)

        t_uncached, _ = _best(uncached, repeats)
        t_cached, fs_cached = _best(lambda: compute_flows(table, cache_dir=cache_runs[-1], workers=1, **common), repeats)
        assert fs_cached.stats["hits"] == n_samples
        return {
            "n_samples": n_samples, "backend": backend, "size": size, "frame_size": frame_size,
            "workers": workers, "repeats": repeats,
            "seconds": {"bare_loop": t_bare, "pipeline": t_pipe, "pipeline_parallel": t_par,
                        "pipeline_uncached_with_cache_write": t_uncached, "pipeline_cached": t_cached},
            "ratios": {
                "pipeline_over_bare": t_pipe / t_bare,
                "pipeline_with_cache_write_over_bare": t_uncached / t_bare,
                "speedup_parallel": t_pipe / t_par,
                "cached_speedup": t_uncached / t_cached,
            },
            "targets": {"pipeline_over_bare": "<= 1.10", "cached_speedup": ">= 50"},
            "identical_to_bare_loop": same,
            "parallel_identical": bool(np.array_equal(fs.flows, fs_par.flows)),
        }
    finally:
        cv2.setNumThreads(prev_threads)
        shutil.rmtree(root, ignore_errors=True)


def format_result(r: dict) -> str:
    s, q = r["seconds"], r["ratios"]
    lines = [
        f"flow benchmark: {r['n_samples']} samples, {r['backend']}, {r['frame_size']}px frames -> {r['size']}px, "
        f"best of {r['repeats']}",
        f"  bare cv2 loop             {s['bare_loop']:8.3f} s",
        f"  pipeline (no cache)       {s['pipeline']:8.3f} s   x{q['pipeline_over_bare']:.3f} of bare (target <= 1.10)",
        f"  pipeline (+cache write)   {s['pipeline_uncached_with_cache_write']:8.3f} s   "
        f"x{q['pipeline_with_cache_write_over_bare']:.3f} of bare",
        f"  pipeline, {r['workers']} workers       {s['pipeline_parallel']:8.3f} s   speed-up x{q['speedup_parallel']:.2f}",
        f"  cached rerun              {s['pipeline_cached']:8.4f} s   x{q['cached_speedup']:.0f} faster (target >= 50)",
        f"  identical to bare loop: {r['identical_to_bare_loop']}; parallel identical: {r['parallel_identical']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backend", default="tvl1")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--frame-size", type=int, default=160)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    r = run(a.samples, a.workers, a.backend, None, a.size, a.frame_size, a.repeats)
    print(format_result(r))
    return r


if __name__ == "__main__":
    main()
