"""What a unit's model costs: its parameter count and its forward FLOPs per sample.

Counted once per unit, on the trained model, after training and every prediction (``bench.training.units``
records them as the results columns ``n_params`` and ``flops_per_sample``), so the report reads the
figures instead of rebuilding models. Counting runs one zero sample of the unit's input shape through
the model in eval mode under ``torch.no_grad``, with the random number generators forked and the
model's train/eval mode restored: the weights, buffers and RNG streams are as they were.

FLOPs are ``torch.utils.flop_counter.FlopCounterMode``'s: convolutions and matrix products, 2 FLOPs per
multiply-add; element-wise operations, pooling and normalisation are not counted.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

log = logging.getLogger(__name__)

COLUMNS = ("n_params", "flops_per_sample")  # the results columns model_costs fills


def n_params(model) -> int:
    """Every parameter of the model (trainable or frozen; buffers such as BN statistics are not parameters)."""
    return int(sum(p.numel() for p in model.parameters()))


def flops_per_sample(model, input_shape: Sequence[int]) -> float:
    """Forward FLOPs of one sample of ``input_shape`` (C, H, W, without the batch axis), in eval mode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    x = torch.zeros((1, *map(int, input_shape)), dtype=torch.float32, device=device)
    was_training = model.training
    counter = FlopCounterMode(display=False)
    cuda = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda), torch.no_grad(), counter:
            model.eval()
            model(x)
    finally:
        model.train(was_training)
    return float(counter.get_total_flops())


def model_costs(model, input_shape: Sequence[int]) -> dict[str, int | float]:
    """``{"n_params": ..., "flops_per_sample": ...}`` of a model on inputs of ``input_shape`` (C, H, W).

    A forward pass that cannot be counted leaves ``flops_per_sample`` NaN (logged): the unit's trained
    result is not lost over its bookkeeping.
    """
    try:
        flops = flops_per_sample(model, input_shape)
    except Exception as e:  # noqa: BLE001 - the unit is finished; only its FLOP figure is missing
        log.warning("FLOPs per sample not counted (%s: %s)", type(e).__name__, str(e)[:200])
        flops = math.nan
    return {"n_params": n_params(model), "flops_per_sample": flops}
