"""Cost: compute per cell (epochs, train, predict and tuning time), summed over folds and seeds, and the
model's size: parameter count and FLOPs per sample.

Size is computed here, not recorded per unit: the cell's model is rebuilt from its config (the
results' ``model_params`` JSON) for the input its representation config (``rep_params``) gives
(channels and ``size``), so run directories written before this section existed get it too. FLOPs
are ``torch.utils.flop_counter.FlopCounterMode`` over one inference forward pass of one sample:
convolutions and matrix products, 2 FLOPs per multiply-add; element-wise ops, pooling and
normalisation are not counted. A cell whose model cannot be rebuilt here says why.
"""

from __future__ import annotations

import json
import logging

import pandas as pd

from ..context import ReportContext
from ..document import Block, Heading, Para, Table
from ..load import SETTING
from ..words import duration

COLUMNS = {"epochs_run": "Mean epochs", "train_seconds": "Train", "predict_seconds": "Predict",
           "tune_seconds": "Tuning"}


log = logging.getLogger(__name__)


def model_size(model_params: str, rep_params: str, n_classes: int) -> tuple[int | None, float | None, str]:
    """(parameters, FLOPs per sample, why not) of the model a cell's configs describe."""
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from models import build_model
        from representations import build_representation

        rep_cfg = json.loads(rep_params)
        rep = build_representation(rep_cfg)
        channels = tuple(rep.channels)
        size = int(rep_cfg.get("size") or 28)
        torch.manual_seed(0)
        model = build_model(json.loads(model_params), in_chans=len(channels), num_classes=n_classes,
                            channels=channels).eval()
        n_params = int(sum(p.numel() for p in model.parameters()))
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(1, len(channels), size, size))
        return n_params, float(counter.get_total_flops()), ""
    except Exception as e:  # noqa: BLE001 - a model this process cannot rebuild is named, not fatal
        log.warning("cost: cannot rebuild the model %s for its size: %s", model_params, e)
        return None, None, f"{type(e).__name__}: {str(e)[:80]}"


def _count(v) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.2f} {unit}"
    return f"{v:.0f}"


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
    sized = {"model_params", "rep_params"} <= set(ok.columns)
    if sized:
        first = g[["model_params", "rep_params"]].first().reset_index(drop=True)
        cache: dict[tuple, tuple] = {}
        sizes = [cache.setdefault(k, model_size(*k, ctx.run.n_classes))
                 for k in zip(first["model_params"].astype(str), first["rep_params"].astype(str))]
        df["parameters"] = [s[0] for s in sizes]
        df["flops_per_sample"] = [s[1] for s in sizes]
    rows = [([r["dataset"]] if ctx.multi else []) + [r["representation"], r["model"], str(r["folds"])]
            + [_cell(c, r[c]) for c in cols]
            + ([("not rebuilt" if pd.isna(r[c]) else _count(r[c])) for c in ("parameters", "flops_per_sample")]
               if sized else []) for _, r in df.iterrows()]
    lead = (["Dataset"] if ctx.multi else []) + ["Representation", "Model", "Folds × seeds"]
    head = lead + [COLUMNS[c] for c in cols] + (["Parameters", "FLOPs / sample"] if sized else [])
    caption = "Compute per cell, summed over folds and seeds (epochs: mean per fold)."
    if sized:
        caption += (" Parameters and FLOPs per sample: the cell's model rebuilt from its config at the run's "
                    "input size; FLOPs counted by torch.utils.flop_counter over one inference forward pass "
                    "(convolutions and matrix products, 2 per multiply-add).")
    t = Table(head, rows, caption, align=["l"] * (len(lead) - 1) + ["r"] * (len(head) - len(lead) + 1))
    out = [Heading("Cost"), *ctx.table(t, df, "cost")]
    if sized:
        why = sorted({s[2] for s in cache.values() if s[2]})
        if why:
            out.append(Para("Some models could not be rebuilt for their size here: " + "; ".join(why) + "."))
    return out
