"""Cost: compute per cell (epochs, train, predict and tuning time), summed over folds and seeds."""

from __future__ import annotations

import pandas as pd

from ..context import ReportContext
from ..document import Block, Heading, Table
from ..load import SETTING
from ..words import duration

COLUMNS = {"epochs_run": "Mean epochs", "train_seconds": "Train", "predict_seconds": "Predict",
           "tune_seconds": "Tuning"}


def _cell(col: str, v) -> str:
    if pd.isna(v):
        return "not recorded"
    return f"{v:.1f}" if col == "epochs_run" else duration(v)


def build(ctx: ReportContext) -> list[Block]:
    res = ctx.run.results
    ok = res[res["status"] == "ok"] if len(res) else res
    cols = [c for c in COLUMNS if c in ok.columns]
    if not len(ok) or not cols:
        return []
    ok = ok.assign(**{c: pd.to_numeric(ok[c], errors="coerce") for c in cols})
    g = ok.groupby([SETTING, "representation", "model"], sort=False)
    df = g.size().rename("folds").to_frame()
    for c in cols:  # min_count=1: an all-missing column stays missing instead of summing to 0
        df[c] = g[c].mean() if c == "epochs_run" else g[c].sum(min_count=1)
    df = df.reset_index().rename(columns={SETTING: "dataset"})  # the setting's label, as in every table
    rows = [([r["dataset"]] if ctx.multi else []) + [r["representation"], r["model"], str(r["folds"])]
            + [_cell(c, r[c]) for c in cols] for _, r in df.iterrows()]
    lead = (["Dataset"] if ctx.multi else []) + ["Representation", "Model", "Folds × seeds"]
    t = Table(lead + [COLUMNS[c] for c in cols], rows,
              "Compute per cell, summed over folds and seeds (epochs: mean per fold).",
              align=["l"] * (len(lead) - 1) + ["r"] * (1 + len(cols)))
    return [Heading("Cost"), *ctx.table(t, df, "cost")]
