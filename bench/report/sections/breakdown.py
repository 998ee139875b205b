"""Per-dataset breakdown of a composite dataset (MEGC2019): each source dataset scored on its own."""

from __future__ import annotations

from ..context import Facet, PerSetting, ReportContext
from ..document import Block, Heading, Para
from ..load import SETTING
from ..names import display
from ..tables import breakdown_table, headline_frame

PER_SETTING = PerSetting(over="composite_settings")


def lead(ctx: ReportContext) -> list[Block]:
    if not ctx.composite_settings:
        return []
    return [Heading("Per-dataset breakdown"), Para(
        "As in MEGC2019, each source dataset of the composite is also scored on its own pool "
        "of predictions (same models, trained on the composite; CIs resample that dataset's subjects).")]


def build_setting(ctx: ReportContext, f: Facet) -> list[Block]:
    df, _ = headline_frame(ctx.run, ctx.opts, f.predictions, by=(SETTING, "source_dataset"))
    shown = ctx.shown(df).assign(source_dataset=lambda d: d["source_dataset"].map(lambda v: display(v, "source")))
    t = breakdown_table(shown, f"UF1 and UAR per source dataset{f.suffix}. Bold: best per dataset.")
    return ctx.table(t, df, f.stem("per_dataset"))
