"""Failures: the folds that failed, with their errors (their samples are missing from the pools)."""

from __future__ import annotations

from ..context import ReportContext
from ..document import Block, Heading, Para, Table
from ..tables import failed_folds
from ..words import value


def build(ctx: ReportContext) -> list[Block]:
    bad = failed_folds(ctx.run)
    if not len(bad):
        return []
    rows = [[r["dataset"], ctx.rep_name(r["representation"]), ctx.model_name(r["model"]), str(r["seed"]), r["fold"],
             value(r.get("error", ""))[:160]] for _, r in bad.iterrows()]
    t = Table(["Dataset", "Representation", "Model", "Seed", "Fold", "Error"], rows, "Failed folds.")
    return [Heading("Failures"),
            Para(f"{len(bad)} fold(s) failed; their test samples are missing from the pools of the cells "
                 "marked † above."),
            *ctx.table(t, bad, "failures")]
