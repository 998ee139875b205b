"""A stand-in for the public MEGC2019 flow releases (no real faces, no real flows), and its timing.

``write_release_fixture(root, layout)`` writes the layout of the HTNet single-phase release
(``layout="htnet"``) or the CausalNet two-phase release (``"causalnet"``) from the official
442-clip / 68-subject sample list (``bench/data/resources/combined_3class_gt.csv``): the sample list
``combined_3_class2_for_optical_flow.csv`` (header ``dataset,sub,filename_o,label,apex,imagename,
sub_filename``, empty apex) and per clip random 28x28 8-bit RGB PNGs named ``"<sub>_<clip> .png"``
(+ ``_1``, ``_2``, ``_3`` for the two-phase layout), each channel min-max stretched to 0..255 as the
releases are. Subjects are written in the releases' styles: ``sub01``, ``s01``, ``006``.

Time a ``megc2019_phases`` run of each model over the five representations on it (two-phase layout,
so every representation runs; tracking and report off, as the study benchmark does), one run per
model so each model's cost is its own, and the whole study's (the sum) per seed and for 3 seeds::

    python -m benchmarks.composite_fixture --time [--models ststnet off_apexnet fmanet] [--workers 2] [--keep DIR]

or only write the fixture: ``python -m benchmarks.composite_fixture --write DIR [--layout htnet]``.
The figures are random pixels, so the scores are at chance: this measures cost, not accuracy.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

SAMPLE_LIST = Path(__file__).resolve().parents[1] / "bench" / "data" / "resources" / "combined_3class_gt.csv"
RELEASE_CSV = "combined_3_class2_for_optical_flow.csv"
RELEASE_DIR = "datasets/STSNet_whole_norm_u_v_os"
HEADER = ("dataset", "sub", "filename_o", "label", "apex", "imagename", "sub_filename")
LAYOUTS = {"htnet": ("",), "causalnet": ("", "_1", "_2", "_3")}
# A 12-clip, 6-subject corner of the composite for tests: every source, every class, the three
# subject styles, and a base name ending in _1 (007_3_1, whose apex->offset file is 007_007_3_1_1 .png).
TINY_ROWS = (
    ("casme2", "sub01", "EP02_01f", 1), ("casme2", "sub01", "EP19_05f", 0),
    ("casme2", "sub02", "EP01_11f", 0), ("casme2", "sub02", "EP03_02", 2),
    ("smic", "s01", "s01_ne_01", 0), ("smic", "s01", "s01_po_01", 1),
    ("smic", "s02", "s02_sur_01", 2), ("smic", "s02", "s02_ne_02", 0),
    ("samm", "006", "006_1_2", 0), ("samm", "006", "006_1_3", 1),
    ("samm", "007", "007_3_1", 2), ("samm", "007", "007_5_3", 0),
)


def release_subject(database: str, subject: str) -> str:
    """The releases' subject style: casme2 ``sub01``, smic ``s01``, samm ``006`` (leading zeros kept)."""
    s = str(subject).strip()
    if database == "samm" and s.isdigit():
        return f"{int(s):03d}"
    return s


def official_rows() -> list[tuple[str, str, str, int]]:
    """(database, subject in the release style, clip, label) of the official 442-clip list."""
    with open(SAMPLE_LIST, newline="") as f:
        return [(d, release_subject(d, s), c, int(l)) for d, s, c, l in csv.reader(f)]


def write_png(path: Path, rgb: np.ndarray) -> None:
    """An (H, W, 3) uint8 RGB image at ``path`` (any name: spaces included)."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"cannot encode {path}")
    buf.tofile(str(path))


def random_release_image(rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """Random (size, size, 3) uint8 with every channel min-max stretched to 0..255, like the releases."""
    x = rng.random((size, size, 3))
    lo, hi = x.min(axis=(0, 1)), x.max(axis=(0, 1))
    return np.round((x - lo) / (hi - lo) * 255).astype(np.uint8)


def write_release_csv(root: Path, rows: Iterable[Sequence]) -> Path:
    """The releases' sample list for rows ``(database, sub, clip, label)``; apex left empty."""
    p = Path(root) / RELEASE_CSV
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for d, s, c, lab in rows:
            w.writerow([d, s, c, int(lab), "", f"{c}.png", f"{s}_{c}"])
    return p


