"""Each model's training step against its own floor, measured in one run on one core:
``python -m benchmarks.roofline [--models ...] [--steps N] [--repeats R]``.

For each model at its study's input (the MEGC2019 composite: 28 px, batch 32, 3 classes, the
representation the model sees there, ``INPUTS``), with ``torch.set_num_threads(1)``:

* **achieved** — CPU time per training step of ``bench.training.engine.fit`` (the trainer group's
  defaults: fused Adam, the model's memory format, deterministic mode), from whole epochs after
  the first (per-epoch permutation and batch slicing included), minimum over ``repeats``;
* **compute floor** — every matrix product and convolution of one step (forward and backward:
  ``mm``, ``addmm``, ``bmm``, ``convolution``, ``convolution_backward``), captured with their shapes,
  strides and arguments and replayed *alone* on fresh tensors of the same layout, each timed warm
  (minimum over repeats), summed. Their FLOPs are ``torch.utils.flop_counter``'s (the check
  ``replayed_flops == step_flops`` says every counted FLOP was replayed);
* **memory floor** — the bytes the optimizer step moves (Adam: read parameter, gradient, exp_avg,
  exp_avg_sq, write the three states: 7 x 4 bytes per parameter; SGD with momentum 5 x 4) at this
  core's streaming bandwidth, the faster of ``b.copy_(a)`` and the in-place ``a.add_(b)`` (the
  optimizer's own pattern: it writes only what it read) on two buffers of 2 x parameters floats,
  the optimizer's working set, so both see the same cache level;
* **floor = compute + memory (a sum, not a max)**: on one thread the optimizer pass starts after
  the backward pass ends and nothing overlaps it, and the GEMM / convolution timings already include
  their own memory traffic, so the two phases add. Every time is this process's CPU time;
* **the step's kernels alone** — every aten op of one step (forward, backward, optimizer), replayed
  alone like the floor's products and summed by kind: what PyTorch's own kernels cost with nothing
  between them. Where this sum alone exceeds ``TARGET`` x floor (BatchNorm, pooling and dropout
  kernels around tiny GEMMs), no change to the Python around the kernels can meet the target: only
  other kernels can (a fusing compiler, hand-written fused ones) or another network. The achieved
  step minus it is the rest: Python, autograd and dispatch between the ops, and caches colder inside
  a step than in a replay;
* **where the rest goes** — ``torch.profiler`` self CPU time per step grouped by kind (``KINDS``:
  GEMM / convolution, normalisation, dropout, activation, pooling, optimizer, allocation, layout /
  copies, other elementwise, Python / autograd) — profiled time is inflated by the profiler itself,
  so read it as shares.

The figure printed is the ratio achieved / floor (target: <= 1.5); absolute milliseconds are
printed beside it for the record, never as a target. A shared machine inflates every time; the
ratio holds up better because both sides are measured in the same process, minutes apart at most.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

TARGET = 1.5
# Every side is timed in this process's CPU time: on a shared machine wall time counts other jobs' turns.
_clock = time.process_time
# The composite's representation per model (megc2019_phases): OFF-ApexNet's and STSTNet's published
# inputs are single-phase flow (u, v, magnitude / strain); FMANet's dual-stream cell reads both phases.
INPUTS = {"off_apexnet": "single_phase", "fmanet": "two_phase_stack", "ststnet": "stored"}
# megc2019_phases on the two-phase release (13 cells; bench/conf/trainer/<model>.yaml's epochs): per
# model, the representation measured and how many cells it stands for. OFF-ApexNet's cof, mm_cof,
# two_phase_stack and stored cells are costed as its single_phase one (cof, mm_cof and stored have
# its FLOPs exactly; two_phase_stack's 4-channel streams 8% more, 1.6% of OFF-ApexNet's total),
# FMANet's stored cell as its single-stream single_phase one (the same 3-channel network).
COMPOSITE = {"off_apexnet": (("single_phase", 5),), "fmanet": (("two_phase_stack", 1), ("single_phase", 2)),
             "ststnet": (("stored", 5),)}
COMPOSITE_FOLDS = 68
FLOOR_OPS = ("mm", "addmm", "bmm", "baddbmm", "convolution", "convolution_backward")
# Optimizer bytes per parameter: float32 arrays read + written by one step.
OPTIMIZER_ARRAYS = {"adam": 7, "adamw": 7, "sgd": 5}
# Profiler event name -> kind: first matching fragment wins (order matters: "batch_norm" before "norm").
KINDS = (
    ("gemm/conv", ("aten::mm", "aten::addmm", "aten::bmm", "convolution", "aten::linear")),
    ("normalisation", ("batch_norm", "layer_norm", "group_norm")),
    ("dropout", ("bernoulli", "dropout")),
    ("activation", ("relu", "threshold", "sigmoid", "clamp_min", "softmax", "gelu", "hardtanh")),
    ("pooling", ("pool",)),
    ("optimizer", ("adam", "sgd", "optimizer", "foreach")),
    ("allocation", ("aten::empty", "aten::zero", "aten::fill_", "aten::zeros", "aten::resize_")),
    ("layout/copies", ("copy_", "contiguous", "index_select", "aten::cat", "clone", "as_strided_",
                       "to_copy", "aten::_to")),
    ("loss", ("cross_entropy", "nll_loss", "log_softmax")),
    ("Python/autograd", ("autograd::", "backward0")),
)
# Metadata-only ops (no data touched): their time is dispatcher and autograd bookkeeping.
VIEWS = frozenset(f"aten::{v}" for v in ("view", "t", "transpose", "reshape", "expand", "slice", "select",
                                           "unsqueeze", "squeeze", "permute", "flatten", "detach", "alias",
                                           "_unsafe_view", "as_strided", "numpy_T", "_reshape_alias"))


# ------------------------------------------------------------------------------- floor: bytes

def optimizer_bytes(n_params: int, optimizer: str = "adam") -> int:
    """Bytes one optimizer step reads and writes for ``n_params`` float32 parameters."""
    if optimizer not in OPTIMIZER_ARRAYS:
        raise ValueError(f"optimizer {optimizer!r} not in {sorted(OPTIMIZER_ARRAYS)}")
    return OPTIMIZER_ARRAYS[optimizer] * 4 * int(n_params)


def copy_bandwidth(n_floats: int, repeats: int = 5, inner: int = 5) -> dict[str, float]:
    """Bytes per second of two streaming kernels on ``a``, ``b`` of ``n_floats`` float32 each, best of
    ``repeats``: ``copy`` (``b.copy_(a)``: 2 x 4 bytes an element) and ``inplace`` (``a.add_(b)``: read
    a, b, write a, 3 x 4 bytes, the access pattern of an in-place optimizer, with no write-allocate
    read of a destination it did not read), and ``best``, the higher: a floor takes the fastest."""
    n = max(int(n_floats), 1024)
    a, b = torch.rand(n), torch.rand(n)
    out = {}
    for key, fn, nbytes in (("copy", lambda: b.copy_(a), 8 * n), ("inplace", lambda: a.add_(b, alpha=0.0), 12 * n)):
        fn()
        best = float("inf")
        for _ in range(repeats):
            t = _clock()
            for _ in range(inner):
                fn()
            best = min(best, (_clock() - t) / inner)
        out[key] = nbytes / max(best, 1e-9)
    out["best"] = max(out["copy"], out["inplace"])
    return out


# ------------------------------------------------------------------------------ floor: compute

@dataclass
class CapturedOp:
    """One aten call of the step: the overload and its arguments with tensors as (shape, stride, dtype)."""

    name: str
    func: Any
    args: tuple
    kwargs: dict
    seconds: float = 0.0
    flops: int = 0


@dataclass
class _Meta:
    shape: tuple
    stride: tuple
    dtype: torch.dtype
    requires_grad: bool = False


class _Capture(TorchDispatchMode):
    """Records every floor op (``FLOOR_OPS``) dispatched while active; with ``every_op``, every aten op."""

    def __init__(self, every_op: bool = False):
        super().__init__()
        self.ops: list[CapturedOp] = []
        self.every_op = every_op

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if self.every_op or name in FLOOR_OPS:
            meta = lambda a: _Meta(tuple(a.shape), tuple(a.stride()), a.dtype) if isinstance(a, torch.Tensor) else a
            self.ops.append(CapturedOp(name, func, tree_map(meta, args), tree_map(meta, kwargs)))
        return func(*args, **kwargs)


def _materialise(spec: Any, gen: torch.Generator) -> Any:
    """A fresh tensor of a captured (shape, stride, dtype); everything else as captured."""
    def one(a):
        if not isinstance(a, _Meta):
            return a
        size = 1 + sum((s - 1) * st for s, st in zip(a.shape, a.stride)) if all(a.shape) else 0
        base = torch.randn(max(size, 1), generator=gen).to(a.dtype) if a.dtype.is_floating_point \
            else torch.zeros(max(size, 1), dtype=a.dtype)
        return base.as_strided(a.shape, a.stride)
    return tree_map(one, spec)


def _op_flops(op: CapturedOp) -> int:
    """FLOPs of one captured op, by ``torch.utils.flop_counter``'s own formulas."""
    from torch.utils.flop_counter import FlopCounterMode

    gen = torch.Generator().manual_seed(0)
    args, kwargs = _materialise(op.args, gen), _materialise(op.kwargs, gen)
    with FlopCounterMode(display=False) as fc:
        op.func(*args, **kwargs)
    return int(fc.get_total_flops())


