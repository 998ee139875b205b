"""Stored channels: what precomputed flow files hold, fed as they are (nothing recomputed).

The public MEGC2019 flow releases (HTNet's single-phase ``STSNet_whole_norm_u_v_os``, CausalNet's
two-phase release) store per clip an 8-bit RGB PNG of u, v and optical strain, each min-max
normalised per image. Every other representation rebuilds its channels from u, v (so the stored
strain is not used, and min-max images give u, v only up to sign and scale); ``stored`` feeds the
files' own channels, so a published network can be re-run on its own published input.

Channels: ``<stored name><phase>``, i.e. ``u1, v1, strain1`` (default: the onset->apex file) and
``u2, v2, strain2`` (the apex->offset file, two-phase releases). Values: with ``rescale: true``
(default) an image's pixels divided by its maximum value (255 for 8-bit), i.e. ``[0, 1]`` as
torchvision's ``ToTensor`` gives them; ``rescale: false`` feeds the pixel values themselves (0..255).
Arrays (``.npy`` / ``.npz``) are fed as stored either way. Exact when the files' size equals the
representation's ``size`` (the releases are 28 x 28 = the suite's ``input_size``); otherwise each
channel is resized as an image (area / bilinear, no vector scaling).

On flows the suite computes (synthetic data, frames + TV-L1) nothing is stored: ``u, v`` are the
computed flow in pixels and ``strain`` is computed from them by the ``strain`` representation's
formula (``representations.base.optical_strain``), flagged ``stored:computed`` per sample. That
keeps a study crossing datasets runnable, and the manifest and exactness note say what was fed.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np
import torch

from representations.base import Representation, new_flags, optical_strain, zero_flow_flags
from representations.registry import register_representation

_QUANTITIES = ("u", "v", "strain")


@register_representation
class Stored(Representation):
    name = "stored"
    channel_phases = {f"{q}{p}": (p,) for p in (1, 2) for q in _QUANTITIES}
    default_channels = ("u1", "v1", "strain1")
    reads_stored = True  # bench.training.fold.represent passes the flow set's stored channels

    def __init__(self, size: int | None = None, channels: Sequence[str] | None = None, rescale: bool = True):
        super().__init__(size=size, channels=channels)
        if not isinstance(rescale, bool):
            raise ValueError(f"stored: rescale must be true or false, got {rescale!r}")
        self.rescale = rescale

    @property
    def params(self) -> dict:
        return {**super().params, "rescale": self.rescale}

    @classmethod
    def exactness(cls, base: str, has_phase2: bool, stored_channels: Sequence[str] = ()) -> str:
        wanted = sorted({c[:-1] for c in cls.default_channels})
        missing = [q for q in wanted if q not in stored_channels]
        if missing:
            return (f"unavailable: the files store {list(stored_channels) or ['u', 'v']}, not {missing} "
                    "(declare flow_file.channels, or use a representation that computes it)")
        return ("exact: the stored channels as they are in the files (images: pixel / 255 with rescale, "
                "else the pixel values), nothing recomputed: the published networks' own input")

    # computed flows (nothing stored): u, v as computed, strain from them
    def _maps(self, u1, v1, u2, v2):
        flags = new_flags(len(u1))
        maps = {"u1": u1, "v1": v1, "u2": u2, "v2": v2}
        for ph, (u, v) in ((1, (u1, v1)), (2, (u2, v2))):
            if ph in self.phases:
                zero_flow_flags(flags, u, v, ph)
                if f"strain{ph}" in self.channels:
                    maps[f"strain{ph}"] = optical_strain(u, v)
        for f in flags:
            f.append("stored:computed")
        return maps, flags

    def batch_stored(self, flows: np.ndarray, stored: Any, sample_ids: Sequence[Any] | None = None
                     ) -> tuple[torch.Tensor, list[tuple[str, ...]]]:
        """(N, C, H, W) from the flow set's ``StoredChannels`` (``bench.flow.pipeline``); computed
        as in ``_maps`` when ``stored`` is None (flows the suite computed)."""
        if stored is None:
            return self.batch(flows, sample_ids)
        vals = np.asarray(stored.values)
        stored_names = list(stored.channels)
        missing_ph = [p for p in self.phases if p not in stored.phases]
        if missing_ph:
            raise ValueError(f"stored: channels {list(self.channels)} read phase {missing_ph[0]}, but the "
                             f"files provide phase(s) {list(stored.phases)} only (a single-phase release "
                             "has no apex->offset file)")
        out_idx = []
        for c in self.channels:
            q, ph = c[:-1], int(c[-1])
            if q not in stored_names:
                raise ValueError(f"stored: channel {c!r} needs a stored {q!r} channel, but the files store "
                                 f"{stored_names} (flow_file.channels)")
            out_idx.append((ph - 1, stored_names.index(q)))
        x = np.stack([vals[:, p, k] for p, k in out_idx], axis=1)
        if self.rescale and stored.max_value:
            x = x / np.float32(stored.max_value)
        if self.size is not None and x.shape[-2:] != (self.size, self.size):
            interp = cv2.INTER_AREA if x.shape[-1] > self.size else cv2.INTER_LINEAR
            x = np.stack([[cv2.resize(c, (self.size, self.size), interpolation=interp) for c in s] for s in x])
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            i = int(np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(1))[0])
            raise ValueError(f"stored: sample {sample_ids[i] if sample_ids is not None else i} holds NaN/inf")
        return torch.from_numpy(x), [() for _ in range(len(x))]
