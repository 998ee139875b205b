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
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from models.registry import register_model


class STSTNet(nn.Module):
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
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_chans, int(c), kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.BatchNorm2d(int(c)) if batch_norm else nn.Identity(),
                nn.MaxPool2d(kernel_size=3, stride=3, padding=1),
                nn.Dropout(dropout),
            )
            for c in branch_channels
        )
        self.pool = nn.AdaptiveAvgPool2d(pooled_size)
        self.fc = nn.Linear(sum(int(c) for c in branch_channels) * pooled_size * pooled_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([b(x) for b in self.branches], dim=1)
        return self.fc(self.pool(h).flatten(1))


@register_model
def ststnet(in_chans: int, num_classes: int, **params) -> STSTNet:
    return STSTNet(in_chans=in_chans, num_classes=num_classes, **params)