def time_op(op: CapturedOp, repeats: int = 5, min_seconds: float = 0.005) -> float:
    """Seconds of one captured op replayed alone on fresh tensors: warm, best of ``repeats`` loops."""
    gen = torch.Generator().manual_seed(0)
    args, kwargs = _materialise(op.args, gen), _materialise(op.kwargs, gen)
    op.func(*args, **kwargs)
    t = _clock()
    op.func(*args, **kwargs)
    once = max(_clock() - t, 1e-7)
    inner = max(1, min(200, int(min_seconds / once)))
    best = float("inf")
    for _ in range(repeats):
        t = _clock()
        for _ in range(inner):
            op.func(*args, **kwargs)
        best = min(best, (_clock() - t) / inner)
    return best


def capture_step(step: Callable[[], Any]) -> tuple[list[CapturedOp], int]:
    """The floor ops of one call of ``step`` and the step's total FLOPs (``FlopCounterMode``)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        step()
    with _Capture() as cap:
        step()
    return cap.ops, int(fc.get_total_flops())


def compute_floor(ops: list[CapturedOp], repeats: int = 5) -> dict:
    """Sum of the replayed ops' times and FLOPs; per op kind too."""
    by_kind: dict[str, float] = {}
    for op in ops:
        op.seconds = time_op(op, repeats)
        op.flops = _op_flops(op)
        by_kind[op.name] = by_kind.get(op.name, 0.0) + op.seconds
    return {"seconds": sum(o.seconds for o in ops), "flops": sum(o.flops for o in ops), "by_op": by_kind,
            "n_ops": len(ops)}


