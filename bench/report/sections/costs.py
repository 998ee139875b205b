"""Cost: compute per cell (epochs, train, predict and tuning time), summed over folds and seeds, and the
model's size: parameter count and FLOPs per sample.

Every figure is read from the results row: the size is what each unit recorded at training time
(``n_params``, ``flops_per_sample``, counted by ``bench.training.costs`` on the trained model and one sample
of the unit's input shape: ``torch.utils.flop_counter.FlopCounterMode`` over one inference forward pass,
convolutions and matrix products, 2 FLOPs per multiply-add; element-wise ops, pooling and
normalisation are not counted). A run directory written before units recorded them says "not
recorded": no model is rebuilt here.
"""

from __future__ import annotations

import pandas as pd

from ..context import ReportContext
from ..document import Block, Heading, Para, Table
from ..load import SETTING
from ..words import duration

COLUMNS = {"epochs_run": "Mean epochs", "train_seconds": "Train", "predict_seconds": "Predict",
           "tune_seconds": "Tuning"}
SIZE = {"n_params": ("parameters", "Parameters"), "flops_per_sample": ("flops_per_sample", "FLOPs / sample")}


def _count(v) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.2f} {unit}"
    return f"{v:.0f}"


def _cell(col: str, v) -> str:
    if pd.isna(v):
        return "not recorded"
    return f"{v:.1f}" if col == "epochs_run" else duration(v)


def _size(vals: pd.Series) -> str:
    """A cell's recorded size: the value its folds share, a range when tuning gave folds different models."""
    v = vals.dropna()
    if not len(v):
        return "not recorded"
    lo, hi = v.min(), v.max()
    return _count(lo) if lo == hi else f"{_count(lo)}–{_count(hi)}"


def _frame(ok: pd.DataFrame, cols: list[str]) -> tuple[pd.DataFrame, list[list[str]]]:
    """Per cell: the numeric frame (sums, mean epochs, mean size) and the size cells as shown."""
    g = ok.groupby([SETTING, "representation", "model"], sort=False)
    df = g.size().rename("folds").to_frame()
    for c in cols:  # min_count=1: an all-missing column stays missing instead of summing to 0
        df[c] = g[c].mean() if c == "epochs_run" else g[c].sum(min_count=1)
    shown = [[_size(cell[c]) for c in SIZE] for _, cell in g]
    for c, (name, _) in SIZE.items():
        df[name] = g[c].mean()  # the value every fold recorded (its mean when tuning varied the model)
    return df.reset_index().rename(columns={SETTING: "dataset"}), shown  # the setting's label, as in every table


def build(ctx: ReportContext) -> list[Block]:
    res = ctx.run.results
    ok = res[res["status"] == "ok"] if len(res) else res
    cols = [c for c in COLUMNS if c in ok.columns]
    if not len(ok) or not cols:
        return []
    ok = ok.assign(**{c: pd.to_numeric(ok[c], errors="coerce") if c in ok.columns else float("nan")
                      for c in [*cols, *SIZE]})
    df, sizes = _frame(ok, cols)
    rows = [([r["dataset"]] if ctx.multi else []) + [ctx.rep_name(r["representation"]), ctx.model_name(r["model"]),
                                                     str(r["folds"])]
            + [_cell(c, r[c]) for c in cols] + size for (_, r), size in zip(df.iterrows(), sizes)]
    lead = (["Dataset"] if ctx.multi else []) + ["Representation", "Model", "Folds × seeds"]
    head = lead + [COLUMNS[c] for c in cols] + [label for _, label in SIZE.values()]
    caption = ("Compute per cell, summed over folds and seeds (epochs: mean per fold). Parameters and FLOPs "
               "per sample: recorded by each unit for its trained model at the unit's input size; FLOPs "
               "counted by torch.utils.flop_counter over one inference forward pass (convolutions and matrix "
               "products, 2 per multiply-add).")
    t = Table(head, rows, caption, align=["l"] * (len(lead) - 1) + ["r"] * (len(head) - len(lead) + 1))
    out = [Heading("Cost"), *ctx.table(t, df, "cost")]
    if ok[list(SIZE)].isna().all().all():
        out.append(Para("Parameters and FLOPs were not recorded: this run directory was written before units "
                        "recorded their model's size. Rerun the study to record them."))
    return out
