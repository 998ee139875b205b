"""Small building blocks shared by the model families (no external weights, any input size)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def conv_bn_act(in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (same padding, no bias: BN follows) -> BatchNorm -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class SmallEncoder(nn.Module):
    """A small CNN: one conv-BN-ReLU block per width, 2x2 max-pool between blocks.

    With ``widths=(16, 32, 64)`` the output stride is 4: a 28x28 input gives a 7x7 map, 112 gives
    28x28, so a spatial attention map keeps readable resolution at every input size.
    """

    def __init__(self, in_chans: int, widths: Sequence[int] = (16, 32, 64)):
        super().__init__()
        if not widths:
            raise ValueError("SmallEncoder needs at least one width")
        layers: list[nn.Module] = []
        prev = in_chans
        for i, w in enumerate(widths):
            if i > 0:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))  # ceil: odd sizes never lose a row
            layers.append(conv_bn_act(prev, int(w)))
            prev = int(w)
        self.body = nn.Sequential(*layers)
        self.num_features = prev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SqueezeExcite(nn.Module):
    """Squeeze-excitation (Hu et al. 2018): channel gates from globally pooled features.

    ``forward`` returns ``(x * gates, gates)`` so callers can report the gates.
    """

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.fc(x.mean(dim=(2, 3)))
        return x * g[:, :, None, None], g


class MagnitudeGate(nn.Module):
    """Spatial sigmoid gate computed from one magnitude channel: ``g = sigmoid(conv(relu(conv(m))))``.

    The learnable counterpart of MM-COF's fixed mask ``1[Mc >= tau]``: two small convolutions let it
    learn a soft, locally smoothed threshold on the magnitude.
    """

    def __init__(self, hidden: int = 8, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.net = nn.Sequential(
            nn.Conv2d(1, hidden, kernel_size, padding=pad),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, kernel_size, padding=pad),
        )

    def forward(self, magnitude: torch.Tensor) -> torch.Tensor:
        """``magnitude`` (N, 1, H, W) -> gate (N, 1, H, W) in (0, 1)."""
        return torch.sigmoid(self.net(magnitude))


class SpatialAttention(nn.Module):
    """CBAM spatial attention (Woo et al. 2018): ``a = sigmoid(conv([mean_c(F), max_c(F)]))``.

    ``forward`` returns ``(F * a, a)`` with ``a`` of shape (N, 1, h, w).
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        a = torch.sigmoid(self.conv(pooled))
        return x * a, a
