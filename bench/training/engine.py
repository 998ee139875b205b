"""The training engine: in-memory, seeded, leak-free by construction.

``fit(model, x, y, cfg, val=..., augment=..., on_epoch=...)`` trains a model on tensors that are
moved to the device once; each epoch draws a seeded permutation (``torch.Generator``) and slices
batches from the preloaded tensors, so there is no DataLoader, no worker process and no file read
after the caller built ``x`` (MER datasets have hundreds of samples; a DataLoader's per-sample
collation costs more than the small models' forward passes).

Why test leakage is impossible by construction: ``fit`` has no parameter for test data. The only
data it sees are the training tensors and the optional ``val`` pair, which the caller draws *by
subject from the training subjects*. Every model-selection decision ``fit`` makes (the epoch to
stop at and the weights to restore) is a function of ``val`` alone, or there is no decision at all
(fixed epoch budget). The test fold's tensors can only reach the model after ``fit`` returns,
through ``predict_proba`` — which never changes weights.

Determinism: ``fit`` seeds Python, NumPy and torch from ``cfg.seed`` and enables
``torch.use_deterministic_algorithms`` (warn-only) for its duration; with the same seed, the same
initial weights (seed before ``create_model`` with :func:`seed_everything`), the same machine and
the same torch thread count, CPU training gives bitwise identical weights and predictions (tested).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import inspect
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from bench.training.losses import class_weights as make_class_weights
from bench.training.losses import make_loss
# TrainConfig is defined torch-free in bench.core.schemas (it is the trainer group's Hydra schema, registered
# before every compose); re-exported here, where fit consumes it.
from bench.core.schemas import MEMORY_FORMATS, MONITORS, OPTIMIZERS, SCHEDULERS, TrainConfig  # noqa: F401

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)  # one dict per epoch
    best_epoch: int = -1  # 0-based epoch whose weights were restored; -1 = fixed budget
    epochs_run: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    amp: bool = False
    stopped_early: bool = False


# ----------------------------------------------------------------------------------- helpers

def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). Call before ``create_model`` for reproducible init."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} requested but CUDA is not available (use device=auto or cpu)")
    return d


@contextlib.contextmanager
def deterministic_mode(enabled: bool = True) -> Iterator[None]:
    """Deterministic algorithms (warn-only: ops without one still run) for the block; restores the old mode."""
    if not enabled:
        yield
        return
    prev = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
            torch.utils.deterministic.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    # Deterministic mode also fills every new tensor with NaN, so that an op reading memory it never
    # wrote gives the same (NaN) answer each run. The kernels used here write every element they
    # read (the bitwise-identity tests would catch one that does not), and the fill is pure cost
    # (8% of ResNet-10-T's profiled step time; 0-3% of a fold's CPU time measured), so it is off.
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev[2], prev[3]
        torch.utils.deterministic.fill_uninitialized_memory = prev[4]


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Slices of ``range(n)``; a trailing batch of one sample is merged into the previous one
    (BatchNorm cannot normalise a single sample whose maps are 1x1, e.g. ResNet at 28 px)."""
    bounds = [(a, min(a + batch_size, n)) for a in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    """UF1/UAR/acc: ``bench.evaluation.metrics.pooled_scores`` when that module exists, else the same MEGC
    formulas here (so the engine does not depend on the runner's modules being present)."""
    if importlib.util.find_spec("bench.evaluation.metrics") is not None:
        from bench.evaluation.metrics import pooled_scores  # a broken metrics module raises, never silently ignored

        return dict(pooled_scores(y_true, y_pred, n_classes))
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    tp = np.diag(cm).astype(float)
    f1_den = cm.sum(0) + cm.sum(1)  # 2TP + FP + FN
    f1 = np.divide(2 * tp, f1_den, out=np.zeros_like(tp), where=f1_den > 0)
    n_k = cm.sum(1)
    rec = np.divide(tp, n_k, out=np.zeros_like(tp), where=n_k > 0)
    present = (n_k > 0) | (cm.sum(0) > 0)  # a class absent from truth and predictions is not scored
    return {"uf1": float(f1[present].mean()), "uar": float(rec[n_k > 0].mean()), "acc": float(tp.sum() / cm.sum())}


def _check_xy(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{what}: x and y must be torch tensors, got {type(x).__name__}, {type(y).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{what}: x must be (N, C, H, W), got shape {tuple(x.shape)}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{what}: y must be (N,) with N = {x.shape[0]}, got shape {tuple(y.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{what}: no samples")
    bad = (~torch.isfinite(x)).flatten(1).any(1).nonzero().flatten()
    if bad.numel():
        raise ValueError(f"{what}: non-finite values in samples {bad[:10].tolist()} (positions in x)")
    if y.dtype.is_floating_point or bool((y < 0).any()):
        raise ValueError(f"{what}: y must hold non-negative integer class indices")


def _forward_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # The fused kernels (CPU and CUDA since torch 2.4) update every parameter in one pass instead of
    # ~10 elementwise ops per tensor: the Adam step was 28% of a ResNet-10-T training step on CPU.
    # None (not False) when off, so PyTorch keeps choosing its own default implementation.
    fused = True if cfg.fused else None
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused)


def memory_format_for(model: nn.Module, choice: str = "auto") -> torch.memory_format:
    """``channels_last`` or ``contiguous_format``; ``auto`` asks the model's ``preferred_memory_format``
    (models whose CPU kernels are faster in NHWC, e.g. FMANet's max-pools, declare it)."""
    if choice == "auto":
        choice = getattr(model, "preferred_memory_format", "contiguous")
    if choice not in MEMORY_FORMATS[1:]:
        raise ValueError(f"memory_format={choice!r} not in {MEMORY_FORMATS[1:]}")
    return torch.channels_last if choice == "channels_last" else torch.contiguous_format


def _make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int = 1):
    """The learning-rate schedule; ``onecycle`` is stepped after every batch, the others per epoch."""
    if cfg.scheduler == "onecycle":
        # torch's defaults: 30% warm-up from lr/25, cosine annealing, Adam's beta1 cycled 0.95 -> 0.85 -> 0.95
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.min_lr)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.step_gamma)
    return None


@torch.no_grad()
def _logits_batched(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device,
                    amp: bool = False) -> torch.Tensor:
    outs = []
    for a in range(0, x.shape[0], batch_size):
        with torch.autocast(device.type, enabled=amp):
            outs.append(_forward_logits(model, x[a:a + batch_size].to(device, torch.float32)).float())
    return torch.cat(outs)


# --------------------------------------------------------------------------------------- fit

@dataclass
class _FitRun:
    """What one ``fit`` call trains with: device-side tensors, loss, optimiser, schedule, generators."""

    device: torch.device
    amp: bool
    early: bool  # early stopping on val (val given and patience > 0)
    fmt: torch.memory_format
    xd: torch.Tensor
    yd: torch.Tensor
    vx: torch.Tensor | None
    vy: torch.Tensor | None
    num_classes: int
    criterion: nn.Module
    opt: torch.optim.Optimizer
    bounds: list[tuple[int, int]]
    sched: Any
    per_batch: bool  # the schedule steps after every batch (onecycle), not every epoch
    scaler: Any
    perm_gen: torch.Generator
    aug_gen: torch.Generator | None
    best_score: tuple | None = None
    best_state: dict | None = None


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    *,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    num_classes: int | None = None,
) -> FitResult:
    """Train ``model`` in place on ``(x, y)``; see the module docstring for the guarantees.

    ``val`` (drawn by subject from the *training* subjects) is evaluated every ``cfg.eval_every``
    epochs; with ``cfg.early_stopping_patience > 0`` training stops after that many epochs without
    improvement of ``cfg.monitor`` and the best epoch's weights are restored (``best_epoch``).
    Without ``val`` or patience the budget is fixed (``best_epoch = -1``). ``augment(batch, gen)``
    transforms each training batch on the device with a seeded generator living on that device.
    ``num_classes`` defaults to the model's output width. The model is left in eval mode.
    """
    if isinstance(cfg, Mapping):
        cfg = TrainConfig.from_mapping(cfg)
    cfg.validate()
    t0 = time.perf_counter()
    _check_fit_inputs(x, y, val)
    device, amp, early = _fit_options(cfg, val)
    result = FitResult(device=str(device), amp=amp)
    with deterministic_mode(cfg.deterministic):
        seed_everything(cfg.seed)
        run = _prepare_fit(model, x, y, cfg, val, augment, num_classes, device, amp, early)
        _run_epochs(model, run, cfg, result, augment, on_epoch)
    model.eval()
    result.seconds = time.perf_counter() - t0
    return result


