"""Training losses and class weights (plain functions of tensors; no config objects)."""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger(__name__)


def class_weights(y: torch.Tensor, num_classes: int, mode: str | Sequence[float] | None) -> torch.Tensor | None:
    """Per-class loss weights.

    ``none``/None -> None; ``balanced`` -> ``n / (K * n_k)`` (scikit-learn's definition), a class
    absent from ``y`` gets 0 (it has no samples to weight; logged); a list -> that list (length K).
    """
    if mode is None or (isinstance(mode, str) and mode == "none"):
        return None
    if isinstance(mode, str):
        if mode != "balanced":
            raise ValueError(f"class_weights={mode!r}: expected 'none', 'balanced' or a list of {num_classes} floats")
        counts = torch.bincount(y.detach().cpu().long(), minlength=num_classes).double()
        w = torch.zeros(num_classes, dtype=torch.float64)
        present = counts > 0
        w[present] = counts.sum() / (num_classes * counts[present])
        if not bool(present.all()):
            log.warning("class_weights=balanced: classes %s have no training samples; weight 0",
                        torch.nonzero(~present).flatten().tolist())
        return w.float()
    w = torch.as_tensor([float(v) for v in mode], dtype=torch.float32)
    if w.numel() != num_classes:
        raise ValueError(f"class_weights has {w.numel()} entries but the model has {num_classes} classes")
    if bool((w < 0).any()) or not bool(torch.isfinite(w).all()):
        raise ValueError(f"class_weights must be finite and >= 0, got {w.tolist()}")
    return w


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): ``-w_y (1 - p_y)^gamma log p_y``, averaged like weighted CE.

    With ``gamma=0`` it equals ``F.cross_entropy(weight=w)`` (mean over ``sum w_y``).
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal_gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.register_buffer("weight", weight if weight is not None else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None])[:, 0]
        loss = -((1.0 - logp.exp()).clamp_min(0.0) ** self.gamma) * logp
        if self.weight is None:
            return loss.mean()
        w = self.weight[target]
        return (w * loss).sum() / w.sum().clamp_min(torch.finfo(loss.dtype).tiny)


def make_loss(kind: str, weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
              focal_gamma: float = 2.0) -> nn.Module:
    """``ce`` (cross-entropy with optional class weights and label smoothing) or ``focal``."""
    if kind == "ce":
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=float(label_smoothing))
    if kind == "focal":
        if label_smoothing:
            raise ValueError("label_smoothing is only supported with loss='ce'")
        return FocalLoss(focal_gamma, weight)
    raise ValueError(f"loss={kind!r}: expected 'ce' or 'focal'")