def write_release_fixture(root: str | Path, layout: str = "htnet", rows: Sequence[Sequence] | None = None,
                          size: int = 28, seed: int = 0) -> Path:
    """Write a release-layout fixture under ``root`` (see the module docstring); returns ``root``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    root = Path(root)
    rows = official_rows() if rows is None else [tuple(r) for r in rows]
    folder = root / RELEASE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for _, s, c, _ in rows:
        for suffix in LAYOUTS[layout]:
            write_png(folder / f"{s}_{c}{suffix} .png", random_release_image(rng, size))
    write_release_csv(root, rows)
    return root


MODELS = ("ststnet", "off_apexnet", "fmanet")


def time_study(root: Path, workers: int, extra: Sequence[str] = (), model: str = "ststnet") -> dict:
    """Wall and CPU seconds of ``megc2019_phases`` × ``model`` × the five representations on ``root``."""
    runs = Path(tempfile.mkdtemp(prefix="megc_runs_"))
    cmd = [sys.executable, "-m", "bench.run", "study=megc2019_phases", "dataset=megc2019_causalnet",
           f"dataset.root={root}", f"study.models=[{model}]", "study.seeds=[0]", "tracking=none", "report=false", "progress=false",
           f"executor.workers={workers}", f"paths.runs={runs}", f"paths.cache={runs / 'cache'}", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, "cpu_s": cpu, "command": " ".join(cmd), "stdout": proc.stdout,
            "load_before": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.composite_fixture", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", metavar="DIR", help="write the fixture to DIR and stop")
    ap.add_argument("--layout", choices=sorted(LAYOUTS), default="causalnet")
    ap.add_argument("--time", action="store_true", help="time megc2019_phases x each model x 5 representations")
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="models to time, one run each")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", metavar="DIR", help="write the timing fixture here (default: a temporary folder)")
    ap.add_argument("extra", nargs="*", help="more bench.run overrides for --time (e.g. trainer.epochs=10)")
    a = ap.parse_args(argv)
    if a.write:
        write_release_fixture(a.write, a.layout)
        print(f"{a.layout} fixture (442 clips, 68 subjects) written to {a.write}")
        return 0
    if not a.time:
        ap.print_help()
        return 2
    root = Path(a.keep or tempfile.mkdtemp(prefix="megc_fixture_"))
    t0 = time.perf_counter()
    write_release_fixture(root, "causalnet")
    print(f"fixture: {root} ({time.perf_counter() - t0:.1f} s to write)")
    total = {"wall_s": 0.0, "cpu_s": 0.0}
    for model in a.models:
        load = os.getloadavg()
        r = time_study(root, a.workers, a.extra, model)
        print(r["stdout"])
        print(f"megc2019_phases, {model} x 5 representations, 68 LOSO folds, {a.workers} workers: "
              f"wall {r['wall_s']:.0f} s, CPU {r['cpu_s']:.0f} s; load average before the run "
              f"{load[0]:.1f} on {os.cpu_count()} cores (a busy machine makes the wall time longer)")
        print(f"command: {r['command']}", flush=True)
        total = {k: total[k] + r[k] for k in total}
    print(f"all {len(a.models)} models, one seed: wall {total['wall_s']:.0f} s, CPU {total['cpu_s']:.0f} s; "
          f"3 seeds ~ wall {3 * total['wall_s'] / 60:.0f} min, CPU {3 * total['cpu_s'] / 60:.0f} min "
          f"(x3 of one seed; target: 3 seeds <= 90 min wall on 2 idle cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
