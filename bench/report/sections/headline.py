"""Headline results: pooled scores per representation × model, one table and bar chart per setting."""

from __future__ import annotations

from .. import figures as F
from ..context import ReportContext
from ..document import Block, Heading, Para
from ..tables import headline_table


def build(ctx: ReportContext) -> list[Block]:
    o = ctx.opts
    several_seeds = ctx.run.predictions.groupby(["representation", "model"])["seed"].nunique().max() > 1
    out: list[Block] = [Heading("Headline results"), Para(
        f"Pooled scores per representation × model. Brackets: {o.ci_level:.0%} percentile bootstrap "
        f"confidence interval over subjects ({o.n_boot} replicates, seed {o.seed}): subjects are drawn "
        "with replacement, their predictions pooled and rescored, so the interval reflects which "
        "subjects happened to be in the dataset. "
        + ("With several seeds a cell shows mean ± standard deviation over seeds and the interval is for "
           "the seed mean (the same subject draw applied to every seed). "
           if several_seeds else "Each cell ran with one seed, so no spread over seeds is shown. ")
        + "**Bold**: best value of the column.")]
    for s, df in ctx.heads.items():
        if ctx.multi:
            out.append(Heading(s, 3))
        t = headline_table(df, caption=f"Pooled UF1, UAR and accuracy{ctx.suffix(s)}; "
                                        f"{int(df['n_subjects'].max())} subjects.")
        if df["failed_folds"].gt(0).any():
            t.caption += " †: some folds of this cell failed (see Failures); its pool is incomplete."
        out += ctx.table(t, df, ctx.stem("headline", s))
        out += ctx.figure(F.bars_with_ci, ctx.stem("scores_bars", s),
                          f"Pooled UF1 and UAR{ctx.suffix(s)} with {o.ci_level:.0%} subject-bootstrap CI whiskers.",
                          df, [r for r in ctx.reps if r in set(df["representation"])],
                          [m for m in ctx.models if m in set(df["model"])])
    return out
