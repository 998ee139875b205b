"""Train one registered model twice from the same seed: the determinism tests' shared step."""

from __future__ import annotations

import torch

from bench.training.engine import TrainConfig, fit, predict_proba, seed_everything
from models import create_model


def train_twice(name: str, channels: int, n: int, epochs: int, batch_size: int, seed: int, check=None):
    """Two (model, probabilities) pairs, each trained from ``seed`` on the same random data on the CPU."""
    x = torch.randn(n, channels, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.arange(n) % 3
    runs = []
    for _ in range(2):
        seed_everything(seed)
        m = create_model(name, channels, 3)
        fit(m, x, y, TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, device="cpu"))
        runs.append((m, predict_proba(m, x)))
    return runs
