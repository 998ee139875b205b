"""Learning curves: per cell, the training loss and (when recorded) the validation loss and UF1 per epoch.

Read from the unit records' ``history`` (``RunData.histories``, one row per unit and epoch, written by
``bench.training.engine.fit``). Validation figures exist only when the study drew an inner validation split of
the TRAINING subjects (``protocol.validation.mode=subjects``); they never involve a test subject.
Aggregation: per seed, the mean over folds at each epoch (folds that stopped early drop out of later
epochs); then the mean over seeds, with the standard deviation across seeds as a band when there are
several. Any study can have this section; without validation it shows the training loss only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from .. import figures as F  # the report's figure style and saving (F._style, F._save), shared by all figures
from ..context import Facet, ReportContext
from ..document import Block, Heading, Para, Table
from ..load import SETTING

CURVES = {"train_loss": "training loss", "val_loss": "validation loss", "val_uf1": "validation UF1"}
# A wide grid (a sweep of many cells) would make a legend no one can read: the table still has every cell.
MAX_LINES = 12


def curves(ctx: ReportContext) -> pd.DataFrame:
    """One row per (setting, representation, model, epoch): mean over folds per seed, then mean/sd over seeds.

    Columns: ``<metric>`` and ``<metric>_sd`` for each of ``CURVES`` present, ``seeds`` and ``folds``
    (units contributing at that epoch, summed over seeds).
    """
    hist, res = ctx.run.histories, ctx.run.results
    if not len(hist) or not len(res) or "unit_key" not in res.columns:
        return pd.DataFrame()
    keys = res[["unit_key", SETTING, "representation", "model", "seed", "fold"]].drop_duplicates("unit_key")
    df = hist.merge(keys.assign(unit_key=keys["unit_key"].astype(str)), on="unit_key", how="inner")
    metrics = [m for m in CURVES if m in df.columns and df[m].notna().any()]
    if not len(df) or not metrics:
        return pd.DataFrame()
    cell = [SETTING, "representation", "model"]
    per_seed = df.groupby([*cell, "seed", "epoch"], sort=False).agg(
        **{m: (m, "mean") for m in metrics}, folds=("fold", "nunique")).reset_index()
    g = per_seed.groupby([*cell, "epoch"], sort=False)
    out = g[metrics].mean()
    for m in metrics:
        out[f"{m}_sd"] = g[m].std(ddof=1)  # NaN with one seed: no band
    out["seeds"] = g["seed"].nunique()
    out["folds"] = g["folds"].sum()
    out = out.reset_index()
    rank = {(r, m): (ctx.reps.index(r) if r in ctx.reps else len(ctx.reps),
                     ctx.models.index(m) if m in ctx.models else len(ctx.models))
            for r, m in zip(out["representation"], out["model"])}
    order = out.apply(lambda r: rank[(r["representation"], r["model"])], axis=1)
    return out.assign(_o=order).sort_values(["_o", "epoch"], kind="stable").drop(columns="_o")


def curves_plot(frame: pd.DataFrame, path, dpi: int, metrics: list[str]) -> None:
    """One panel per metric, one line per cell (representation × model), mean over seeds ± sd band."""
    cells = list(dict.fromkeys(zip(frame["representation"], frame["model"])))
    if not cells:
        raise F.Skipped("no cell recorded a history")
    if len(cells) > MAX_LINES:
        raise F.Skipped(f"{len(cells)} cells are more lines than one figure can tell apart ({MAX_LINES}); "
                        "the table and learning_curves.csv have every cell")
    with F._style():
        fig = Figure(figsize=(F.TEXT_WIDTH_IN, 2.6), layout="constrained")
        axes = fig.subplots(1, len(metrics), squeeze=False).ravel()
        colors = sns.color_palette("colorblind", max(len(cells), 2))
        for ax, m in zip(axes, metrics):
            for color, (rep, model) in zip(colors, cells):
                c = frame[(frame["representation"] == rep) & (frame["model"] == model)]
                c = c[c[m].notna()]
                if not len(c):
                    continue
                x, y = c["epoch"].to_numpy() + 1, c[m].to_numpy()
                ax.plot(x, y, color=color, lw=1.1, label=f"{rep} × {model}")
                sd = c[f"{m}_sd"].to_numpy()
                if np.isfinite(sd).any():
                    ax.fill_between(x, y - sd, y + sd, color=color, alpha=0.18, lw=0)
            ax.set_xlabel("epoch")
            ax.set_title(CURVES[m])
            if m == "val_uf1":
                ax.set_ylim(0, 1)
        h, lab = axes[0].get_legend_handles_labels()
        fig.legend(h, lab, loc="outside lower center", ncols=min(len(lab), 3), frameon=False)
        F._save(fig, path, dpi)


def _summary(frame: pd.DataFrame, metrics: list[str]) -> tuple[list[list[str]], pd.DataFrame]:
    rows, num = [], []
    for (rep, model), c in frame.groupby(["representation", "model"], sort=False):
        last = c.iloc[-1]
        rec = {"representation": rep, "model": model, "epochs": int(last["epoch"]) + 1,
               "seeds": int(c["seeds"].max()), "final_train_loss": float(last["train_loss"])}
        row = [rep, model, str(rec["epochs"]), str(rec["seeds"]), f"{rec['final_train_loss']:.3f}"]
        if "val_loss" in metrics:
            v = c[c["val_loss"].notna()]
            best = v.loc[v["val_loss"].idxmin()] if len(v) else None
            rec.update(min_val_loss=np.nan if best is None else float(best["val_loss"]),
                       min_val_loss_epoch=np.nan if best is None else int(best["epoch"]) + 1,
                       final_val_loss=np.nan if best is None else float(v["val_loss"].iloc[-1]))
            row += ["—" if best is None else f"{rec['min_val_loss']:.3f} (epoch {rec['min_val_loss_epoch']})",
                    "—" if best is None else f"{rec['final_val_loss']:.3f}"]
        if "val_uf1" in metrics:
            v = c[c["val_uf1"].notna()]
            tail = v["val_uf1"].iloc[-5:]  # the last 5 epochs: one epoch's UF1 on a few subjects is noisy
            rec.update(final_val_uf1=float(tail.mean()) if len(tail) else np.nan,
                       max_val_uf1=float(v["val_uf1"].max()) if len(v) else np.nan)
            row += ["—" if not len(tail) else f"{rec['final_val_uf1']:.3f}",
                    "—" if not len(v) else f"{rec['max_val_uf1']:.3f}"]
        rows.append(row)
        num.append(rec)
    return rows, pd.DataFrame(num)


PER_SETTING = True


def lead(ctx: ReportContext) -> list[Block]:
    frame = ctx.derive(curves)
    if not len(frame):
        return []
    has_val = "val_loss" in frame.columns and frame["val_loss"].notna().any()
    ctx.csv(frame.rename(columns={SETTING: "dataset"}), "learning_curves")
    return [Heading("Learning curves"), Para(
        "Per epoch, the mean over folds of each seed, then the mean over seeds (band: ± sd across seeds, "
        "when there are several). " + (
            "Validation figures are on the inner validation split of each fold's *training* subjects "
            "(`protocol.validation.mode=subjects`); no test subject is involved."
            if has_val else
            "This study drew no validation split, so only the training loss is shown; rerun with "
            "`protocol.validation.mode=subjects` for validation curves on held-out training subjects."))]


def build_setting(ctx: ReportContext, f: Facet) -> list[Block]:
    frame = f.of(ctx.derive(curves))
    if not len(frame):
        return []
    metrics = [m for m in CURVES if m in frame.columns and frame[m].notna().any()]
    out = ctx.figure(curves_plot, f.stem("learning_curves"),
                     "Learning curves: " + ", ".join(CURVES[m] for m in metrics) + f.suffix + ".",
                     ctx.shown(frame), metrics=metrics)
    rows, num = _summary(frame, metrics)
    rows = [[ctx.rep_name(r[0]), ctx.model_name(r[1]), *r[2:]] for r in rows]
    head = ["Representation", "Model", "Epochs", "Seeds", "Final train loss"]
    if "val_loss" in metrics:
        head += ["Min val loss", "Final val loss"]
    if "val_uf1" in metrics:
        head += ["Val UF1 (last 5 epochs)", "Max val UF1"]
    t = Table(head, rows, "Learning-curve summary" + f.suffix
              + (" (validation: held-out training subjects only)." if "val_loss" in metrics else "."),
              align=["l", "l"] + ["r"] * (len(head) - 2))
    return out + ctx.table(t, num, f.stem("learning_curves_summary"))
