"""The numbers report.html shows, read from the same derived data the Markdown report reads.

Every number here comes from ``ReportContext`` (its cached properties and the frames the sections
compute once with ``ctx.derive``), so report.html and report.md agree by construction: the headline
frames (``ctx.heads``), the verdicts (``ctx.verdicts``), each seed's pooled scores (``ctx.seed_scores``),
the per-subject scores (``sections.per_subject.per_subject``) and the learning curves
(``sections.learning_curves.curves``). What is formatted is formatted with the Markdown's own functions
(``tables.fmt``, ``names.signed``, ``verdicts.prob``), and every string goes through ``names.minus`` as
the Markdown's text does.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.evaluation import metrics
from bench.evaluation.verdicts import FULL, prob

from ..context import ReportContext
from ..load import SETTING, axis_params, unit_hparams_lenient
from ..names import minus, signed
from ..sections import learning_curves, per_subject
from ..tables import fmt
from ..words import value

METRICS = ("uf1", "uar", "acc")


def _num(x) -> float | None:
    """A JSON-safe number (None for NaN / missing)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def cells(ctx: ReportContext) -> list[dict]:
    """One record per cell (setting, representation, model), in the report's order: labels, display
    names, the headline scores as the Markdown prints them, the numbers to sort by, and the verdict."""
    verdicts = _verdicts(ctx)
    out = []
    for s in ctx.settings:
        for _, r in ctx.heads[s].iterrows():
            rep, model = str(r["representation"]), str(r["model"])
            rec = {"id": len(out), "setting": s, "rep": rep, "model": model, "rep_name": ctx.rep_name(rep),
                   "model_name": ctx.model_name(model), "n_seeds": int(r["n_seeds"]),
                   "failed_folds": int(r.get("failed_folds", 0) or 0), "baseline": rep == ctx.base}
            for m in METRICS:
                several = r["n_seeds"] > 1 and pd.notna(r[f"{m}_std"])
                rec[m] = _num(r[m])
                rec[f"{m}_text"] = minus(fmt(r[m]) + (f" ± {fmt(r[f'{m}_std'])}" if several else ""))
                rec[f"{m}_ci"] = minus(f"[{fmt(r[f'{m}_ci_lo'])}, {fmt(r[f'{m}_ci_hi'])}]")
            rec.update(verdicts.get((s, rep, model), {}))
            out.append(rec)
    return out


def _verdicts(ctx: ReportContext) -> dict[tuple[str, str, str], dict]:
    """(setting, representation, model) -> its verdict against the baseline (every source pooled)."""
    v = ctx.verdicts
    v = v[v["source"] == FULL] if len(v) else v
    out = {}
    for _, r in v.iterrows():
        lo, hi = signed(r["duf1_lo"]).lstrip("+"), signed(r["duf1_hi"]).lstrip("+")
        out[(str(r["dataset"]), str(r["representation"]), str(r["model"]))] = {
            "verdict": str(r["verdict"]), "duf1": _num(r["duf1"]), "duf1_text": f"{signed(r['duf1'])} [{lo}, {hi}]",
            "probs": " / ".join(prob(r[c]) for c in ("p_better", "p_equivalent", "p_worse"))}
    return out


def seeds(ctx: ReportContext, recs: list[dict]) -> dict[int, list[list]]:
    """Cell id -> [[seed, pooled UF1], ...] (``ctx.seed_scores``, the noise-floor figure's dots)."""
    sc = ctx.seed_scores
    by = {k: g.sort_values("seed") for k, g in sc.groupby([SETTING, "representation", "model"], sort=False)}
    out = {}
    for c in recs:
        g = by.get((c["setting"], c["rep"], c["model"]))
        out[c["id"]] = [] if g is None else [[int(s), _num(u)] for s, u in zip(g["seed"], g["uf1"])]
    return out


