"""Shared machinery of the motion representations.

A representation turns a sample's two-phase flow (phase 1 = onset->apex, phase 2 = apex->offset,
each (u, v) in pixels) into a float32 tensor (C, H, W) with named channels.

Every representation:

* takes ``size`` (output H = W; None = keep the flow's size). The FLOWS are resized before the
  formula, with vector scaling (u *= new_w / old_w, v *= new_h / old_h; INTER_AREA when shrinking,
  see ``bench.flow.ops.resize_flow``), so magnitudes and strain are those of the resized grid.
* is computed batch-first in float64 NumPy (``_maps``) and cast to float32 at the end;
  ``__call__`` is the batch of one, so ``batch(x)`` equals stacking ``__call__`` by construction.
* rejects NaN/inf input with a ValueError naming the sample; degenerate (flat) maps are defined
  (normalise to zeros) and reported as flags.

Channel naming convention (augmentation relies on it): a vector component channel is ``u<suffix>``
or ``v<suffix>`` and comes with its partner of the same suffix (u1/v1, u2/v2, u1g/v1g); every
other channel is a scalar field (magnitude, strain, Mc, ...), invariant under rotation and flips.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from bench.flow.ops import resize_flow

_VEC = re.compile(r"^([uv])(.*)$")


def vector_pairs(channels: Sequence[str]) -> list[tuple[int, int]]:
    """Index pairs (i_u, i_v) of the vector channels; ValueError if a component lacks its partner."""
    us, vs = {}, {}
    for i, c in enumerate(channels):
        m = _VEC.match(c)
        if m:
            (us if m.group(1) == "u" else vs)[m.group(2)] = i
    if set(us) != set(vs):
        lone = sorted({f"u{s}" for s in set(us) - set(vs)} | {f"v{s}" for s in set(vs) - set(us)})
        raise ValueError(f"vector channels without their partner: {lone} in {list(channels)}")
    return [(us[s], vs[s]) for s in sorted(us, key=lambda s: us[s])]


def scalar_channels(channels: Sequence[str]) -> list[int]:
    return [i for i, c in enumerate(channels) if not _VEC.match(c)]


@dataclass(frozen=True)
class RepresentationOutput:
    tensor: torch.Tensor  # (C, H, W) float32
    channels: tuple[str, ...]
    flags: tuple[str, ...]


def check_finite(flows: np.ndarray, sample_ids: Sequence[Any] | None = None) -> None:
    """ValueError naming the first sample (and phase) holding a NaN/inf; flows (N, 2, 2, H, W)."""
    bad = ~np.isfinite(flows)
    if bad.any():
        n_bad = bad.reshape(len(flows), 2, -1).sum(-1)
        i, ph = (int(x) for x in np.argwhere(n_bad)[0])
        name = sample_ids[i] if sample_ids is not None else f"#{i}"
        raise ValueError(
            f"sample {name}: phase-{ph + 1} flow has {int(n_bad[i, ph])} NaN/inf values "
            f"({int((n_bad > 0).any(1).sum())} sample(s) affected in this batch)"
        )


def magnitude(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.sqrt(u * u + v * v)


def minmax_normalise(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample min-max over the last two axes of (N, H, W): (normalised, flat (N,) bool).

    A flat map (max == min, e.g. an all-zero flow) normalises to zeros and is reported as flat.
    """
    lo = m.min(axis=(-2, -1), keepdims=True)
    hi = m.max(axis=(-2, -1), keepdims=True)
    rng = hi - lo
    flat = (rng <= 0).reshape(len(m))
    out = np.where(rng > 0, (m - lo) / np.where(rng > 0, rng, 1.0), 0.0)
    return out, flat


