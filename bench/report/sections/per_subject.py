"""Per-subject scores: the pairs the significance test compares (table and box plot per setting)."""

from __future__ import annotations

import pandas as pd

from .. import figures as F
from .. import stats
from ..context import ReportContext
from ..document import Block, Heading
from ..load import SETTING


def build(ctx: ReportContext) -> list[Block]:
    rows = []
    for (s, rep, model), grp in ctx.run.predictions.groupby([SETTING, "representation", "model"], sort=False):
        t = stats.per_subject_table(grp, ctx.run.n_classes)
        t.insert(0, "model", model)
        t.insert(0, "representation", rep)
        t.insert(0, "dataset", s)  # the setting's label, as in every other table
        rows.append(t)
    allp = pd.concat(rows, ignore_index=True)
    ctx.csv(allp, "per_subject")
    out: list[Block] = [Heading("Per-subject scores")]
    for s in ctx.settings:
        d = allp[allp["dataset"] == s]
        out += ctx.figure(F.per_subject_plot, ctx.stem("per_subject_acc", s),
                          f"Per-subject accuracy (mean over seeds){ctx.suffix(s)}: one dot per subject; "
                          "these are the pairs the significance test compares.",
                          d, [r for r in ctx.reps if r in set(d["representation"])],
                          [m for m in ctx.models if m in set(d["model"])], "acc")
    return out