def drill(ctx: ReportContext, recs: list[dict]) -> dict[int, dict]:
    """Cell id -> what its drill-down draws: the confusion matrix, the per-subject scores paired with
    the baseline cell's, the learning curve and the recipe."""
    preds = ctx.run.predictions
    groups = {k: g for k, g in preds.groupby([SETTING, "representation", "model"], sort=False)}
    subj = ctx.derive(per_subject.per_subject)
    curves = ctx.derive(learning_curves.curves)
    recipes = _recipes(ctx)
    out = {}
    for c in recs:
        key = (c["setting"], c["rep"], c["model"])
        g = groups[key]
        cm = metrics.confusion_matrix(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), ctx.run.n_classes)
        out[c["id"]] = {"confusion": np.asarray(cm).astype(int).tolist(),
                        "subjects": _paired_subjects(ctx, subj, key),
                        "curve": _curve(curves, key), "recipe": recipes.get(key, [])}
    return out


def _paired_subjects(ctx: ReportContext, subj: pd.DataFrame, key: tuple[str, str, str]) -> dict:
    """Per subject, the cell's accuracy and UF1 (mean over seeds) beside the baseline cell's (same model)."""
    s, rep, model = key

    def of(r):
        d = subj[(subj["dataset"] == s) & (subj["representation"] == r) & (subj["model"] == model)]
        return d.set_index("subject")

    mine = of(rep)
    base = of(ctx.base) if ctx.base is not None and ctx.base != rep else None
    rows = []
    for subject, r in mine.iterrows():
        b = base.loc[subject] if base is not None and subject in base.index else None
        rows.append([str(subject), _num(r["acc"]), _num(r["uf1"]), None if b is None else _num(b["acc"]),
                     None if b is None else _num(b["uf1"])])
    return {"baseline": None if base is None else ctx.cell_name(ctx.base, model), "rows": rows}


def _curve(curves: pd.DataFrame, key: tuple[str, str, str]) -> dict:
    """Per metric of ``learning_curves.CURVES`` recorded: [[epoch (1-based), mean, sd], ...]."""
    if not len(curves):
        return {}
    s, rep, model = key
    c = curves[(curves[SETTING] == s) & (curves["representation"] == rep) & (curves["model"] == model)]
    out = {}
    for m, name in learning_curves.CURVES.items():
        if m in c.columns and c[m].notna().any():
            d = c[c[m].notna()]
            out[name] = [[int(e) + 1, _num(v), _num(sd)] for e, v, sd in zip(d["epoch"], d[m], d[f"{m}_sd"])]
    return out


def _recipes(ctx: ReportContext) -> dict[tuple[str, str, str], list[list[str]]]:
    """Per cell, [[setting, value], ...]: the representation's and the model's parameters (the ``p_*``
    columns) and the trainer settings its units recorded (``hparams``); a setting that differs between
    the cell's units (a tuned one, the seed) lists its values."""
    res = ctx.run.results
    if not len(res):
        return {}
    reps, models = axis_params(res, "representation"), axis_params(res, "model")
    ok = res[res["status"] == "ok"] if "status" in res.columns else res
    out = {}
    for (s, rep, model), g in ok.groupby([SETTING, "representation", "model"], sort=False):
        rows = [["representation", _option(reps.get(str(rep)))], ["model", _option(models.get(str(model)))]]
        rows += _unit_settings(g)
        out[(str(s), str(rep), str(model))] = [[minus(k), minus(v)] for k, v in rows if v]
    return out


def _option(entry: tuple[str, dict] | None) -> str:
    if entry is None:
        return ""
    option, params = entry
    return option + (" (" + ", ".join(f"{k}={value(v)}" for k, v in params.items()) + ")" if params else "")


def _unit_settings(g: pd.DataFrame) -> list[list[str]]:
    """``trainer.<key>`` / ``tuned.<key>`` rows from the units' ``hparams`` JSON (values that differ
    between units joined with " | ")."""
    if "hparams" not in g.columns:
        return []
    seen: dict[str, list[str]] = {}
    for raw in g["hparams"]:
        h = unit_hparams_lenient(raw)
        for part in ("trainer", "tuned"):
            node = h.get(part)
            for k, v in (node.items() if isinstance(node, dict) else ()):
                vals = seen.setdefault(f"{part}.{k}", [])
                if value(v) not in vals:
                    vals.append(value(v))
    return [[k, " | ".join(v)] for k, v in seen.items()]
