"""Two-phase stack: (u1, v1, m1, u2, v2, m2), both phases' raw flows and magnitudes (pixels).

For models that take both phases (FMANet) and for timm baselines with ``in_chans=6``.
"""

from __future__ import annotations

from representations.base import Representation, magnitude, new_flags, zero_flow_flags
from representations.registry import register_representation


@register_representation
class TwoPhaseStack(Representation):
    name = "two_phase_stack"
    channel_phases = {"u1": (1,), "v1": (1,), "m1": (1,), "u2": (2,), "v2": (2,), "m2": (2,)}
    default_channels = ("u1", "v1", "m1", "u2", "v2", "m2")

    def _maps(self, u1, v1, u2, v2):
        flags = new_flags(len(u1))
        zero_flow_flags(flags, u1, v1, 1)
        zero_flow_flags(flags, u2, v2, 2)
        maps = {"u1": u1, "v1": v1, "m1": magnitude(u1, v1), "u2": u2, "v2": v2, "m2": magnitude(u2, v2)}
        return maps, flags