def _check_fit_inputs(x: torch.Tensor, y: torch.Tensor, val: tuple[torch.Tensor, torch.Tensor] | None) -> None:
    """Validate the training tensors, the optional val pair, and that there are >= 2 samples."""
    _check_xy(x, y, "train")
    if val is not None:
        _check_xy(val[0], val[1], "val")
    if x.shape[0] < 2:
        raise ValueError("train: fit needs at least 2 samples (BatchNorm statistics)")


def _fit_options(cfg: TrainConfig, val) -> tuple[torch.device, bool, bool]:
    """(device, amp, early stopping) as they apply here; logs the options that are ignored."""
    device = resolve_device(cfg.device)
    amp = bool(cfg.amp) and device.type == "cuda"
    if cfg.amp and not amp:
        log.warning("amp=True ignored: mixed precision is only used on CUDA (device=%s)", device)
    early = val is not None and cfg.early_stopping_patience > 0
    if cfg.early_stopping_patience > 0 and val is None:
        log.info("early_stopping_patience=%d ignored: no validation split given (fixed budget of %d epochs)",
                 cfg.early_stopping_patience, cfg.epochs)
    return device, amp, early


def _prepare_fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, val, augment,
                 num_classes: int | None, device: torch.device, amp: bool, early: bool) -> _FitRun:
    """Move model and data to the device once, check labels, build loss/optimiser/schedule/generators."""
    fmt = memory_format_for(model, cfg.memory_format)
    model.to(device, memory_format=fmt)
    xd = x.to(device, torch.float32).contiguous(memory_format=fmt)  # moved once: batches are device-side slices
    yd = y.to(device, torch.long)
    if num_classes is None:
        num_classes = _output_width(model, xd)
    too_big = [int(v) for v in torch.unique(y) if int(v) >= num_classes]
    if too_big:
        raise ValueError(f"train: labels {too_big} >= num_classes={num_classes}")
    vx, vy = _move_val(val, device, fmt, num_classes) if val is not None else (None, None)
    weight = make_class_weights(y, num_classes, cfg.class_weights)
    criterion = make_loss(cfg.loss, None if weight is None else weight.to(device),
                          cfg.label_smoothing, cfg.focal_gamma).to(device)
    opt = _make_optimizer(model, cfg)
    bounds = batch_bounds(x.shape[0], cfg.batch_size)
    sched = _make_scheduler(opt, cfg, len(bounds))
    scaler = torch.amp.GradScaler("cuda") if amp else None
    perm_gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1) if augment is not None else None
    return _FitRun(device=device, amp=amp, early=early, fmt=fmt, xd=xd, yd=yd, vx=vx, vy=vy,
                   num_classes=num_classes, criterion=criterion, opt=opt, bounds=bounds, sched=sched,
                   per_batch=cfg.scheduler == "onecycle", scaler=scaler, perm_gen=perm_gen, aug_gen=aug_gen)


