"""Selected hyper-parameters: what nested tuning chose, per cell, over its outer folds.

Each tuned unit records the values its Optuna study chose in its results row (``hparams`` JSON, part
``tuned``: the dotted keys of ``tuning.space`` such as ``trainer.lr``, and ``inner_score``,
``n_trials``, ``objective``; ``bench.training.tuning``). Per cell (setting, representation, model)
this section shows each tuned hyper-parameter's median and [min, max] over the cell's outer folds
(and seeds), and the best inner-CV score likewise, so a reader sees whether the folds chose consistent
settings: a narrow range is a stable choice, a wide one says the inner CV could not tell the values
apart (or each fold's training subjects want different ones). A categorical one shows each choice
with how many folds took it. An untuned run has no tuned values, and no section.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd

from bench.training.tuning import dashboard_commands, tuned_params

from ..context import ReportContext
from ..document import Block, Code, Heading, Para, Table
from ..load import SETTING, unit_hparams_lenient
from .reproducibility import shown_path

CELL = [SETTING, "representation", "model"]


def _chosen(raw) -> dict:
    tuned = unit_hparams_lenient(raw).get("tuned")
    return tuned if isinstance(tuned, dict) else {}


def _numeric(vals: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e6 else f"{v:.3g}"


def spread(vals: list) -> tuple[str, dict]:
    """A parameter's values over a cell's folds as shown (``median [min, max]``, or each categorical
    choice with its count) and as numbers (median, min, max; NaN for a categorical one)."""
    if _numeric(vals):
        a = np.asarray(vals, dtype=float)
        med, lo, hi = float(np.median(a)), float(a.min()), float(a.max())
        shown = _num(med) if lo == hi else f"{_num(med)} [{_num(lo)}, {_num(hi)}]"
        return shown, {"median": med, "min": lo, "max": hi}
    counts = Counter(json.dumps(v, sort_keys=True) if not isinstance(v, str) else v for v in vals)
    shown = ", ".join(f"{k} ({n}/{len(vals)})" for k, n in counts.most_common())
    return shown, {"median": float("nan"), "min": float("nan"), "max": float("nan")}


def selections(ctx: ReportContext) -> pd.DataFrame:
    """One row per (cell, tuned parameter, or ``inner_score``): the folds' values shown and as numbers."""
    res = ctx.run.results
    if not len(res) or "hparams" not in res.columns:
        return pd.DataFrame()
    ok = res[res["status"] == "ok"] if "status" in res.columns else res
    rows = []
    for keys, g in ok.groupby(CELL, sort=False):
        chosen = [c for c in map(_chosen, g["hparams"]) if tuned_params(c)]
        if not chosen:
            continue
        params = sorted({k for c in chosen for k in tuned_params(c)})
        objective = sorted({str(c.get("objective", "inner score")) for c in chosen})
        for p in [*params, "inner_score"]:
            vals = [c[p] for c in chosen if p in c]
            shown, nums = spread(vals)
            rows.append(dict(zip(CELL, keys), parameter=p, shown=shown, folds=len(vals), **nums,
                             objective="/".join(objective), trials=max(int(c.get("n_trials", 0)) for c in chosen)))
    return pd.DataFrame(rows)


def build(ctx: ReportContext) -> list[Block]:
    sel = selections(ctx)
    if not len(sel):
        return []
    params = [p for p in dict.fromkeys(sel["parameter"]) if p != "inner_score"]
    objective = "/".join(sorted(set(sel["objective"])))
    rows = []
    for keys, g in sel.groupby(CELL, sort=False):
        by = dict(zip(g["parameter"], g["shown"]))
        rows.append(([keys[0]] if ctx.multi else []) + [ctx.rep_name(keys[1]), ctx.model_name(keys[2]),
                                                         str(int(g["folds"].max()))]
                    + [by.get(p, "not tuned") for p in params] + [by.get("inner_score", "not recorded")])
    lead = (["Dataset"] if ctx.multi else []) + ["Representation", "Model", "Folds × seeds"]
    head = lead + [f"`{p}`" for p in params] + [f"Best {objective}"]
    caption = ("Hyper-parameters chosen by nested tuning, per cell: median [min, max] over the outer folds "
               "(× seeds), each fold's choice made by its own Optuna study on its training subjects only; "
               "a categorical one lists each value with the number of folds that chose it. Last column: the "
               f"best trial's inner-CV score ({objective}), never the test subject's.")
    t = Table(head, rows, caption, align=["l"] * len(lead) + ["r"] * (len(head) - len(lead)))
    numeric = sel.drop(columns=["shown"]).rename(columns={SETTING: "dataset"})
    trials = int(sel["trials"].max())
    text = (f"Each outer fold was tuned on its own: an Optuna study of up to {trials} trials, each scored by "
            f"`{objective}`, subject-grouped inner cross-validation over that fold's training subjects; the "
            "test subject never enters a trial. The best trial's values retrain on all training subjects. A "
            "narrow [min, max] says the folds agree on a setting; a wide one says the inner CV could not tell "
            "the values apart, so the reported score is the tuning procedure's, not one setting's.")
    return [Heading("Selected hyper-parameters"), Para(text), *ctx.table(t, numeric, "selected_hparams"),
            *_dashboard(ctx)]


def _dashboard(ctx: ReportContext) -> list[Block]:
    """The command that opens every fold's study (trials, inner-fold scores, notes) in optuna-dashboard."""
    run, where = shown_path(ctx.run.run_dir)
    cmds = dashboard_commands(ctx.run.run_dir, shown=run)
    if not cmds:
        return []
    return [Para("Every fold's study (its trials, each inner fold's score, the note naming its test subject) "
                 f"opens in optuna-dashboard{' ' + where if where else ''}; a cell's folds are the studies whose "
                 "name starts with the cell:"), Code("\n".join(cmds))]