def kernels_alone(step: Callable[[], Any], repeats: int = 3) -> dict:
    """Every aten op of one ``step`` (forward, backward and optimizer) replayed alone, warm, summed by
    kind: what PyTorch's own kernels cost with no Python, autograd or dispatch between them. The step
    minus this sum is the rest (between the ops, and colder caches); what is inside the sum (BatchNorm,
    pooling, dropout kernels) only other kernels (a fusing compiler, hand-written ones) could lower. An
    op that cannot run on random tensors of its captured layout is counted in ``not_replayed``."""
    with _Capture(every_op=True) as cap:
        step()
    by_kind: dict[str, float] = {}
    failed = 0
    for op in cap.ops:
        try:
            t = time_op(op, repeats, min_seconds=0.002)
        except Exception:  # noqa: BLE001 - e.g. an op whose index arguments random values break
            failed += 1
            continue
        k = kind_of(f"aten::{op.name}")
        by_kind[k] = by_kind.get(k, 0.0) + t
    by_kind = dict(sorted(by_kind.items(), key=lambda kv: -kv[1]))
    return {"seconds": sum(by_kind.values()), "by_kind": by_kind, "n_ops": len(cap.ops), "not_replayed": failed}


# ------------------------------------------------------------------------------ the model's step

@dataclass
class StepSetup:
    """One model at its composite input: a model, its optimizer, a batch, and one training step."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    xb: torch.Tensor
    yb: torch.Tensor
    criterion: Callable
    n_params: int
    optimizer: str
    channels: tuple = ()
    extra: dict = field(default_factory=dict)

    def step(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        out = self.model(self.xb)
        loss = self.criterion(out[0] if isinstance(out, tuple) else out, self.yb)
        loss.backward()
        self.opt.step()
        return loss

    def forward_backward(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        out = self.model(self.xb)
        loss = self.criterion(out[0] if isinstance(out, tuple) else out, self.yb)
        loss.backward()
        return loss


def build_model_for(name: str, representation: str, n_classes: int = 3, model_params: dict | None = None):
    """The model option ``name`` (its composed config) for ``representation``'s default channels."""
    from bench.core.config import option_node
    from models import build_model
    from representations.registry import REPRESENTATIONS

    channels = tuple(REPRESENTATIONS.get(representation).default_channels)
    node = {**option_node("model", name), **(model_params or {})}
    node.setdefault("name", name)
    return build_model(node, in_chans=len(channels), num_classes=n_classes, channels=channels), channels


