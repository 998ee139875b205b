"""COF, combined optical flow (after FMANet, arXiv 2510.07810): both phases' magnitudes fused.

    Mi  = sqrt(ui² + vi²)                         per phase, pixels
    Min = (Mi - min Mi) / (max Mi - min Mi)       min-max over the sample's own map, in [0, 1]
    Mc  = θ1·M1n + θ2·M2n                         (θ1 = θ2 = 0.5 by default: Mc in [0, 1])

A flat Mi (max == min, e.g. a zero flow) normalises to zeros and flags ``flat:m1`` / ``flat:m2``.
Default channels (u1, v1, mc); ``channels`` may pick any of u1, v1, u2, v2, m1, m2, m1n, m2n, mc,
e.g. ("u1", "v1", "u2", "v2", "mc") to keep both phases' directions.
"""

from __future__ import annotations

import numpy as np

from representations.base import (
    Representation,
    add_flag,
    magnitude,
    minmax_normalise,
    new_flags,
    zero_flow_flags,
)
from representations.registry import register_representation


def check_thetas(name: str, theta1: float, theta2: float) -> tuple[float, float]:
    t1, t2 = float(theta1), float(theta2)
    if not (np.isfinite(t1) and np.isfinite(t2)) or t1 < 0 or t2 < 0 or t1 + t2 == 0:
        raise ValueError(f"{name}: theta1, theta2 must be finite, >= 0 and not both 0, got {t1}, {t2}")
    return t1, t2


def cof_maps(u1, v1, u2, v2, theta1: float, theta2: float):
    """All COF maps of a batch (N, H, W) and per-sample flags."""
    flags = new_flags(len(u1))
    zero_flow_flags(flags, u1, v1, 1)
    zero_flow_flags(flags, u2, v2, 2)
    m1, m2 = magnitude(u1, v1), magnitude(u2, v2)
    m1n, flat1 = minmax_normalise(m1)
    m2n, flat2 = minmax_normalise(m2)
    add_flag(flags, flat1, "flat:m1")
    add_flag(flags, flat2, "flat:m2")
    mc = theta1 * m1n + theta2 * m2n
    maps = {"u1": u1, "v1": v1, "u2": u2, "v2": v2, "m1": m1, "m2": m2, "m1n": m1n, "m2n": m2n, "mc": mc}
    return maps, flags


@register_representation
class COF(Representation):
    name = "cof"
    channel_phases = {"u1": (1,), "v1": (1,), "u2": (2,), "v2": (2,), "m1": (1,), "m2": (2,),
                      "m1n": (1,), "m2n": (2,), "mc": (1, 2)}
    default_channels = ("u1", "v1", "mc")

    def __init__(self, theta1: float = 0.5, theta2: float = 0.5, size: int | None = None, channels=None):
        super().__init__(size=size, channels=channels)
        self.theta1, self.theta2 = check_thetas(self.name, theta1, theta2)

    @property
    def params(self):
        return {"theta1": self.theta1, "theta2": self.theta2, **super().params}

    def _maps(self, u1, v1, u2, v2):
        return cof_maps(u1, v1, u2, v2, self.theta1, self.theta2)
