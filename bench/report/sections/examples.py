"""Representation examples: each representation computed from one synthetic sample."""

from __future__ import annotations

import numpy as np

from .. import figures as F
from ..context import ReportContext
from ..document import Block, Heading
from ..load import ReportInputError


def build(ctx: ReportContext) -> list[Block]:
    ex, src = ctx.run.examples, ctx.run.run_dir / "examples.npz"
    arrays = {}
    for key in ex:
        if key.endswith("__channels"):
            continue
        a = np.asarray(ex[key], dtype=float)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3:
            raise ReportInputError(f"{src}: {key} must be C x H x W, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ReportInputError(f"{src}: {key} contains non-finite values")
        chans = [str(c) for c in ex.get(f"{key}__channels", [])] or [f"channel {i}" for i in range(a.shape[0])]
        if len(chans) != a.shape[0]:
            raise ReportInputError(f"{src}: {key}__channels names {len(chans)} channels for {a.shape[0]}")
        arrays[key] = (a, chans)
    order = [r for r in ctx.reps if r in arrays] + [r for r in arrays if r not in ctx.reps]
    return [Heading("Representation examples"), *ctx.figure(
        F.examples_plot, "representation_examples",
        "Each representation computed from one synthetic sample (generated data, no face image); "
        "signed channels on a blue-red scale centred at zero.", {r: arrays[r] for r in order})]