def setup_step(model: torch.nn.Module, in_chans: int, size: int = 28, batch: int = 32, n_classes: int = 3,
               trainer: dict | None = None, seed: int = 0) -> StepSetup:
    """The engine's optimizer, memory format and loss around ``model``, and one random batch."""
    from bench.training.engine import TrainConfig, _make_optimizer, memory_format_for

    cfg = TrainConfig.from_mapping(trainer or {})
    fmt = memory_format_for(model, cfg.memory_format)
    model.to(memory_format=fmt).train()
    g = torch.Generator().manual_seed(seed)
    xb = torch.rand(batch, in_chans, size, size, generator=g).contiguous(memory_format=fmt)
    yb = torch.arange(batch) % n_classes
    params = [p for p in model.parameters() if p.requires_grad]
    return StepSetup(model=model, opt=_make_optimizer(model, cfg), xb=xb, yb=yb,
                     criterion=torch.nn.CrossEntropyLoss(), n_params=sum(p.numel() for p in params),
                     optimizer=cfg.optimizer)


def achieved_step(model_factory: Callable[[], torch.nn.Module], in_chans: int, size: int, batch: int,
                  n_classes: int, steps_per_epoch: int, epochs: int, repeats: int, trainer: dict | None = None
                  ) -> float:
    """CPU seconds per step of ``engine.fit`` (epochs after the first), best of ``repeats`` fits."""
    from bench.training.engine import TrainConfig, fit

    n = batch * steps_per_epoch
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, in_chans, size, size, generator=g)
    y = torch.arange(n) % n_classes
    cfg = TrainConfig.from_mapping({**(trainer or {}), "epochs": epochs + 1, "batch_size": batch, "device": "cpu"})
    best = float("inf")
    for _ in range(repeats):
        marks: list[float] = []
        model = model_factory()
        fit(model, x, y, cfg, on_epoch=lambda rec: marks.append(_clock()))
        best = min(best, (marks[-1] - marks[0]) / (epochs * steps_per_epoch))
    return best


# ------------------------------------------------------------------------------ where the rest goes

def kind_of(event: str) -> str:
    """The ``KINDS`` group of a profiler event name ("other elementwise" for any other ``aten::``)."""
    if event in VIEWS:
        return "Python/autograd"
    low = event.lower()
    for kind, fragments in KINDS:
        if any(f.lower() in low for f in fragments):
            return kind
    return "other elementwise" if event.startswith("aten::") else "Python/autograd"


