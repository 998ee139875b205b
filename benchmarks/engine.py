"""Training-engine speed, as ratios measured in one run: ``python -m benchmarks.engine``.

Same model (same initial weights), same preloaded data, same optimizer, epochs and batch size:

(a) ``engine``        — ``bench.training.engine.fit`` (default TrainConfig apart from epochs/batch/device);
(b) ``bare``          — a bare PyTorch loop slicing the same device tensors by a seeded permutation,
                        with the engine's optimizer kernel (fused Adam) and memory format, so the
                        ratio is the engine's own overhead (target: engine / bare <= 1.10);
(c) ``files_loader``  — the per-fold loop of public MER code: a ``Dataset`` that reads each sample's
                        representation image (PNG; ``.npy`` when C != 3) from disk in
                        ``__getitem__``, a ``DataLoader(shuffle=True)`` re-reading every file every
                        epoch, ``loss.item()`` per batch, PyTorch's default Adam and NCHW tensors as
                        public code has them (target: files_loader / engine >= 3). Part of this ratio
                        is therefore the engine's fused optimizer and memory-format choice, not I/O;
                        ``bare_default`` (below) separates the two;
(d) ``tensor_loader`` — for reference: ``DataLoader(TensorDataset(...))`` over tensors loaded once per
                        fold, which is what HTNet's released script does (its files are read once per
                        fold, not per epoch); this isolates the DataLoader's per-sample collation.

``--changes`` instead prints what each speed change of issue 15 buys (``changes``): the one-stream
NHWC STSTNet vs its three NCHW streams, ResNet-10-T with vs without trimmed padding taps, the
deterministic mode without vs with its NaN fill and the half-width ResNet-10-T vs the full one, each as new / old CPU time of one fold-sized fit.

Each method is timed ``repeats`` times interleaved and the minimum is reported (noise only ever
adds time), both as wall-clock and as this process's CPU time (``time.process_time``). On a
machine shared with other jobs the CPU-time ratios are the stable ones (wall time swings by 50%
under contention); with ``num_workers > 0`` only wall time counts the loader workers' work.
Only training is timed: per-epoch evaluation on the test subject, as HTNet's script does, is model
selection on the test set and has no place in a fair loop.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from bench.training.engine import TrainConfig, _make_optimizer, fit, memory_format_for, resolve_device, seed_everything


def _synthetic(n: int, c: int, size: int, n_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow-like maps in [0, 1] with a class-dependent blob (the content does not matter for speed)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    x = torch.rand(n, c, size, size, generator=g) * 0.3
    for k in range(n_classes):
        r = (k * size) // n_classes
        x[y == k, :, r : r + max(2, size // (n_classes + 1)), size // 4 : size // 2] += 0.6
    return x.clamp(0, 1), y


class _FileDataset(Dataset):
    """One file per sample, decoded in ``__getitem__`` (the HTNet-style per-epoch read)."""

    def __init__(self, paths: list[str], labels: list[int]):
        self.paths, self.labels = paths, labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        p = self.paths[i]
        if p.endswith(".png"):
            import cv2

            img = cv2.imread(p, cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f"cannot read image {p}")
            arr = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
            t = torch.from_numpy(arr).permute(2, 0, 1)
        else:
            t = torch.from_numpy(np.load(p))
        return t, self.labels[i]


def _write_files(x: torch.Tensor, y: torch.Tensor, folder: Path) -> list[str]:
    import cv2

    paths = []
    for i in range(x.shape[0]):
        if x.shape[1] == 3:
            p = folder / f"s{i:05d}.png"
            img = (x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            if not cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot write {p}")
        else:
            p = folder / f"s{i:05d}.npy"
            np.save(p, x[i].numpy())
        paths.append(str(p))
    return paths


def _default_adam(model, lr, weight_decay):
    """PyTorch's default Adam, as public MER code builds it."""
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)


