"""Row-normalised confusion matrices per representation × model, pooled over folds and seeds."""

from __future__ import annotations

from bench.evaluation import metrics

from .. import figures as F
from ..context import Facet, ReportContext
from ..document import Block, Heading, Para

ROWS_PER_FIGURE = 4  # representation rows per figure: keeps each figure within a page


PER_SETTING = True


def lead(ctx: ReportContext) -> list[Block]:
    return [Heading("Confusion matrices"), Para(
        "Pooled over folds and summed over seeds; each row normalised by its true-class count "
        "(the diagonal is the per-class recall). Classes: " + ", ".join(ctx.run.classes) + ".")]


def build_setting(ctx: ReportContext, f: Facet) -> list[Block]:
    d = f.predictions
    cms = {(rep, model): metrics.confusion_matrix(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), ctx.run.n_classes)
           for (rep, model), g in d.groupby(["representation", "model"], sort=False)}
    reps = f.reps_in(d)
    split = len(reps) > ROWS_PER_FIGURE
    out: list[Block] = []
    for part, i in enumerate(range(0, len(reps), ROWS_PER_FIGURE)):
        chunk = reps[i:i + ROWS_PER_FIGURE]
        out += ctx.figure(F.confusion_grid, f.stem("confusion") + (f"_{part + 1}" if split else ""),
                          f"Row-normalised confusion matrices{f.suffix}" + (f", part {part + 1}" if split else "")
                          + ".", {(ctx.rep_name(r), ctx.model_name(m)): v for (r, m), v in cms.items() if r in chunk},
                          [ctx.rep_name(r) for r in chunk], [ctx.model_name(m) for m in ctx.models], ctx.run.classes)
    return out