def profile_kinds(step: Callable[[], Any], steps: int = 10) -> dict[str, float]:
    """Profiler self CPU seconds per step, by kind."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(2):
        step()
    t = _clock()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    total = (_clock() - t) / steps
    out: dict[str, float] = {}
    for ev in prof.key_averages():
        k = kind_of(ev.key)
        out[k] = out.get(k, 0.0) + ev.self_cpu_time_total * 1e-6 / steps
    # CPU time inside the profiled loop that no event holds: the interpreter between ops, the profiler
    out["outside any op"] = max(0.0, total - sum(out.values()))
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


# ----------------------------------------------------------------------------------------- run

def measure(name: str, representation: str | None = None, size: int = 28, batch: int = 32, n_classes: int = 3,
            steps_per_epoch: int = 14, epochs: int = 3, repeats: int = 3, profile_steps: int = 10,
            model_params: dict | None = None, trainer: dict | None = None) -> dict:
    """Achieved step, compute floor, memory floor and where the rest goes, for one model."""
    from bench.training.engine import deterministic_mode, seed_everything

    rep = representation or INPUTS.get(name, "single_phase")

    def factory():
        seed_everything(0)
        return build_model_for(name, rep, n_classes, model_params)[0]

    model, channels = build_model_for(name, rep, n_classes, model_params)
    s = setup_step(model, len(channels), size, batch, n_classes, trainer)
    with deterministic_mode(True):
        for _ in range(3):
            s.step()
        ops, flops = capture_step(s.forward_backward)
        comp = compute_floor(ops, repeats)
        adam_t = _clock()
        for _ in range(5):
            s.opt.step()
        opt_measured = (_clock() - adam_t) / 5
        kinds = profile_kinds(s.step, profile_steps)
        alone = kernels_alone(s.step, repeats)
    bws = copy_bandwidth(2 * s.n_params)  # two buffers of 2P floats: the optimizer's 4P-float working set
    bw = bws["best"]
    mem_bytes = optimizer_bytes(s.n_params, s.optimizer)
    achieved = achieved_step(factory, len(channels), size, batch, n_classes, steps_per_epoch, epochs, repeats,
                             trainer)
    floor = comp["seconds"] + mem_bytes / bw
    return {"model": name, "representation": rep, "channels": list(channels), "size": size, "batch": batch,
            "params": s.n_params, "step_flops": flops, "replayed_flops": comp["flops"], "floor_ops": comp["n_ops"],
            "compute_floor_s": comp["seconds"], "compute_by_op_s": comp["by_op"],
            "optimizer_bytes": mem_bytes, "copy_bandwidth_Bps": bw, "bandwidths_Bps": bws, "memory_floor_s": mem_bytes / bw,
            "optimizer_step_s": opt_measured, "floor_s": floor, "achieved_s": achieved,
            "achieved_vs_floor": achieved / floor, "target_met": achieved / floor <= TARGET,
            "gflops_achieved": flops / achieved / 1e9, "gflops_floor_ops": comp["flops"] / max(comp["seconds"], 1e-12) / 1e9,
            "profile_s": kinds, "kernels_alone_s": alone["seconds"], "kernels_alone_by_kind_s": alone["by_kind"],
            "step_ops": alone["n_ops"], "ops_not_replayed": alone["not_replayed"],
            "between_ops_s": max(0.0, achieved - alone["seconds"])}


def format_row(r: dict) -> str:
    """One model's lines: ratio first, then the parts (ms per step, for the record)."""
    ms = lambda s: f"{s * 1e3:.2f} ms"
    total = sum(r["profile_s"].values()) or 1.0
    rest = ", ".join(f"{k} {v / total:.0%}" for k, v in r["profile_s"].items() if v / total >= 0.01)
    alone = ", ".join(f"{k} {ms(v)}" for k, v in r["kernels_alone_by_kind_s"].items() if v >= 0.01e-3)
    return (f"{r['model']} on {r['representation']} ({len(r['channels'])} ch, {r['params'] / 1e6:.3f} M params, "
            f"{r['step_flops'] / 1e9:.3f} GFLOP/step): achieved / floor x{r['achieved_vs_floor']:.2f} "
            f"(target <= {TARGET}: {'met' if r['target_met'] else 'NOT met'})\n"
            f"  achieved {ms(r['achieved_s'])} | floor {ms(r['floor_s'])} = compute {ms(r['compute_floor_s'])} "
            f"({r['floor_ops']} GEMM/conv replayed, {r['replayed_flops'] / max(r['step_flops'], 1):.0%} of the FLOPs, "
            f"{r['gflops_floor_ops']:.1f} GFLOP/s) + memory {ms(r['memory_floor_s'])} "
            f"({r['optimizer_bytes'] / 1e6:.1f} MB at {r['copy_bandwidth_Bps'] / 1e9:.1f} GB/s; "
            f"the optimizer step itself {ms(r['optimizer_step_s'])}); achieved {r['gflops_achieved']:.1f} GFLOP/s\n"
            f"  profiled self time by kind: {rest}\n"
            f"  its {r['step_ops']} aten ops replayed alone: {ms(r['kernels_alone_s'])} "
            f"(x{r['kernels_alone_s'] / r['floor_s']:.2f} of the floor; {alone}"
            f"{'; ' + str(r['ops_not_replayed']) + ' not replayable' if r['ops_not_replayed'] else ''}); "
            f"the rest of the step (Python, autograd and dispatch between the ops; caches colder than in "
            f"a replay): {ms(r['between_ops_s'])}")


