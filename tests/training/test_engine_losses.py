"""Losses, class weights and the engine's validation scores: known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from bench.training.engine import _scores
from bench.training.losses import FocalLoss, class_weights, make_loss


def test_balanced_class_weights_known_answer():
    w = class_weights(torch.tensor([0, 0, 0, 1]), 3, "balanced")
    # n / (K * n_k): 4/(3*3), 4/(3*1); class 2 has no samples -> 0
    assert torch.allclose(w, torch.tensor([4 / 9, 4 / 3, 0.0]))
    assert class_weights(torch.tensor([0, 1]), 2, "none") is None
    assert torch.equal(class_weights(torch.tensor([0, 1]), 2, [1, 3]), torch.tensor([1.0, 3.0]))
    with pytest.raises(ValueError, match=">= 0"):
        class_weights(torch.tensor([0, 1]), 2, [1, -1])
    with pytest.raises(ValueError, match="balanced"):
        class_weights(torch.tensor([0, 1]), 2, "inverse")


def test_focal_loss_known_answers():
    logits = torch.zeros(1, 2)
    target = torch.tensor([0])
    # p_t = 0.5: (1 - 0.5)^2 * ln 2
    assert float(FocalLoss(2.0)(logits, target)) == pytest.approx(0.25 * math.log(2))
    torch.manual_seed(0)
    logits, target = torch.randn(16, 3), torch.randint(0, 3, (16,))
    w = torch.tensor([0.5, 2.0, 1.0])
    assert torch.allclose(FocalLoss(0.0, w)(logits, target), F.cross_entropy(logits, target, weight=w))
    assert torch.allclose(FocalLoss(0.0)(logits, target), F.cross_entropy(logits, target))
    # gamma > 0 down-weights easy samples: never above CE
    assert float(FocalLoss(2.0)(logits, target)) < float(F.cross_entropy(logits, target))


def test_make_loss_choices():
    assert isinstance(make_loss("focal"), FocalLoss)
    with pytest.raises(ValueError, match="only supported with loss='ce'"):
        make_loss("focal", label_smoothing=0.1)
    with pytest.raises(ValueError, match="'ce' or 'focal'"):
        make_loss("hinge")


def test_validation_scores_known_confusion():
    # rows true / cols pred: [[1,1,0],[0,2,0],[1,0,0]] -> F1 = .5, .8, 0; recall = .5, 1, 0
    s = _scores(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), 3)
    assert s["uf1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert s["uar"] == pytest.approx(0.5)
    assert s["acc"] == pytest.approx(0.6)
