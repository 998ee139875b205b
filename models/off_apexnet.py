"""OFF-ApexNet (Gan, Liong, Yau, Huang & Tan, Signal Processing: Image Communication 2019).

Two streams, one for the horizontal (u) and one for the vertical (v) onset->apex flow at 28x28.
Each stream: conv 5x5 (6 filters) -> ReLU -> max-pool 2x2 -> conv 5x5 (16 filters) -> ReLU ->
max-pool 2x2, giving 7x7x16 at 28 px. The two flattened maps are concatenated (1568) and go through
two fully connected layers of 1024 units (ReLU, dropout 0.5) and the output layer.

Which input channels feed which stream (``stream_channels``):

* an explicit list of two index lists, e.g. ``[[0], [1]]`` (the paper: u only, v only) or
  ``[[0, 3], [1, 4]]`` (u1, u2 | v1, v2 of ``two_phase_stack``);
* ``"auto"`` (default), read from the input's channel names (the representation's ``channels``,
  which the runner passes): the u stream gets every horizontal component (``u*``) plus every scalar
  channel (magnitude, COF magnitude, strain, ...), the v stream every ``v*`` plus every scalar. So
  for (u1, v1, strain1) it is ``[[0, 2], [1, 2]]`` and for the two-phase stack
  ``[[0, 3, 2, 5], [1, 4, 2, 5]]``; for (u, v) it is the paper's ``[[0], [1]]``. Why the scalars
  join both streams although the paper's input has none: in a benchmark of representations the
  scalar channel is what distinguishes COF / MM-COF / strain from plain flow; dropping it would make
  OFF-ApexNet blind to the very thing being compared. An input without u and v channels is skipped
  by the planner (``skip_input``). Called without channel names (the bare API), ``auto`` assumes the
  suite's layout: 2 channels are (u, v), a multiple of 3 is phases of (u, v, scalar).

Other input sizes (documented deviation): an adaptive average pool to ``pooled_size`` (default 7)
follows each stream, which is the identity at 28 px (the maps already are 7x7) and keeps the
classifier's input fixed at 64, 112 px or non-square input.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from models.registry import register_model


def resolve_stream_channels(in_chans: int, stream_channels, channels: Sequence[str] | None = None) -> list[list[int]]:
    """The channel indices of the (u-stream, v-stream) for ``in_chans`` input channels."""
    if stream_channels in (None, "auto"):
        if channels is not None:
            if len(channels) != in_chans:
                raise ValueError(f"off_apexnet: {len(channels)} channel names for in_chans={in_chans}")
            us = [i for i, c in enumerate(channels) if c.startswith("u")]
            vs = [i for i, c in enumerate(channels) if c.startswith("v")]
            scalars = [i for i, c in enumerate(channels) if not c.startswith(("u", "v"))]
            if not us or not vs:
                raise ValueError(f"off_apexnet: stream_channels='auto' needs u and v channels, got {list(channels)}")
            return [us + scalars, vs + scalars]
        if in_chans == 2:
            return [[0], [1]]
        if in_chans >= 3 and in_chans % 3 == 0:
            phases = range(in_chans // 3)
            extra = [3 * p + 2 for p in phases]
            return [[3 * p for p in phases] + extra, [3 * p + 1 for p in phases] + extra]
        raise ValueError(
            f"off_apexnet: stream_channels='auto' without channel names supports 2 channels (u, v) or a "
            f"multiple of 3 (phases of u, v, x); got in_chans={in_chans}. Pass stream_channels=[[...], [...]]."
        )
    groups = [list(map(int, g)) for g in stream_channels]
    if len(groups) != 2 or any(not g for g in groups):
        raise ValueError(f"off_apexnet: stream_channels must be two non-empty index lists, got {stream_channels!r}")
    bad = [i for g in groups for i in g if not 0 <= i < in_chans]
    if bad:
        raise ValueError(f"off_apexnet: stream_channels indices {bad} out of range for in_chans={in_chans}")
    return groups


def skip_input(representation, stream_channels="auto", **_) -> tuple[bool, str]:
    """With ``stream_channels=auto`` the input needs a horizontal and a vertical flow component."""
    chans = representation.channels
    if stream_channels in (None, "auto") and not (any(c.startswith("u") for c in chans)
                                                   and any(c.startswith("v") for c in chans)):
        return True, f"off_apexnet's u and v streams need u and v channels; {representation.name} has {', '.join(chans)}"
    return False, ""


class _AdaptiveAvgPool(nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d`` that passes a map already of its output size through untouched (the
    average of one element is that element, so outputs and gradients are bitwise the same), instead
    of copying it forward and backward (~4% of OFF-ApexNet's training step at 28 px)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.output_size if isinstance(self.output_size, tuple) else (self.output_size,) * 2
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        return super().forward(x)


class OffApexNet(nn.Module):
    # NHWC: its 2x2 max-pools are ~3x faster in channels_last on CPU (14-15% of the NCHW training step,
    # 5% in NHWC); with the pass-through pool below a step at 28 px, batch 32, one core takes x0.89-0.91
    # the CPU time (python -m benchmarks.roofline). bench.training.engine follows it (memory_format: auto).
    preferred_memory_format = "channels_last"

    def __init__(
        self,
        in_chans: int = 2,
        num_classes: int = 3,
        stream_channels="auto",
        channels: Sequence[str] | None = None,
        conv_channels: Sequence[int] = (6, 16),
        kernel_size: int = 5,
        fc_dims: Sequence[int] = (1024, 1024),
        dropout: float = 0.5,
        pooled_size: int = 7,
    ):
        super().__init__()
        self.stream_channels = resolve_stream_channels(in_chans, stream_channels, channels)
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
        layers.append(_AdaptiveAvgPool(pooled_size))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [s(x.index_select(1, getattr(self, f"_idx{i}"))).flatten(1) for i, s in enumerate(self.streams)]
        return self.classifier(torch.cat(feats, dim=1))


@register_model(skip=skip_input)
def off_apexnet(in_chans: int, num_classes: int, channels: Sequence[str] | None = None, **params) -> OffApexNet:
    return OffApexNet(in_chans=in_chans, num_classes=num_classes, channels=channels, **params)
