"""Model explanations: whatever models returned from ``forward(x, return_aux=True)``, drawn by shape.

``aux.npz`` holds ``<cell_hash>/<name>`` (per-sample arrays of all folds of one cell × seed) and
``<cell_hash>/y_true``; ``results.parquet`` maps a cell_hash to its axes. Nothing here knows which
model returns what: an (N, k) array with small k gets its components per true class, an (N, h, w)
array its mean map overall and per true class, any other shape a note.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import figures as F
from ..context import ReportContext
from ..document import Block, Heading, Para, Table
from ..load import SETTING, ReportInputError
from ..words import slug

# An (N, k) array with more components than this is not drawn as bars (one bar per component and class).
MAX_COMPONENTS = 8
LABELS = "y_true"


def _kind(arr: np.ndarray) -> str | None:
    """How a per-sample array is drawn: 'components' ((N,) or (N, k)), 'map' (N, h, w), or None."""
    if arr.dtype.kind not in "biuf" or arr.ndim == 0:
        return None
    if arr.ndim == 1 or (arr.ndim == 2 and 1 <= arr.shape[1] <= MAX_COMPONENTS):
        return "components"
    if arr.ndim == 3:
        return "map"
    return None


def _shape(arr: np.ndarray) -> str:
    """A per-sample shape in words, for the note on an array that is not drawn."""
    if arr.dtype.kind not in "biuf":
        return f"non-numeric values ({arr.dtype})"
    if not arr.ndim:
        return "a single value (not per sample)"
    return f"shape (N, {', '.join(map(str, arr.shape[1:]))})"


def _cells(ctx: ReportContext) -> dict[str, tuple[int, int, int, str]]:
    """cell_hash -> (rep index, model index, setting index, display name): the order and caption of a cell."""
    res = ctx.run.results
    if "cell_hash" not in res.columns or not len(res):
        return {}
    out = {}
    for h, grp in res.groupby("cell_hash", sort=False):
        r = grp.iloc[0]
        s, rep, model = str(r[SETTING]), str(r["representation"]), str(r["model"])
        out[str(h)] = (ctx.reps.index(rep) if rep in ctx.reps else len(ctx.reps),
                       ctx.models.index(model) if model in ctx.models else len(ctx.models),
                       ctx.settings.index(s) if s in ctx.settings else len(ctx.settings),
                       ctx.cell_name(rep, model) + (f" ({s})" if ctx.multi else ""))
    return out


def _labels(ctx: ReportContext, src: Path, key: str, cell: str, arr: np.ndarray) -> np.ndarray:
    """The true labels belonging to ``aux[key]``, validated against it."""
    aux, y_key = ctx.run.aux, f"{cell}/{LABELS}"
    if y_key not in aux:
        raise ReportInputError(f"{src}: {key} has no matching {y_key}")
    y = np.asarray(aux[y_key]).astype(int).ravel()
    if arr.shape[0] != len(y):
        raise ReportInputError(f"{src}: {key} has {arr.shape[0]} rows but {y_key} has {len(y)}")
    bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ReportInputError(f"{src}: {key} has non-finite values (first at sample {first})")
    if ((y < 0) | (y >= ctx.run.n_classes)).any():
        raise ReportInputError(f"{src}: {y_key} has labels outside [0, {ctx.run.n_classes})")
    return y


def _notes_for_odd(odd: dict[str, dict[str, dict]]) -> list[str]:
    return [f"No figure for `{name}` ({', '.join(sorted(where, key=where.get))}): no figure is drawn for "
            f"{shape} (drawn: per-sample vectors of up to {MAX_COMPONENTS} components and 2-D maps)."
            for name, shapes in odd.items() for shape, where in shapes.items()]


def _note_for_unknown(keys: list[str]) -> str:
    shown = ", ".join(f"`{k}`" for k in keys[:3]) + (", …" if len(keys) > 3 else "")
    return (f"No figure from {len(keys)} aux.npz array(s) ({shown}): their keys name no cell_hash of the "
            "results table (e.g. a run directory written before aux.npz was keyed by cell hash); rerun the "
            "study to draw them.")


def _pool(ctx: ReportContext) -> tuple[dict[tuple[str, str], dict[str, tuple]], list[str]]:
    """(aux name, kind) -> cell display name -> (values, labels) with the seeds pooled; and notes.

    Every array is accounted for: drawn, or named in a note (unknown cell, undrawable shape, a seed
    whose shape differs from the cell's other seeds).
    """
    aux, src = ctx.run.aux, ctx.run.run_dir / "aux.npz"
    cells = _cells(ctx)
    pooled: dict[tuple[str, str], dict[str, tuple]] = {}
    rank: dict[str, tuple] = {}
    odd: dict[str, dict[str, dict]] = {}  # name -> shape in words -> {cell: rank}
    unknown: list[str] = []
    notes: list[str] = []
    for key in aux:  # insertion order: the order the model returned its outputs
        cell, _, name = key.rpartition("/")
        if name == LABELS:
            continue
        if cell not in cells:
            unknown.append(key)
            continue
        *r, shown = cells[cell]
        raw = np.asarray(aux[key])
        kind = _kind(raw)
        if kind is None:
            odd.setdefault(name, {}).setdefault(_shape(raw), {})[shown] = tuple(r)
            continue
        arr = raw.astype(float).reshape(len(raw), -1) if raw.ndim == 1 else raw.astype(float)
        y = _labels(ctx, src, key, cell, arr)
        rank[shown] = tuple(r)
        group = pooled.setdefault((name, kind), {})
        if shown not in group:
            group[shown] = (arr, y)
        elif group[shown][0].shape[1:] == arr.shape[1:]:  # another seed of the same cell
            group[shown] = (np.concatenate([group[shown][0], arr]), np.concatenate([group[shown][1], y]))
        else:
            notes.append(f"No figure from {key}: its shape {arr.shape[1:]} differs from the other seeds of "
                         f"{shown} ({group[shown][0].shape[1:]}).")
    pooled = {k: dict(sorted(g.items(), key=lambda kv: rank[kv[0]])) for k, g in pooled.items()}
    notes += _notes_for_odd(odd) + ([_note_for_unknown(unknown)] if unknown else [])
    return pooled, notes


def seed_spread(ctx: ReportContext, name: str) -> tuple[pd.DataFrame, list[list[str]]]:
    """Per cell and true class, each component of the (N, k) array ``name``: the mean over a seed's test
    samples (all folds), then mean ± sd across seeds (e.g. a model's learned per-phase weights per class)."""
    res, aux, src = ctx.run.results, ctx.run.aux, ctx.run.run_dir / "aux.npz"
    if "cell_hash" not in res.columns or not len(res):
        return pd.DataFrame(), []
    recs = []
    for h, grp in res.groupby("cell_hash", sort=False):
        key = f"{h}/{name}"
        if key not in aux or _kind(np.asarray(aux[key])) != "components":
            continue
        arr = np.asarray(aux[key], dtype=float).reshape(len(aux[key]), -1)
        y = _labels(ctx, src, key, str(h), arr)
        r = grp.iloc[0]
        for c in np.unique(y):
            recs += [{"dataset": str(r[SETTING]), "representation": str(r["representation"]),
                      "model": str(r["model"]), "seed": int(r["seed"]), "class": ctx.run.classes[int(c)],
                      "component": j, "mean": float(arr[y == c, j].mean())} for j in range(arr.shape[1])]
    if not recs:
        return pd.DataFrame(), []
    df = pd.DataFrame(recs)
    g = df.groupby(["dataset", "representation", "model", "class", "component"], sort=False)["mean"]
    out = g.agg(mean="mean", sd=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan, seeds="size").reset_index()
    rows = []
    for (d, rep, model, cls), c in out.groupby(["dataset", "representation", "model", "class"], sort=False):
        vals = [f"{m:.3f}" + ("" if np.isnan(sd) else f" ± {sd:.3f}") for m, sd in zip(c["mean"], c["sd"])]
        rows.append(([d] if ctx.multi else []) + [ctx.rep_name(rep), ctx.model_name(model), cls, *vals,
                                                  str(int(c["seeds"].max()))])
    return out, rows


def thin(groups: dict[str, tuple]) -> bool:
    """(N, s, c) arrays of a few rows of many components (per-stream vectors, e.g. channel gates)."""
    return all(a.shape[1] <= 4 and a.shape[2] >= 2 * a.shape[1] for a, _ in groups.values())


def _drawing(ctx: ReportContext, name: str, kind: str, groups: dict[str, tuple]):
    """(figure function, stem, what it shows) for one aux array, by its shape."""
    if kind == "components":
        return F.component_by_class_plot, slug(name), (
            "mean ± std of each component over the test samples of each true class (all folds and seeds)")
    vmin, vmax, lo, hi = F.colour_scale(groups, ctx.run.n_classes)
    scale = (f"one colour scale for every panel, {vmin:.3g} to {vmax:.3g}; the means shown span "
             f"{lo:.3g} to {hi:.3g}")
    if thin(groups):
        return F.stream_vectors_plot, f"{slug(name)}_maps", (
            "per cell and stream (row of the array), the mean of each component over the test samples of "
            f"each true class (all folds and seeds; y: true class, x: component); {scale}")
    return F.mean_map_plot, f"{slug(name)}_maps", (
        f"mean map over the test samples (all folds and seeds), overall and per true class; {scale}")


def build(ctx: ReportContext) -> list[Block]:
    out: list[Block] = [Heading("Model explanations")]
    if not ctx.run.aux:
        out.append(Para("No figure: the run directory has no aux.npz (no model in this study returned "
                        "explanations from `forward(x, return_aux=True)`)."))
        return out
    pooled, notes = _pool(ctx)
    for (name, kind), groups in pooled.items():
        draw, stem, what = _drawing(ctx, name, kind, groups)
        out += ctx.figure(draw, stem, f"{name} of {', '.join(groups)}: {what}.", groups, ctx.run.classes, name=name)
        if kind == "components":
            frame, rows = seed_spread(ctx, name)
            if rows:
                k = int(frame["component"].max()) + 1
                head = (["Dataset"] if ctx.multi else []) + ["Representation", "Model", "True class",
                                                             *[f"{name}[{j}]" for j in range(k)], "Seeds"]
                t = Table(head, rows, f"{name} per true class: the mean over each seed's test samples (all folds), "
                          "then mean ± sd across seeds (no sd with one seed).",
                          align=["l"] * (len(head) - k - 1) + ["r"] * (k + 1))
                out += ctx.table(t, frame, f"{slug(name)}_by_seed")
    out += [Para(n) for n in notes]
    return out
