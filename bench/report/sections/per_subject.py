"""Per-subject scores: the pairs the significance test compares (table and box plot per setting)."""

from __future__ import annotations

import pandas as pd

from .. import figures as F
from .. import stats
from ..context import Facet, ReportContext
from ..document import Block, Heading
from ..load import SETTING


PER_SETTING = True


def per_subject(ctx: ReportContext) -> pd.DataFrame:
    """Every cell's per-subject scores (``stats.per_subject_table``), the setting's label in ``dataset``."""
    rows = []
    for (s, rep, model), grp in ctx.run.predictions.groupby([SETTING, "representation", "model"], sort=False):
        t = stats.per_subject_table(grp, ctx.run.n_classes)
        t.insert(0, "model", model)
        t.insert(0, "representation", rep)
        t.insert(0, "dataset", s)  # the setting's label, as in every other table
        rows.append(t)
    return pd.concat(rows, ignore_index=True)


def lead(ctx: ReportContext) -> list[Block]:
    ctx.csv(ctx.derive(per_subject), "per_subject")
    return [Heading("Per-subject scores")]


def build_setting(ctx: ReportContext, f: Facet) -> list[Block]:
    d = f.of(ctx.derive(per_subject), "dataset")
    return ctx.figure(F.per_subject_plot, f.stem("per_subject_acc"),
                      f"Per-subject accuracy (mean over seeds){f.suffix}: one dot per subject; "
                      "these are the pairs the significance test compares.",
                      ctx.shown(d), [ctx.rep_name(r) for r in f.reps_in(d)],
                      [ctx.model_name(m) for m in f.models_in(d)], "acc")
