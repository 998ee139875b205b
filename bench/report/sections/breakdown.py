"""Per-dataset breakdown of a composite dataset (MEGC2019): each source dataset scored on its own."""

from __future__ import annotations

from ..context import ReportContext
from ..document import Block, Heading, Para
from ..load import SETTING
from ..tables import breakdown_table, headline_frame


def build(ctx: ReportContext) -> list[Block]:
    preds = ctx.run.predictions
    comp = ctx.composite_settings
    if not comp:
        return []
    out: list[Block] = [Heading("Per-dataset breakdown"), Para(
        "As in MEGC2019, each source dataset of the composite is also scored on its own pool "
        "of predictions (same models, trained on the composite; CIs resample that dataset's subjects).")]
    for s in comp:
        df, _ = headline_frame(ctx.run, ctx.opts, ctx.in_setting(preds, s), by=(SETTING, "source_dataset"))
        t = breakdown_table(df, f"UF1 and UAR per source dataset{ctx.suffix(s)}. Bold: best per dataset.")
        out += ctx.table(t, df, ctx.stem("per_dataset", s))
    return out
