"""Headline results: pooled scores per representation × model (mean ± sd over seeds, subject-and-seed
bootstrap interval), one table and bar chart per setting."""

from __future__ import annotations

import pandas as pd

from .. import figures as F
from ..context import Facet, PerSetting, ReportContext
from ..document import Block, Heading, Para
from ..load import SETTING
from ..tables import headline_table

# What one seed can move, measured on this suite's main study (docs/reproducibility.md).
SINGLE_SEED_NOTE = ("a single seed's pooled UF1 moved by up to 0.05 between two machines on the main study's "
                    "144 clips (README, \"Reproducibility\")")


def seeds_words(df: pd.DataFrame) -> str:
    """How many seeds the cells of a headline frame ran, in words."""
    counts = sorted(set(int(n) for n in df["n_seeds"]))
    if len(counts) == 1:
        seeds = df["seeds"].iloc[0].replace(";", ", ")
        return f"{counts[0]} seed{'s' if counts[0] > 1 else ''} per cell ({seeds})"
    return "from " + " to ".join(map(str, (counts[0], counts[-1]))) + " seeds per cell (column n_seeds of the CSV)"


def method(ctx: ReportContext, n_seeds_max: int, n_seeds_min: int) -> Para:
    o = ctx.opts
    text = (
        "Pooled scores per representation × model: for each seed, every test prediction of every "
        "leave-one-subject-out fold is pooled and scored once (MEGC2019). "
    )
    if n_seeds_max > 1:
        text += ("A cell shows the **mean ± standard deviation over its seeds** (sample sd, n − 1) of those "
                 "pooled scores. ")
    if n_seeds_max > 1:
        text += (
            f"Brackets: {o.ci_level:.0%} percentile bootstrap interval of that seed mean, {o.n_boot} replicates, "
            f"bootstrap seed {o.seed}. Each replicate draws the subjects with replacement (as many as the cell "
            "has) and, independently, the seeds with replacement (as many as the cell ran); for each drawn seed "
            "it pools the drawn subjects' predictions of that seed and rescores them, and averages over the "
            "drawn seeds (a seed drawn twice counts twice). The interval therefore covers both which subjects "
            "happened to be in the dataset and which seeds happened to be run. "
        )
    else:
        text += (
            f"Brackets: {o.ci_level:.0%} percentile bootstrap interval, {o.n_boot} replicates, bootstrap seed "
            f"{o.seed}: each replicate draws the subjects with replacement (as many as the cell has), pools their "
            "predictions and rescores them. "
        )
    if n_seeds_min == 1:
        what = "Every cell" if n_seeds_max == 1 else "A cell with no ± in the table"
        text += (f"{what} ran with one seed: **seed variance was not measured**, so its interval covers "
                 f"subject sampling only, and a difference between cells may be seed noise ({SINGLE_SEED_NOTE}). ")
    return Para(text + "**Bold**: best value of the column (whether it is decided better: the verdicts and the "
                "compact table of the answer).")


PER_SETTING = PerSetting(headings=True)


def lead(ctx: ReportContext) -> list[Block]:
    n_seeds = ctx.run.predictions.groupby([SETTING, "representation", "model"])["seed"].nunique()
    return [Heading("Headline results"), method(ctx, int(n_seeds.max()), int(n_seeds.min()))]


def build_setting(ctx: ReportContext, f: Facet) -> list[Block]:
    o, df = ctx.opts, f.head
    several = df["n_seeds"].max() > 1
    spread = ("mean ± sd over seeds; [" + f"{o.ci_level:.0%} subject-and-seed bootstrap interval]" if several
              else f"one seed, seed variance not measured; [{o.ci_level:.0%} subject bootstrap interval]")
    t = headline_table(ctx.shown(df), caption=f"Pooled UF1, UAR and accuracy{f.suffix} ({spread}); "
                                    f"{int(df['n_subjects'].max())} subjects, {seeds_words(df)}.")
    if df["failed_folds"].gt(0).any():
        t.caption += " †: some folds of this cell failed (see Failures); its pool is incomplete."
    out = ctx.table(t, df, f.stem("headline"))
    out += ctx.figure(F.bars_with_ci, f.stem("scores_bars"),
                      f"Pooled UF1 and UAR{f.suffix}"
                      + (f" (mean over seeds) with {o.ci_level:.0%} subject-and-seed bootstrap whiskers."
                         if several else f" (one seed) with {o.ci_level:.0%} subject-bootstrap whiskers."),
                      ctx.shown(df), [ctx.rep_name(r) for r in f.reps_in(df)],
                      [ctx.model_name(m) for m in f.models_in(df)])
    return out