def _output_width(model: nn.Module, xd: torch.Tensor) -> int:
    """The model's number of output classes, from an eval-mode forward pass of two samples."""
    model.eval()
    with torch.no_grad():
        return int(_forward_logits(model, xd[:2]).shape[1])


def _move_val(val: tuple[torch.Tensor, torch.Tensor], device: torch.device, fmt: torch.memory_format,
              num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation pair on the device, its labels checked against ``num_classes``."""
    vx, vy = val[0].to(device, torch.float32).contiguous(memory_format=fmt), val[1].to(device, torch.long)
    if int(vy.max()) >= num_classes:
        raise ValueError(f"val: label {int(vy.max())} >= num_classes={num_classes}")
    return vx, vy


def _run_epochs(model: nn.Module, run: _FitRun, cfg: TrainConfig, result: FitResult, augment, on_epoch) -> None:
    """The epoch loop: train, validate when due, record; stop early and restore the best weights."""
    for epoch in range(cfg.epochs):
        te = time.perf_counter()
        rec = _train_epoch(model, run, cfg, epoch, augment)
        stop = False
        if run.vx is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch == cfg.epochs - 1):
            stop = _validate_epoch(model, run, cfg, epoch, rec, result)
        rec["seconds"] = time.perf_counter() - te
        result.history.append(rec)
        result.epochs_run = epoch + 1
        if on_epoch is not None:
            on_epoch(rec)
        if stop:
            result.stopped_early = True
            break
    if run.early and run.best_state is not None:
        model.load_state_dict(run.best_state)


def _train_epoch(model: nn.Module, run: _FitRun, cfg: TrainConfig, epoch: int, augment) -> dict[str, Any]:
    """One pass over a seeded permutation of the training set; returns the epoch's record."""
    model.train()
    n = run.xd.shape[0]
    perm = torch.randperm(n, generator=run.perm_gen).to(run.device)
    total = torch.zeros((), device=run.device)
    for a, b in run.bounds:
        idx = perm[a:b]
        xb, yb = run.xd.index_select(0, idx), run.yd.index_select(0, idx)
        if augment is not None:
            xb = augment(xb, run.aug_gen)
        xb = xb.contiguous(memory_format=run.fmt)  # index_select returns NCHW; no-op when contiguous
        loss = _train_step(model, run, cfg, xb, yb)
        if run.per_batch:
            lr_used = run.opt.param_groups[0]["lr"]  # the history keeps the lr the epoch's last batch used
            run.sched.step()
        total += loss.detach() * (b - a)  # one host sync per epoch, not per batch
    train_loss = float(total) / n
    if not math.isfinite(train_loss):
        raise FloatingPointError(
            f"training loss became {train_loss} in epoch {epoch} (lr={cfg.lr}); lower lr or enable grad_clip"
        )
    rec: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss,
                           "lr": lr_used if run.per_batch else run.opt.param_groups[0]["lr"]}
    if run.sched is not None and not run.per_batch:
        run.sched.step()
    return rec


