"""MM-COF: COF plus magnitude modulation (FMANet, arXiv 2510.07810).

The paper does not publish its modulation rule, so the candidates are a ``modulation`` option.
With Mc the COF map (see ``representations.cof``; in [0, 1] when θ1 + θ2 = 1) and a gate g (N, H, W):

``threshold``   g = 1[Mc >= tau]                hard mask, tau on the normalised Mc (default 0.3)
``percentile``  g = 1[Mc >= P_p(Mc)]            tau = the sample's own p-th percentile of Mc
                                                (default p = 75, NumPy's linear interpolation):
                                                keeps the most salient ~(100 - p) % of pixels
``soft``        g = Mc                          u, v scaled by Mc; the Mc channel becomes Mc·Mc
``none``        g = 1                           plain COF (for ablations)

Channels: u1g = u1·g, v1g = v1·g, mcg = Mc·g (default), plus u2g, v2g, mc, g, u1, v1, u2, v2.
Flags: COF's ``flat:m1`` / ``flat:m2``, and ``empty_gate`` when g is zero everywhere.
"""

from __future__ import annotations

import numpy as np

from representations.base import Representation, add_flag
from representations.cof import check_thetas, cof_maps
from representations.registry import register_representation

MODULATIONS = ("threshold", "percentile", "soft", "none")


def gate(mc: np.ndarray, modulation: str, tau: float, percentile: float) -> np.ndarray:
    if modulation == "threshold":
        return (mc >= tau).astype(mc.dtype)
    if modulation == "percentile":
        t = np.percentile(mc, percentile, axis=(-2, -1), keepdims=True)
        return (mc >= t).astype(mc.dtype)
    if modulation == "soft":
        return mc
    return np.ones_like(mc)


@register_representation
class MMCOF(Representation):
    name = "mm_cof"
    # the gate g is computed from Mc, which reads both phases: every gated channel reads both
    channel_phases = {"u1g": (1, 2), "v1g": (1, 2), "mcg": (1, 2), "u2g": (1, 2), "v2g": (1, 2), "mc": (1, 2),
                      "g": (1, 2), "u1": (1,), "v1": (1,), "u2": (2,), "v2": (2,)}
    default_channels = ("u1g", "v1g", "mcg")

    def __init__(self, modulation: str = "threshold", tau: float = 0.3, percentile: float = 75.0,
                 theta1: float = 0.5, theta2: float = 0.5, size: int | None = None, channels=None):
        super().__init__(size=size, channels=channels)
        if modulation not in MODULATIONS:
            raise ValueError(f"mm_cof: modulation must be one of {MODULATIONS}, got {modulation!r}")
        self.modulation = modulation
        self.tau = float(tau)
        self.percentile = float(percentile)
        if not 0 <= self.percentile <= 100:
            raise ValueError(f"mm_cof: percentile must be in [0, 100], got {percentile}")
        self.theta1, self.theta2 = check_thetas(self.name, theta1, theta2)

    @property
    def params(self):
        return {"modulation": self.modulation, "tau": self.tau, "percentile": self.percentile,
                "theta1": self.theta1, "theta2": self.theta2, **super().params}

    def _maps(self, u1, v1, u2, v2):
        maps, flags = cof_maps(u1, v1, u2, v2, self.theta1, self.theta2)
        mc = maps["mc"]
        g = gate(mc, self.modulation, self.tau, self.percentile)
        add_flag(flags, ~g.any(axis=(-2, -1)), "empty_gate")
        out = {"u1g": u1 * g, "v1g": v1 * g, "u2g": u2 * g, "v2g": v2 * g, "mcg": mc * g, "mc": mc, "g": g,
               "u1": u1, "v1": v1, "u2": u2, "v2": v2}
        return out, flags
