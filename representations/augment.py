"""Flow-respecting augmentation of representation batches (pure torch, on the batch's device).

Transforming the image plane by a linear map A (about the image centre) and a translation t moves
the motion field with it: the new field at p' = A p + t is f'(p') = A f(p). So

* horizontal flip, A = diag(-1, 1): the maps are mirrored left-right AND every u channel is negated;
* rotation by an angle a, counter-clockwise as displayed (x right, y DOWN), A = [[cos a, sin a],
  [-sin a, cos a]]: the maps are rotated AND each (u, v) pair is rotated by the same A;
* translation: the maps are shifted; vectors are unchanged.

Scalar channels (magnitudes, strain, Mc, gates) are only resampled: all of them are invariant under
flips and rotations. Vector pairs are found by name (``u<s>`` / ``v<s>``, see
``representations.base.vector_pairs``). Resampling is bilinear with zero padding (zero = no
motion); a flip alone is applied exactly with ``torch.flip`` (no resampling).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from representations.base import vector_pairs


class FlowAugment:
    """``aug(x (N, C, H, W), generator) -> x'``: random per-sample flip / rotation / translation.

    ``hflip``: probability of a horizontal flip. ``rotate_deg``: angle uniform in
    [-rotate_deg, rotate_deg] (positive = counter-clockwise on screen). ``translate_px``: shift
    uniform in [-translate_px, translate_px] pixels along each axis. Deterministic for a given
    generator state (random numbers are drawn on the generator's device, then moved).
    """

    def __init__(self, channels: Sequence[str], hflip: float = 0.5, rotate_deg: float = 0.0,
                 translate_px: float = 0.0, padding_mode: str = "zeros"):
        self.channels = tuple(channels)
        self.pairs = vector_pairs(self.channels)
        self.u_idx = [i for i, _ in self.pairs]
        if not 0 <= hflip <= 1:
            raise ValueError(f"hflip is a probability, got {hflip}")
        if rotate_deg < 0 or translate_px < 0:
            raise ValueError("rotate_deg and translate_px must be >= 0")
        if padding_mode not in ("zeros", "border", "reflection"):
            raise ValueError(f"padding_mode must be zeros|border|reflection, got {padding_mode!r}")
        self.hflip, self.rotate_deg, self.translate_px = float(hflip), float(rotate_deg), float(translate_px)
        self.padding_mode = padding_mode

    def __repr__(self):
        return (f"FlowAugment(channels={self.channels}, hflip={self.hflip}, rotate_deg={self.rotate_deg}, "
                f"translate_px={self.translate_px})")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != len(self.channels):
            raise ValueError(f"FlowAugment expects (N, {len(self.channels)}, H, W), got {tuple(x.shape)}")
        n = x.shape[0]
        gdev = generator.device
        flip = torch.rand(n, generator=generator, device=gdev) < self.hflip
        angle = (torch.rand(n, generator=generator, device=gdev) * 2 - 1) * math.radians(self.rotate_deg)
        shift = (torch.rand(n, 2, generator=generator, device=gdev) * 2 - 1) * self.translate_px
        flip, angle, shift = flip.to(x.device), angle.to(x.device, x.dtype), shift.to(x.device, x.dtype)
        if self.rotate_deg == 0 and self.translate_px == 0:
            return self.apply_flip(x, flip)
        return self.apply(x, flip, angle, shift)

    def apply_flip(self, x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """Exact horizontal flip of the samples where ``flip`` (N,) is True."""
        if not bool(flip.any()):
            return x
        y = torch.where(flip[:, None, None, None], torch.flip(x, dims=[-1]), x)
        if self.u_idx:
            sign = torch.where(flip, -1.0, 1.0).to(x.dtype)
            y = y.clone()
            y[:, self.u_idx] = y[:, self.u_idx] * sign[:, None, None, None]
        return y

    def apply(self, x: torch.Tensor, flip: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Apply A = R(angle) · diag(flip ? -1 : 1, 1) and translation ``shift`` (N, 2) in pixels."""
        n, _, h, w = x.shape
        c, s = torch.cos(angle), torch.sin(angle)
        fx = torch.where(flip, -1.0, 1.0).to(x.dtype)
        # A (N, 2, 2) in pixel coordinates (x right, y down), flip first then rotate.
        a = torch.stack([torch.stack([c * fx, s], -1), torch.stack([-s * fx, c], -1)], -2)
        # affine_grid maps OUTPUT normalised coords to INPUT ones: x_in = D^-1 A^-1 D x_out - D^-1 A^-1 t,
        # with D = diag(w/2, h/2) the normalised->pixel scale (align_corners=False; centre at 0).
        d = torch.diag(torch.tensor([w / 2.0, h / 2.0], dtype=x.dtype, device=x.device))
        d_inv = torch.diag(torch.tensor([2.0 / w, 2.0 / h], dtype=x.dtype, device=x.device))
        a_inv = torch.linalg.inv(a)
        lin = d_inv @ a_inv @ d
        trans = -(d_inv @ a_inv @ shift[:, :, None])
        theta = torch.cat([lin, trans], dim=-1)
        grid = F.affine_grid(theta, [n, x.shape[1], h, w], align_corners=False)
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False)
        if self.pairs:
            iu = [p[0] for p in self.pairs]
            iv = [p[1] for p in self.pairs]
            u, v = y[:, iu], y[:, iv]
            a4 = a[:, :, :, None, None]
            y = y.clone()
            y[:, iu] = a4[:, 0, 0, None] * u + a4[:, 0, 1, None] * v
            y[:, iv] = a4[:, 1, 0, None] * u + a4[:, 1, 1, None] * v
        return y
