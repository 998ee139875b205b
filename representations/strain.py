"""Optical strain: (u1, v1, strain1), the STSTNet input (Liong et al. 2019).

strain = sqrt(ux² + vy² + ½(uy + vx)²), derivatives by ``np.gradient`` in pixel units (central
differences inside, one-sided differences on the border; see ``representations.base.optical_strain``).
Not normalised. Phase-2 channels (u2, v2, strain2) and magnitudes (m1, m2) can be requested via
``channels``.
"""

from __future__ import annotations

from representations.base import (
    Representation,
    magnitude,
    new_flags,
    optical_strain,
    zero_flow_flags,
)
from representations.registry import register_representation


@register_representation
class Strain(Representation):
    name = "strain"
    channel_phases = {"u1": (1,), "v1": (1,), "strain1": (1,), "m1": (1,),
                      "u2": (2,), "v2": (2,), "strain2": (2,), "m2": (2,)}
    recomputes = ("strain",)  # a stored strain channel is not read: strain comes from u, v
    default_channels = ("u1", "v1", "strain1")

    def _maps(self, u1, v1, u2, v2):
        flags = new_flags(len(u1))
        zero_flow_flags(flags, u1, v1, 1)
        maps = {"u1": u1, "v1": v1, "u2": u2, "v2": v2}
        want = set(self.channels)
        if "strain1" in want:
            maps["strain1"] = optical_strain(u1, v1)
        if "m1" in want:
            maps["m1"] = magnitude(u1, v1)
        if want & {"u2", "v2", "strain2", "m2"}:
            zero_flow_flags(flags, u2, v2, 2)
        if "strain2" in want:
            maps["strain2"] = optical_strain(u2, v2)
        if "m2" in want:
            maps["m2"] = magnitude(u2, v2)
        return maps, flags