def _bare_loop(model, x, y, epochs, batch_size, seed, make_opt, fmt=torch.contiguous_format):
    model.to(memory_format=fmt)
    x = x.contiguous(memory_format=fmt)
    opt = make_opt(model)
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g).to(x.device)
        for a in range(0, n, batch_size):
            idx = perm[a : a + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()


def _loader_loop(model, loader, device, epochs, lr, weight_decay):
    opt = _default_adam(model, lr, weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        running = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            running += loss.item() * xb.shape[0]  # per-batch host sync, as in the public scripts


def run(model: str = "ststnet", n: int = 130, size: int = 28, in_chans: int | None = None, n_classes: int = 3,
        epochs: int = 10, batch_size: int = 32, repeats: int = 3, device: str = "cpu", threads: int | None = 1,
        num_workers: int = 0, seed: int = 0, model_params: dict | None = None) -> dict:
    """Time (a)-(d) for one model; returns seconds per method and the ratios."""
    from models import create_model

    if threads:
        torch.set_num_threads(threads)
    if in_chans is None:
        in_chans = 6 if model == "fmanet" else 3
    dev = resolve_device(device)
    x, y = _synthetic(n, in_chans, size, n_classes, seed)
    seed_everything(seed)
    template = create_model(model, in_chans, n_classes, **(model_params or {}))
    init_state = copy.deepcopy(template.state_dict())
    lr, wd = 1e-3, 1e-4
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=wd, device=str(dev), seed=seed)

    def fresh() -> nn.Module:
        m = copy.deepcopy(template)
        m.load_state_dict(init_state)
        return m.to(dev)

    methods = ("engine", "bare", "files_loader", "tensor_loader", "bare_default")
    fmt = memory_format_for(template, cfg.memory_format)
    times: dict[str, list[float]] = {k: [] for k in methods}
    cpu: dict[str, list[float]] = {k: [] for k in methods}

    def timed(key: str, fn) -> None:
        w, c = time.perf_counter(), time.process_time()
        fn()
        times[key].append(time.perf_counter() - w)
        cpu[key].append(time.process_time() - c)

    with tempfile.TemporaryDirectory(prefix="dualflow_bench_engine_") as tmp:
        paths = _write_files(x, y, Path(tmp))
        files_ds = _FileDataset(paths, y.tolist())
        tensor_ds = TensorDataset(x, y)
        xd, yd = x.to(dev), y.to(dev)
        for _ in range(repeats):
            m = fresh()
            timed("engine", lambda: fit(m, x, y, cfg))
            m = fresh()
            # the engine's own optimizer factory: same kernel, so engine / bare is plumbing only
            timed("bare", lambda: _bare_loop(m, xd, yd, epochs, batch_size, seed, lambda mm: _make_optimizer(mm, cfg), fmt))
            m = fresh()
            timed("bare_default", lambda: _bare_loop(m, xd, yd, epochs, batch_size, seed,
                                                     lambda mm: _default_adam(mm, lr, wd)))
            for key, ds in (("files_loader", files_ds), ("tensor_loader", tensor_ds)):
                m = fresh()
                loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                                    generator=torch.Generator().manual_seed(seed))
                timed(key, lambda: _loader_loop(m, loader, dev, epochs, lr, wd))

    best = {k: min(v) for k, v in times.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    out = {
        "model": model, "n": n, "size": size, "in_chans": in_chans, "epochs": epochs, "batch_size": batch_size,
        "device": str(dev), "threads": torch.get_num_threads(), "repeats": repeats,
        **{f"{k}_s": v for k, v in best.items()},
        **{f"{k}_cpu_s": v for k, v in best_cpu.items()},
    }
    for suffix, b in (("", best), ("_cpu", best_cpu)):
        out[f"engine_vs_bare{suffix}"] = b["engine"] / b["bare"]
        out[f"speedup_vs_files_loader{suffix}"] = b["files_loader"] / b["engine"]
        out[f"speedup_vs_tensor_loader{suffix}"] = b["tensor_loader"] / b["engine"]
        out[f"kernel_choice_speedup{suffix}"] = b["bare_default"] / b["bare"]
    out["target_engine_vs_bare_met"] = out["engine_vs_bare_cpu"] <= 1.10
    out["target_speedup_vs_files_met"] = out["speedup_vs_files_loader_cpu"] >= 3.0
    return out


class _ThreeStreamSTSTNet(nn.Module):
    """STSTNet as it was built before the one-stream rewrite (three separate NCHW streams), kept
    here as the baseline of :func:`changes`."""

    def __init__(self, in_chans: int = 3, num_classes: int = 3):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_chans, c, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(c),
                          nn.MaxPool2d(3, 3, 1), nn.Dropout(0.5)) for c in (3, 5, 8))
        self.pool = nn.AdaptiveAvgPool2d(5)
        self.fc = nn.Linear(16 * 25, num_classes)

    def forward(self, x):
        return self.fc(self.pool(torch.cat([b(x) for b in self.branches], 1)).flatten(1))


