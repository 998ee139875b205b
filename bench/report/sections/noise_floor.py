"""Noise floor: each seed's pooled UF1 per cell as a dot, so a reader sees whether seed clouds overlap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .. import figures as F
from ..context import Facet, PerSetting, ReportContext
from ..document import Block, Heading, Para
from ..load import SETTING
from .headline import SINGLE_SEED_NOTE


def seed_dots(df: pd.DataFrame, reps: list[str], models: list[str], path: Path, dpi: int,
              base: str | None = None, metric: str = "uf1") -> None:
    """One row per cell (grouped by model, the baseline first): a dot per seed, a bar at the seed mean;
    behind each model's rows a band spanning its baseline's seeds (min to max)."""
    cells = [(m, r) for m in models for r in reps
             if ((df["model"] == m) & (df["representation"] == r)).any()]
    if not cells:
        raise F.Skipped("no cell has predictions")
    pal = F.model_palette(models)
    with F._style():
        fig = Figure(figsize=(F.TEXT_WIDTH_IN, min(0.28 * len(cells) + 1.1, F.MAX_HEIGHT_IN)), layout="constrained")
        ax = fig.subplots()
        ys = {c: -i for i, c in enumerate(cells)}
        for m in models:
            mine = [ys[c] for c in cells if c[0] == m]
            b = df[(df["model"] == m) & (df["representation"] == base)][metric]
            if base is not None and len(b) > 1 and len(mine) > 1:
                ax.fill_betweenx([min(mine) - 0.45, max(mine) + 0.45], b.min(), b.max(), color=pal[m], alpha=0.13,
                                 lw=0)
            if mine and min(mine) > -(len(cells) - 1):
                ax.axhline(min(mine) - 0.5, color="0.75", lw=0.6)
        for (m, r), y in ys.items():
            sub = df[(df["model"] == m) & (df["representation"] == r)].sort_values("seed")
            v = sub[metric].to_numpy()
            # seeds spread a little vertically (by seed order, not at random) so equal scores stay visible
            off = np.linspace(-0.16, 0.16, len(v)) if len(v) > 1 else np.zeros(1)
            ax.scatter(v, y + off, s=16, color=pal[m], edgecolor="0.15", linewidth=0.4, zorder=3)
            ax.plot([v.mean()] * 2, [y - 0.32, y + 0.32], color="0.1", lw=1.4, zorder=4)
        ax.set_yticks(list(ys.values()), [f"{F._short(r, 22)} × {F._short(m, 16)}" for m, r in ys])
        ax.set_ylim(-len(cells) + 0.4, 0.6)
        ax.set_xlabel(f"pooled {metric.upper()} of each seed")
        ax.grid(axis="y", visible=False)
        handles = [Line2D([], [], ls="", marker="o", ms=4, color="0.5", markeredgecolor="0.15", label="one seed"),
                   Line2D([], [], color="0.1", lw=1.4, label="mean over seeds")]
        if base is not None:
            handles.append(Patch(color="0.5", alpha=0.25, label=f"{F._short(base, 20)}'s seed range (same model)"))
        fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
        F._save(fig, path, dpi)


def spread_words(scores: pd.DataFrame) -> str:
    """The seed range (max − min of pooled UF1 over seeds) across cells with several seeds, in words."""
    g = scores.groupby(["representation", "model"], sort=False)["uf1"]
    rng = (g.max() - g.min())[g.size() > 1]
    if not len(rng):
        return ""
    (r, m), top = rng.idxmax(), rng.max()
    return (f"Seed range of pooled UF1 (max − min over seeds): median {rng.median():.3f} over {len(rng)} cells, "
            f"largest {top:.3f} ({r} × {m}). A single-seed difference between two cells smaller than this is "
            "within what reseeding alone produces.")


PER_SETTING = PerSetting(headings=True)


def _n_seeds(ctx: ReportContext) -> pd.Series:
    return ctx.seed_scores.groupby([SETTING, "representation", "model"])["seed"].nunique()


def lead(ctx: ReportContext) -> list[Block]:
    sc, n = ctx.seed_scores, ctx.derive(_n_seeds)
    out: list[Block] = [Heading("Noise floor")]
    if n.max() < 2:
        return out + [Para(
            "Each cell ran with one seed: **seed variance was not measured**, so this report cannot tell a "
            f"difference between cells from seed noise ({SINGLE_SEED_NOTE}). Run several seeds "
            "(`study.seeds=[0,1,2]`) to see it.")]
    ctx.csv(sc.rename(columns={SETTING: "dataset"}), "seed_scores")
    return out + [Para(
        "Each dot is one seed's pooled UF1 of a cell (all folds of that seed pooled); the black bar is the mean "
        "over seeds, the shaded band the baseline's seed range for the same model. Where two cells' dots "
        "overlap, reseeding alone can reorder them. Per-seed scores: `tables/seed_scores.csv`."
        + (" Cells drawn with a single dot ran one seed: their seed variance was not measured." if n.min() < 2 else ""))]


def build_setting(ctx: ReportContext, f: Facet) -> list[Block]:
    if ctx.derive(_n_seeds).max() < 2:
        return []  # the lead said why there is no figure
    d = f.of(ctx.seed_scores)
    words = spread_words(ctx.shown(d))
    out: list[Block] = [Para(words)] if words else []
    return out + ctx.figure(seed_dots, f.stem("noise_floor"),
                            f"Pooled UF1 of every seed per cell{f.suffix}: dots are seeds, bars their mean.",
                            ctx.shown(d), [ctx.rep_name(r) for r in f.reps_in(d)],
                            [ctx.model_name(m) for m in f.models_in(d)], base=ctx.rep_name(ctx.base) if ctx.base else None)