def recipe_epochs(model: str) -> int:
    """The epochs of ``model``'s own recipe (bench/conf/trainer/<model>.yaml), else the trainer default's."""
    from bench.core.config import compose
    from bench.plan.planner import model_recipes

    return int(compose([f"trainer={model if model in model_recipes() else 'default'}"]).trainer.epochs)


def composite_minutes(rows: list[dict], epochs: dict[str, int], steps_per_epoch: int = 14, seeds: int = 3,
                      cores: int = 2) -> dict[str, float]:
    """Training wall minutes of ``megc2019_phases`` (``COMPOSITE``'s cells x 68 folds x ``seeds``) on
    ``cores`` one-thread workers, from the rows' CPU seconds per step: as achieved, at the floor, and at
    ``TARGET`` x the floor. Training only (no evaluation, flows or reports); a row not in ``COMPOSITE``
    is ignored, and a composite (model, representation) without a row raises."""
    measured = {(r["model"], r["representation"]): r for r in rows}
    total = {"achieved": 0.0, "floor": 0.0}
    for model, cells in COMPOSITE.items():
        for rep, n in cells:
            r = measured.get((model, rep))
            if r is None:
                raise ValueError(f"composite_minutes: no measured row for {model} on {rep}")
            steps = n * COMPOSITE_FOLDS * epochs[model] * steps_per_epoch
            total["achieved"] += steps * r["achieved_s"]
            total["floor"] += steps * r["floor_s"]
    scale = seeds / cores / 60.0
    return {"achieved": total["achieved"] * scale, "floor": total["floor"] * scale,
            "at_target": total["floor"] * TARGET * scale}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.roofline", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(INPUTS))
    ap.add_argument("--representation", default=None, help="one representation for every model (default: INPUTS)")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps-per-epoch", type=int, default=14, help="composite LOSO fold: ~435 clips / 32")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per fit (after one untimed)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile-steps", type=int, default=10)
    ap.add_argument("--composite", action="store_true",
                    help="measure every (model, representation) of COMPOSITE and extrapolate the 3-seed "
                         "megc2019_phases training on 2 cores: achieved, at the floor, at the target")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"roofline: {a.size} px, batch {a.batch_size}, 1 thread, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (floor = compute + memory; target achieved / floor <= {TARGET})", flush=True)
    todo = ([(m, rep) for m, cells in COMPOSITE.items() for rep, _ in cells] if a.composite
            else [(m, a.representation) for m in a.models])
    rows = []
    for m, rep in todo:
        r = measure(m, rep, a.size, a.batch_size, steps_per_epoch=a.steps_per_epoch, epochs=a.epochs,
                    repeats=a.repeats, profile_steps=a.profile_steps)
        rows.append(r)
        print(format_row(r), flush=True)
    if a.composite:
        epochs = {m: recipe_epochs(m) for m in COMPOSITE}
        t = composite_minutes(rows, epochs, a.steps_per_epoch)
        print(f"megc2019_phases, 3 seeds, training only, 2 one-thread workers ({COMPOSITE_FOLDS} folds x "
              f"{a.steps_per_epoch} steps per epoch; epochs {', '.join(f'{m} {e}' for m, e in epochs.items())}): "
              f"achieved {t['achieved']:.0f} min | at every model's floor {t['floor']:.0f} min | "
              f"at {TARGET} x the floor {t['at_target']:.0f} min (study target: 90 min)")
    return rows


if __name__ == "__main__":
    main()