def changes(n: int = 132, size: int = 28, epochs: int = 5, repeats: int = 3, threads: int = 1,
            seed: int = 0) -> list[dict]:
    """What each speed change of the engine and models buys, as CPU-time ratios new / old measured
    interleaved in this process (min over ``repeats``), one fold-sized fit per measurement:

    * ``ststnet_one_stream``: the one-stream NHWC STSTNet vs the three separate NCHW streams;
    * ``resnet10t_trim``: ResNet-10-T with ``trim_padding_taps`` vs without;
    * ``no_nan_fill``: deterministic mode without vs with ``fill_uninitialized_memory`` (ResNet-10-T);
    * ``resnet10t_half``: the main study's half-width ResNet-10-T vs the full-width one (a different
      network: its recipe check is ``benchmarks.recipe``).

    The allocator settings (``bench/runtime/allocator.py``) act per process, so they are not among these:
    compare whole runs with and without ``DUALFLOW_MALLOC=default`` instead (docs/performance.md).
    """
    from bench.core.config import compose, to_container
    from models import build_model, create_model

    torch.set_num_threads(threads)
    x3, y = _synthetic(n, 3, size, 3, seed)
    cfg = TrainConfig(epochs=epochs, device="cpu", seed=seed)

    def ststnet_new():
        return create_model("ststnet", 3, 3)

    def resnet(trim: bool):
        return lambda: create_model("timm:resnet10t", 3, 3, trim_padding_taps=trim)

    def option(name: str):  # a model config group option, as a study builds it
        node = to_container(compose([f"model={name}"]).model)
        return lambda: build_model(node, in_chans=3, num_classes=3)

    cases = {  # name: (old factory, new factory, fill_uninitialized_memory for old / new)
        "ststnet_one_stream": (_ThreeStreamSTSTNet, ststnet_new, (False, False)),
        "resnet10t_trim": (resnet(False), resnet(True), (False, False)),
        "no_nan_fill": (resnet(True), resnet(True), (True, False)),
        "resnet10t_half": (option("timm_resnet10t"), option("timm_resnet10t_half"), (False, False)),
    }
    rows = []
    for name, (old, new, fills) in cases.items():
        t = {"old": [], "new": []}
        for _ in range(repeats):
            for key, factory, fill in (("old", old, fills[0]), ("new", new, fills[1])):
                seed_everything(seed)
                m = factory()
                # fit turns the fill off; the "old" side of no_nan_fill turns it back on inside fit
                c = time.process_time()
                if fill:
                    with _nan_fill():
                        fit(m, x3, y, cfg)
                else:
                    fit(m, x3, y, cfg)
                t[key].append(time.process_time() - c)
        rows.append({"change": name, "old_cpu_s": min(t["old"]), "new_cpu_s": min(t["new"]),
                     "ratio": min(t["new"]) / min(t["old"])})
    return rows


@contextlib.contextmanager
def _nan_fill():
    """Make ``fit``'s deterministic mode fill new tensors with NaN again (the pre-change behaviour)."""
    import bench.training.engine as eng

    orig = eng.deterministic_mode

    @contextlib.contextmanager
    def filling(enabled: bool = True):
        with orig(enabled):
            torch.utils.deterministic.fill_uninitialized_memory = True
            yield

    eng.deterministic_mode = filling
    try:
        yield
    finally:
        eng.deterministic_mode = orig


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["ststnet", "off_apexnet", "fmanet", "timm:resnet10t"])
    ap.add_argument("--n", type=int, default=130)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--changes", action="store_true",
                    help="instead: what each speed change buys (new/old CPU-time ratios, one fold-sized fit each)")
    args = ap.parse_args(argv)
    if args.changes:
        rows = changes(n=args.n, size=args.size, epochs=args.epochs, repeats=args.repeats, threads=args.threads)
        print(f"speed changes: n={args.n} size={args.size} epochs={args.epochs} threads={args.threads} "
              f"repeats={args.repeats} (min CPU seconds of repeats, interleaved)")
        for r in rows:
            print(f"  {r['change']:20s} old {r['old_cpu_s']:7.3f} s  new {r['new_cpu_s']:7.3f} s  new/old x{r['ratio']:.3f}")
        return rows
    print(f"engine benchmark: n={args.n} size={args.size} epochs={args.epochs} batch={args.batch_size} "
          f"device={args.device} threads={args.threads} repeats={args.repeats} (min of repeats), cpu={os.cpu_count()}")
    print(f"{'':22s} {'---------- wall seconds ----------':>38s} {'----- ratios: wall | cpu time -----':>44s}")
    print(f"{'model':22s} {'engine':>8s} {'bare':>8s} {'files':>8s} {'tensorDL':>9s} "
          f"{'engine/bare':>14s} {'files/engine':>14s} {'tensorDL/engine':>16s} {'kernels':>14s}")
    rows = []
    for m in args.models:
        r = run(m, n=args.n, size=args.size, epochs=args.epochs, batch_size=args.batch_size,
                repeats=args.repeats, device=args.device, threads=args.threads)
        rows.append(r)
        print(f"{m:22s} {r['engine_s']:8.3f} {r['bare_s']:8.3f} {r['files_loader_s']:8.3f} "
              f"{r['tensor_loader_s']:9.3f} {r['engine_vs_bare']:6.3f} | {r['engine_vs_bare_cpu']:5.3f} "
              f"{r['speedup_vs_files_loader']:6.2f} | {r['speedup_vs_files_loader_cpu']:5.2f} "
              f"{r['speedup_vs_tensor_loader']:7.2f} | {r['speedup_vs_tensor_loader_cpu']:5.2f} "
              f"{r['kernel_choice_speedup']:6.2f} | {r['kernel_choice_speedup_cpu']:5.2f}", flush=True)
    print("targets (on CPU time): engine/bare <= 1.10; files/engine >= 3.0")
    print("kernels = bare loop with PyTorch's default Adam and NCHW / bare loop with the engine's kernels")
    return rows


if __name__ == "__main__":
    main()
