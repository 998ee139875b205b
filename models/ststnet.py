"""STSTNet (Liong, Gan, See, Khor & Huang, FG 2019): Shallow Triple Stream Three-dimensional CNN.

Input: (u, v, optical strain) at 28x28 — the ``strain`` representation. Three parallel streams each
see all input channels: conv 3x3 with 3, 5 and 8 filters -> ReLU -> BatchNorm -> max-pool 3x3
stride 3 -> dropout; the 16 maps are concatenated, average-pooled 2x2 and flattened (5x5x16 = 400
at 28 px) into one fully connected layer. Layer order (ReLU before BN, pool padding 1, dropout 0.5)
follows the authors' released MATLAB network as ported to PyTorch in the public MER code.

Other input sizes (documented deviation): the fixed 2x2 average pool is replaced by an adaptive
average pool to ``pooled_size`` x ``pooled_size`` (default 5). At 28 px the max-pool output is
10x10, where adaptive pooling to 5x5 *is* the 2x2/stride-2 average pool, so the 28 px network is
exactly the original; at 64 or 112 px (or non-square input) the classifier keeps its 400 inputs.

Computed as one stream (same network, cheaper): each of the three streams sees every input channel
through a 3x3 convolution, and every op after it (ReLU, BatchNorm, max-pool, dropout) acts on each
map alone, so the three streams *are* one 3x3 convolution with 3+5+8 filters followed by those ops
on its 16 maps; ``stream(k)`` slices stream k back out (the tests check the two agree). The one
convolution, in NHWC (``preferred_memory_format``, whose 3x3/3 max-pool is ~3x faster than NCHW's on
CPU), trains a fold in ~0.5x the CPU time of the three separate NCHW streams on one core
(``python -m benchmarks.engine --changes``). The weight
initialisation has the same distribution (each filter's fan-in is the same ``in_chans * 9``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from models.registry import register_model


class STSTNet(nn.Module):
    preferred_memory_format = "channels_last"  # bench.training.engine trains it in NHWC (memory_format: auto)

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 3,
        branch_channels: Sequence[int] = (3, 5, 8),
        batch_norm: bool = True,
        dropout: float = 0.5,
        pooled_size: int = 5,
    ):
        super().__init__()
        if in_chans < 1 or num_classes < 2:
            raise ValueError(f"ststnet needs in_chans >= 1 and num_classes >= 2, got {in_chans}, {num_classes}")
        self.branch_channels = tuple(int(c) for c in branch_channels)
        if not self.branch_channels or min(self.branch_channels) < 1:
            raise ValueError(f"ststnet branch_channels must be positive filter counts, got {list(branch_channels)}")
        c = sum(self.branch_channels)
        # the three streams' convolutions side by side (filters 0-2, 3-7, 8-15 at the defaults)
        self.streams = nn.Sequential(
            nn.Conv2d(in_chans, c, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(c) if batch_norm else nn.Identity(),
            nn.MaxPool2d(kernel_size=3, stride=3, padding=1),
            nn.Dropout(dropout),
        )
        self.pool = nn.AdaptiveAvgPool2d(pooled_size)
        self.fc = nn.Linear(c * pooled_size * pooled_size, num_classes)

    def stream(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Stream ``k`` alone (conv of its filters, ReLU, BN, max-pool; eval-mode BN and no dropout),
        computed from its slice of the shared weights: the paper's per-stream view, for tests."""
        a = sum(self.branch_channels[:k])
        b = a + self.branch_channels[k]
        conv, bn = self.streams[0], self.streams[2]
        h = torch.relu(nn.functional.conv2d(x, conv.weight[a:b], conv.bias[a:b], padding=1))
        if isinstance(bn, nn.BatchNorm2d):
            h = nn.functional.batch_norm(h, bn.running_mean[a:b], bn.running_var[a:b], bn.weight[a:b], bn.bias[a:b],
                                         False, 0.0, bn.eps)
        return nn.functional.max_pool2d(h, kernel_size=3, stride=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.streams(x)).flatten(1))


@register_model
def ststnet(in_chans: int, num_classes: int, **params) -> STSTNet:
    return STSTNet(in_chans=in_chans, num_classes=num_classes, **params)
