"""Single-phase flow: (u, v, magnitude) of one phase.

``single_phase``         onset->apex (u1, v1, m1): the conventional MER baseline input.
``single_phase_offset``  apex->offset (u2, v2, m2): what the second phase carries on its own.

m = sqrt(u² + v²) in pixels (not normalised).
"""

from __future__ import annotations

from representations.base import Representation, magnitude, new_flags, zero_flow_flags
from representations.registry import register_representation


@register_representation
class SinglePhase(Representation):
    name = "single_phase"
    channel_phases = {"u1": (1,), "v1": (1,), "m1": (1,)}
    default_channels = ("u1", "v1", "m1")

    def _maps(self, u1, v1, u2, v2):
        flags = new_flags(len(u1))
        zero_flow_flags(flags, u1, v1, 1)
        return {"u1": u1, "v1": v1, "m1": magnitude(u1, v1)}, flags


@register_representation
class SinglePhaseOffset(Representation):
    name = "single_phase_offset"
    channel_phases = {"u2": (2,), "v2": (2,), "m2": (2,)}
    default_channels = ("u2", "v2", "m2")

    def _maps(self, u1, v1, u2, v2):
        flags = new_flags(len(u2))
        zero_flow_flags(flags, u2, v2, 2)
        return {"u2": u2, "v2": v2, "m2": magnitude(u2, v2)}, flags