def _train_step(model: nn.Module, run: _FitRun, cfg: TrainConfig, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """Forward, backward, optional gradient clipping and the optimiser step (mixed precision with a scaler)."""
    opt, scaler = run.opt, run.scaler
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss = run.criterion(_forward_logits(model, xb), yb)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    else:
        with torch.autocast("cuda", dtype=torch.float16):
            loss = run.criterion(_forward_logits(model, xb).float(), yb)
        scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
    return loss


def _validate_epoch(model: nn.Module, run: _FitRun, cfg: TrainConfig, epoch: int, rec: dict,
                    result: FitResult) -> bool:
    """Score the val split into ``rec``; with early stopping keep the best weights. True: stop now."""
    model.eval()
    vlogits = _logits_batched(model, run.vx, 256, run.device, run.amp)
    vloss = float(run.criterion(vlogits, run.vy))
    s = _scores(run.vy.cpu().numpy(), vlogits.argmax(1).cpu().numpy(), run.num_classes)
    rec.update(val_loss=vloss, val_uf1=s["uf1"], val_uar=s["uar"], val_acc=s["acc"])
    if not run.early:
        return False
    score = (-vloss,) if cfg.monitor == "val_loss" else (s["uf1"], -vloss)
    if run.best_score is None or score > run.best_score:
        run.best_score, result.best_epoch = score, epoch
        run.best_state = copy.deepcopy(model.state_dict())
        return False
    return epoch - result.best_epoch >= cfg.early_stopping_patience


# ---------------------------------------------------------------------------------- predict

def _model_device(model: nn.Module, device: str | None) -> torch.device:
    if device is not None:
        d = resolve_device(device)
        model.to(d)
        return d
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 256, device: str | None = None) -> np.ndarray:
    """Class probabilities (N, K) as float64 NumPy; eval mode, no weight change.

    ``device=None`` runs where the model already is; a device string moves the model there first.
    """
    d = _model_device(model, device)
    was_training = model.training
    model.eval()
    try:
        logits = _logits_batched(model, x, batch_size, d)
    finally:
        model.train(was_training)
    return torch.softmax(logits.double(), dim=1).cpu().numpy()


@torch.no_grad()
def predict_aux(model: nn.Module, x: torch.Tensor, batch_size: int = 256,
                device: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray | None]]:
    """Probabilities plus the model's ``return_aux`` outputs concatenated over batches.

    Each aux entry is a NumPy array with N rows, or None when the model returned None for it
    (e.g. FMANet's ``fusion_weights`` with ``fusion=sum``). A model without ``return_aux`` gives ``{}``.
    """
    d = _model_device(model, device)
    was_training = model.training
    model.eval()
    has_aux = "return_aux" in inspect.signature(model.forward).parameters
    probs, parts = [], {}
    try:
        for a in range(0, x.shape[0], batch_size):
            xb = x[a:a + batch_size].to(d, torch.float32)
            logits, aux = model(xb, return_aux=True) if has_aux else (model(xb), {})
            probs.append(torch.softmax(logits.double(), dim=1).cpu())
            for k, v in aux.items():
                parts.setdefault(k, []).append(None if v is None else v.detach().float().cpu())
    finally:
        model.train(was_training)
    merged: dict[str, np.ndarray | None] = {}
    for k, vs in parts.items():
        merged[k] = None if any(v is None for v in vs) else torch.cat(vs).numpy()
    return torch.cat(probs).numpy(), merged
