"""OFF-ApexNet (Gan, Liong, Yau, Huang & Tan, Signal Processing: Image Communication 2019).

Two streams, one for the horizontal (u) and one for the vertical (v) onset->apex flow at 28x28.
Each stream: conv 5x5 (6 filters) -> ReLU -> max-pool 2x2 -> conv 5x5 (16 filters) -> ReLU ->
max-pool 2x2, giving 7x7x16 at 28 px. The two flattened maps are concatenated (1568) and go through
two fully connected layers of 1024 units (ReLU, dropout 0.5) and the output layer.

Which input channels feed which stream (``stream_channels``):

* an explicit list of two index lists, e.g. ``[[0], [1]]`` (the paper: u only, v only) or
  ``[[0, 3], [1, 4]]`` (u1, u2 | v1, v2 of ``two_phase_stack``);
* ``"auto"`` (default), by channel count. 2 channels (u, v): ``[[0], [1]]``, the paper. A multiple
  of 3, i.e. phases of (u, v, x) as every representation in this suite lays them out (x = magnitude,
  COF magnitude or strain): the u stream gets every phase's u plus every x, the v stream every v plus
  every x. So for (u, v, strain) it is ``[[0, 2], [1, 2]]`` and for the 6-channel two-phase stack
  ``[[0, 3, 2, 5], [1, 4, 2, 5]]``. Why not drop x as the paper's input has none: in a benchmark
  of representations the third channel is what distinguishes COF / MM-COF / strain from plain flow;
  dropping it would make OFF-ApexNet blind to the very thing being compared. Any other channel
  count needs an explicit list.

Other input sizes (documented deviation): an adaptive average pool to ``pooled_size`` (default 7)
follows each stream, which is the identity at 28 px (the maps already are 7x7) and keeps the
classifier's input fixed at 64, 112 px or non-square input.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from models.registry import register_model


def resolve_stream_channels(in_chans: int, stream_channels) -> list[list[int]]:
    """The channel indices of the (u-stream, v-stream) for ``in_chans`` input channels."""
    if stream_channels in (None, "auto"):
        if in_chans == 2:
            return [[0], [1]]
        if in_chans >= 3 and in_chans % 3 == 0:
            phases = range(in_chans // 3)
            extra = [3 * p + 2 for p in phases]
            return [[3 * p for p in phases] + extra, [3 * p + 1 for p in phases] + extra]
        raise ValueError(
            f"off_apexnet: stream_channels='auto' supports 2 channels (u, v) or a multiple of 3 "
            f"(phases of u, v, x); got in_chans={in_chans}. Pass stream_channels=[[...], [...]]."
        )
    groups = [list(map(int, g)) for g in stream_channels]
    if len(groups) != 2 or any(not g for g in groups):
        raise ValueError(f"off_apexnet: stream_channels must be two non-empty index lists, got {stream_channels!r}")
    bad = [i for g in groups for i in g if not 0 <= i < in_chans]
    if bad:
        raise ValueError(f"off_apexnet: stream_channels indices {bad} out of range for in_chans={in_chans}")
    return groups


class OffApexNet(nn.Module):
    def __init__(
        self,
        in_chans: int = 2,
        num_classes: int = 3,
        stream_channels="auto",
        conv_channels: Sequence[int] = (6, 16),
        kernel_size: int = 5,
        fc_dims: Sequence[int] = (1024, 1024),
        dropout: float = 0.5,
        pooled_size: int = 7,
    ):
        super().__init__()
        self.stream_channels = resolve_stream_channels(in_chans, stream_channels)
        for i, g in enumerate(self.stream_channels):
            self.register_buffer(f"_idx{i}", torch.tensor(g, dtype=torch.long), persistent=False)
        self.streams = nn.ModuleList(self._stream(len(g), conv_channels, kernel_size, pooled_size)
                                     for g in self.stream_channels)
        layers: list[nn.Module] = []
        prev = 2 * int(conv_channels[-1]) * pooled_size * pooled_size
        for d in fc_dims:
            layers += [nn.Linear(prev, int(d)), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            prev = int(d)
        layers.append(nn.Linear(prev, num_classes))
        self.classifier = nn.Sequential(*layers)

    @staticmethod
    def _stream(in_ch: int, conv_channels, kernel_size: int, pooled_size: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for c in conv_channels:
            layers += [nn.Conv2d(in_ch, int(c), kernel_size, padding=kernel_size // 2),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            in_ch = int(c)
        layers.append(nn.AdaptiveAvgPool2d(pooled_size))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [s(x.index_select(1, getattr(self, f"_idx{i}"))).flatten(1) for i, s in enumerate(self.streams)]
        return self.classifier(torch.cat(feats, dim=1))


@register_model("off_apexnet")
def off_apexnet(in_chans: int, num_classes: int, **params) -> OffApexNet:
    return OffApexNet(in_chans=in_chans, num_classes=num_classes, **params)