def optical_strain(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Optical strain magnitude sqrt(ux² + vy² + ½(uy + vx)²) of (N, H, W) flows.

    Derivatives: ``np.gradient`` with unit spacing (per pixel), i.e. central differences
    (f[i+1] - f[i-1]) / 2 inside and one-sided first differences on the border rows/columns.
    The formula is the Frobenius norm of the symmetric strain tensor
    [[ux, ½(uy+vx)], [½(uy+vx), vy]]: sqrt(ux² + vy² + 2·(½(uy+vx))²).
    """
    uy, ux = np.gradient(u, axis=(-2, -1))
    vy, vx = np.gradient(v, axis=(-2, -1))
    return np.sqrt(ux * ux + vy * vy + 0.5 * (uy + vx) ** 2)


class Representation:
    """Base class. A subclass is one file: it sets ``name`` (its registry key), ``channel_phases``
    (every channel it can produce -> the flow phases that channel reads), ``default_channels``, and
    implements ``_maps(u1, v1, u2, v2) -> dict[name, (N, H, W)]``.

    What it declares about itself (so the planner, models and loaders never list representations):
    ``phases`` (the phases its chosen channels read), ``phase_groups`` (its channels as one block per
    phase, when they are laid out that way), ``recomputes`` (quantities it derives from u, v even when
    a flow file stores them) and ``exactness(...)`` (how exact it is on precomputed flow files).
    """

    name: str = ""
    channel_phases: dict[str, tuple[int, ...]] = {}
    default_channels: tuple[str, ...] = ()
    recomputes: tuple[str, ...] = ()
    available: tuple[str, ...] = ()  # derived: the keys of channel_phases

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.available = tuple(cls.channel_phases)

    def __init__(self, size: int | None = None, channels: Sequence[str] | None = None):
        if size is not None:
            size = int(size)
            if size < 2:
                raise ValueError(f"{self.name}: size must be >= 2, got {size}")
        self.size = size
        chans = tuple(channels) if channels is not None else tuple(self.default_channels)
        unknown = [c for c in chans if c not in self.available]
        if unknown or not chans:
            raise ValueError(f"{self.name}: unknown channels {unknown or '(none given)'}; "
                             f"available: {list(self.available)}")
        if len(set(chans)) != len(chans):
            raise ValueError(f"{self.name}: duplicate channels in {list(chans)}")
        vector_pairs(chans)  # a u without its v (or vice versa) would break flips and rotations
        self.channels: tuple[str, ...] = chans

    # -- what the representation declares about itself -------------------------------------------
    @property
    def phases(self) -> tuple[int, ...]:
        """The flow phases (1 = onset->apex, 2 = apex->offset) that the chosen channels read."""
        return tuple(sorted({p for c in self.channels for p in self.channel_phases[c]}))

    @property
    def phase_groups(self) -> tuple[tuple[str, ...], ...] | None:
        """The channels as consecutive equal-sized blocks, one per phase in phase order, each block
        reading only its own phase (e.g. two_phase_stack: (u1, v1, m1), (u2, v2, m2)); None when the
        channels are not laid out that way (e.g. COF's mc reads both phases)."""
        phases = self.phases
        if any(len(self.channel_phases[c]) != 1 for c in self.channels) or len(self.channels) % len(phases):
            return None
        k = len(self.channels) // len(phases)
        groups = tuple(self.channels[i * k:(i + 1) * k] for i in range(len(phases)))
        if any({self.channel_phases[c][0] for c in g} != {p} for g, p in zip(groups, phases)):
            return None
        return groups

    @classmethod
    def exactness(cls, base: str, has_phase2: bool, stored_channels: Sequence[str] = ()) -> str:
        """How exact this representation (default channels) is on precomputed flow files.

        ``base``: what the files' format allows ('exact', 'exact up to ...', 'approximate: ...');
        ``has_phase2``: whether the apex->offset flow was distributed; ``stored_channels``: the
        channels the files hold beyond u, v (e.g. strain).
        """
        reads = {p for c in cls.default_channels for p in cls.channel_phases[c]}
        if 2 in reads and not has_phase2:
            return "unavailable: no apex->offset flow (phase 2 is zeros)"
        unused = [c for c in cls.recomputes if c in stored_channels]
        if unused:
            base += f"; the stored {', '.join(unused)} channel is not used ({', '.join(unused)} is recomputed from u, v)"
        return base

    @property
    def params(self) -> dict:
        """Constructor parameters (for the run log)."""
        return {"size": self.size, "channels": list(self.channels)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"

    # -- subclass hook ------------------------------------------------------------------------
    def _maps(self, u1, v1, u2, v2) -> tuple[dict[str, np.ndarray], list[list[str]]]:
        raise NotImplementedError

    # -- public API -----------------------------------------------------------------------------
    def batch_numpy(self, flows: np.ndarray, sample_ids: Sequence[Any] | None = None
                    ) -> tuple[np.ndarray, list[tuple[str, ...]]]:
        flows = np.asarray(flows)
        if flows.ndim != 5 or flows.shape[1:3] != (2, 2):
            raise ValueError(f"{self.name}: flows must be (N, 2 phases, 2, H, W), got {flows.shape}")
        if sample_ids is not None and len(sample_ids) != len(flows):
            raise ValueError(f"{self.name}: {len(sample_ids)} sample ids for {len(flows)} samples")
        check_finite(flows, sample_ids)
        f = resize_flow(flows, self.size).astype(np.float64)
        n = len(f)
        maps, flags = self._maps(f[:, 0, 0], f[:, 0, 1], f[:, 1, 0], f[:, 1, 1])
        h, w = f.shape[-2:]
        out = np.empty((n, len(self.channels), h, w), np.float32)
        for k, c in enumerate(self.channels):
            out[:, k] = maps[c]
        return out, [tuple(fl) for fl in flags]

    def batch(self, flows: np.ndarray, sample_ids: Sequence[Any] | None = None
              ) -> tuple[torch.Tensor, list[tuple[str, ...]]]:
        """(N, C, H, W) float32 tensor and per-sample flags of flows (N, 2, 2, H, W)."""
        out, flags = self.batch_numpy(flows, sample_ids)
        return torch.from_numpy(out), flags

    def __call__(self, flow1: np.ndarray, flow2: np.ndarray, sample_id: Any = None) -> RepresentationOutput:
        """One sample: flow1 (2, H, W) onset->apex, flow2 (2, H, W) apex->offset."""
        f1, f2 = np.asarray(flow1), np.asarray(flow2)
        if f1.shape != f2.shape or f1.ndim != 3 or f1.shape[0] != 2:
            raise ValueError(f"{self.name}: flow1/flow2 must both be (2, H, W), got {f1.shape}, {f2.shape}")
        out, flags = self.batch_numpy(np.stack([f1, f2])[None], None if sample_id is None else [sample_id])
        return RepresentationOutput(torch.from_numpy(out[0]), self.channels, flags[0])


def new_flags(n: int) -> list[list[str]]:
    return [[] for _ in range(n)]


def add_flag(flags: list[list[str]], mask: np.ndarray, flag: str) -> None:
    for i in np.flatnonzero(mask):
        flags[i].append(flag)


def zero_flow_flags(flags: list[list[str]], u: np.ndarray, v: np.ndarray, phase: int) -> None:
    add_flag(flags, ~(u.any(axis=(-2, -1)) | v.any(axis=(-2, -1))), f"zero_flow:phase{phase}")
