"""Training one fold: build the pieces a cell's config describes, fit, predict.

The one place where a config node becomes a representation, a model or a trainer, so the planner
(validation), the runner (representations), the unit (outer fold) and the tuner (inner folds) build
each piece the same way. It sits below ``bench.units`` and ``bench.tuning`` and imports neither.
The test fold never reaches ``fit`` from here: callers pass the indices to fit on and, separately,
the indices to predict once.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import numpy as np


def build_trainer(trainer_cfg: dict, seed: int, channels: tuple):
    """TrainConfig + the flow-respecting augmentation from the ``trainer`` config node."""
    from bench.engine import TrainConfig
    from representations.augment import FlowAugment

    params = dict(trainer_cfg)
    aug_cfg = params.pop("augment", None) or {}
    params["seed"] = seed
    augment = FlowAugment(channels, **aug_cfg) if aug_cfg and any(aug_cfg.values()) else None
    return TrainConfig.from_mapping(params), augment


def represent(rep_cfg: dict, flows: np.ndarray) -> tuple[np.ndarray, tuple[str, ...], list]:
    """The representation a config node describes, over flows (N, 2, 2, H, W): (x, channels, flags).

    ``x`` is a contiguous float32 (N, C, H, W) array, checked finite: a NaN must never reach training.
    """
    from representations import build_representation

    rep = build_representation(rep_cfg)
    x, flags = rep.batch(flows)
    x = np.ascontiguousarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float32)
    if not np.isfinite(x).all():  # representations promise this; check where training begins
        raise RuntimeError(f"representation {rep_cfg.get('name')} produced non-finite values")
    return x, tuple(rep.channels), flags


def has_aux(model) -> bool:
    """Whether a model explains itself: its ``forward`` takes ``return_aux`` (see ``predict_aux``)."""
    return "return_aux" in inspect.signature(model.forward).parameters


def train_and_predict(task: Any, fit_idx, eval_idx, model_cfg: dict, trainer_cfg: dict, *,
                      val_idx=None, want_aux: bool = False) -> dict:
    """Fit on ``fit_idx`` (early-stopping on ``val_idx`` if given), predict ``eval_idx`` once.

    ``task`` holds the arrays (``x``, ``y``, ``channels``, ``n_classes``, ``seed``). With
    ``want_aux``, a model whose ``forward`` takes ``return_aux`` also returns what it explains
    (e.g. FMANet's fusion weights and attention maps), whatever that is.
    """
    import torch

    from bench.engine import fit, predict_aux, predict_proba
    from models import build_model

    tcfg, augment = build_trainer(trainer_cfg, task.seed, task.channels)
    torch.manual_seed(task.seed)  # model init is part of the seeded, reproducible unit
    model = build_model(model_cfg, in_chans=task.x.shape[1], num_classes=task.n_classes, channels=task.channels)
    xt = torch.from_numpy(task.x[fit_idx])
    yt = torch.from_numpy(task.y[fit_idx])
    val = None
    if val_idx is not None and len(val_idx):
        val = (torch.from_numpy(task.x[val_idx]), torch.from_numpy(task.y[val_idx]))
    res = fit(model, xt, yt, tcfg, val=val, augment=augment)
    xe = torch.from_numpy(task.x[eval_idx])
    t0 = time.perf_counter()
    aux = None
    if want_aux and has_aux(model):
        probs, aux = predict_aux(model, xe)
    else:
        probs = predict_proba(model, xe)
    return {"fit": res, "probs": np.asarray(probs), "aux": aux, "predict_seconds": time.perf_counter() - t0}
