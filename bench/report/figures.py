"""Report figures. Each function writes one PNG and returns its caption, or raises ``Skipped``.

Figures are drawn on ``matplotlib.figure.Figure`` objects (never pyplot), so no global backend or
state is touched: the reporter runs inside the study process and in parallel tests. Widths stay
within the A4 text width (7.0 in) so that the PDF places them at their native size and the fonts
print at the size written here.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from representations.base import vector_pairs

TEXT_WIDTH_IN = 7.0
MAX_HEIGHT_IN = 9.2
RC = {"font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8, "xtick.labelsize": 7,
      "ytick.labelsize": 7, "legend.fontsize": 7, "figure.dpi": 100}


class Skipped(Exception):
    """A figure that is not drawn; the message says why (it goes into the report)."""


def _style():
    return mpl.rc_context({**sns.axes_style("whitegrid"), **RC})


def _save(fig: Figure, path: Path, dpi: int) -> None:
    """The PNG (the Markdown and the PDF report show it) and the same figure as vector PDF beside it
    (for a paper). ``metadata``: no creation date, so an unchanged figure is an unchanged file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.05, facecolor="white")
    fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight", pad_inches=0.05, facecolor="white",
                metadata={"CreationDate": None})


def _short(s: str, n: int = 10) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _xticks(ax, x, labels: list[str]) -> None:
    """Category labels; long ones tilted and anchored at their end so they sit under their tick."""
    tilt = max(map(len, labels)) > 12 or len(labels) > 5
    ax.set_xticks(x, labels, rotation=25 if tilt else 0, ha="right" if tilt else "center",
                  rotation_mode="anchor" if tilt else "default")


def model_palette(models: list[str]) -> dict[str, tuple]:
    return dict(zip(models, sns.color_palette("colorblind", max(len(models), 3))))


def bars_with_ci(df: pd.DataFrame, reps: list[str], models: list[str], path: Path, dpi: int,
                 metrics_=("uf1", "uar")) -> None:
    """Grouped bars (x: representation, colour: model) of pooled scores with bootstrap-CI whiskers."""
    if not len(df):
        raise Skipped("no cell has predictions")
    pal = model_palette(models)
    with _style():
        fig = Figure(figsize=(TEXT_WIDTH_IN, 2.0 * len(metrics_) + 0.6), layout="constrained")
        axes = fig.subplots(len(metrics_), 1, squeeze=False)[:, 0]
        width = 0.8 / len(models)
        x = np.arange(len(reps))
        for ax, m in zip(axes, metrics_):
            for j, model in enumerate(models):
                sub = df[df["model"] == model].set_index("representation").reindex(reps)
                ok = sub[m].notna().to_numpy()
                if not ok.any():
                    continue
                xs = x[ok] - 0.4 + width * (j + 0.5)
                val = sub[m].to_numpy()[ok]
                err = np.vstack([val - sub[f"{m}_ci_lo"].to_numpy()[ok], sub[f"{m}_ci_hi"].to_numpy()[ok] - val])
                ax.bar(xs, val, width * 0.92, color=pal[model], label=model, yerr=np.clip(err, 0, None),
                       capsize=2, error_kw={"elinewidth": 0.8, "ecolor": "0.2"})
            _xticks(ax, x, reps)
            ax.set_ylabel(m.upper())
            ax.set_ylim(0, 1.0)
            ax.grid(axis="x", visible=False)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(models), 5), title="model",
                   frameon=False)
        _save(fig, path, dpi)


def confusion_grid(cms: dict[tuple[str, str], np.ndarray], reps: list[str], models: list[str],
                   classes: list[str], path: Path, dpi: int, title: str = "") -> None:
    """Row-normalised confusion matrices (recall per true class): rows representation, columns model."""
    if not cms:
        raise Skipped("no cell has predictions")
    reps = [r for r in reps if any((r, m) in cms for m in models)]
    models = [m for m in models if any((r, m) in cms for r in reps)]
    k = len(classes)
    panel = min(2.3, TEXT_WIDTH_IN / len(models))
    annotate = k <= 6 and panel >= 1.3
    names = [_short(c, 8) for c in classes]
    with _style(), mpl.rc_context({"axes.grid": False}):
        fig = Figure(figsize=(panel * len(models) + 0.8, panel * len(reps) + 0.4), layout="constrained")
        axes = fig.subplots(len(reps), len(models), squeeze=False)
        im = None
        for i, r in enumerate(reps):
            for j, m in enumerate(models):
                ax = axes[i, j]
                if (r, m) not in cms:
                    ax.set_axis_off()
                    ax.text(0.5, 0.5, f"{r} × {m}\nnot run", ha="center", va="center", fontsize=7,
                            transform=ax.transAxes)
                    continue
                cm = cms[(r, m)].astype(float)
                support = cm.sum(axis=1, keepdims=True)
                norm = np.divide(cm, support, out=np.zeros_like(cm), where=support > 0)
                im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
                if annotate:
                    for a in range(k):
                        for b in range(k):
                            ax.text(b, a, f"{norm[a, b]:.2f}", ha="center", va="center", fontsize=6,
                                    color="white" if norm[a, b] > 0.6 else "black")
                ax.set_xticks(range(k), names if i == len(reps) - 1 else [""] * k, rotation=45, ha="right")
                ax.set_yticks(range(k), names if j == 0 else [""] * k)
                ax.set_title(f"{_short(r, 18)} × {_short(m, 14)}", fontsize=7)
                if i == len(reps) - 1:
                    ax.set_xlabel("predicted")
                if j == 0:
                    ax.set_ylabel("true")
        if im is not None:
            fig.colorbar(im, ax=axes, shrink=0.6, label="fraction of true class")
        if title:
            fig.suptitle(title, fontsize=9)
        _save(fig, path, dpi)


def sweep_plot(df: pd.DataFrame, param: str, lines: list[str], path: Path, dpi: int,
               baseline: pd.DataFrame | None = None, metrics_=("uf1", "uar"), title: str = "") -> None:
    """Score vs a swept representation parameter; one line per model (and fixed other params),
    band = bootstrap CI; the baseline with the same model as a dashed line."""
    if df["x"].nunique() < 2:
        raise Skipped(f"{param} takes a single value")
    pal = dict(zip(lines, sns.color_palette("colorblind", max(len(lines), 3))))
    xlabel = param.replace("theta", "θ")
    with _style():
        fig = Figure(figsize=(TEXT_WIDTH_IN, 2.9), layout="constrained")
        axes = fig.subplots(1, len(metrics_), squeeze=False)[0]
        for ax, m in zip(axes, metrics_):
            for line in lines:
                sub = df[df["line"] == line].sort_values("x")
                if not len(sub):
                    continue
                ax.plot(sub["x"], sub[m], marker="o", ms=3, color=pal[line], label=line)
                ax.fill_between(sub["x"], sub[f"{m}_ci_lo"], sub[f"{m}_ci_hi"], color=pal[line], alpha=0.18, lw=0)
                if baseline is not None and "model" in sub.columns:
                    b = baseline[baseline["model"] == sub["model"].iloc[0]]
                    if len(b):
                        ax.axhline(float(b[m].iloc[0]), color=pal[line], ls="--", lw=0.9)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(m.upper())
            ax.set_ylim(0, 1)
        h, lab = axes[0].get_legend_handles_labels()
        if baseline is not None and len(baseline):
            h.append(mpl.lines.Line2D([], [], color="0.3", ls="--", lw=0.9))
            lab.append("baseline (same model)")
        fig.legend(h, lab, loc="outside lower center", ncols=min(len(lab), 4), frameon=False)
        if title:
            fig.suptitle(title, fontsize=9)
        _save(fig, path, dpi)


def component_by_class_plot(groups: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str], path: Path,
                            dpi: int, name: str = "value") -> None:
    """Per cell (panel): mean ± std over samples of each component of an (N, k) array, per true class.

    ``groups``: panel title -> (values (N, k), true labels (N,)); components are labelled ``name[j]``.
    """
    if not groups:
        raise Skipped(f"no cell returned {name}")
    n = len(groups)
    ncols = min(n, 2)
    nrows = math.ceil(n / ncols)
    k = len(classes)
    n_comp = max(w.shape[1] for w, _ in groups.values())
    width = 0.76 / n_comp
    unit = all(float(w.min()) >= 0 and float(w.max()) <= 1 for w, _ in groups.values())  # e.g. softmax weights
    with _style():
        fig = Figure(figsize=(TEXT_WIDTH_IN, min(2.4 * nrows + 0.5, MAX_HEIGHT_IN)), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        x = np.arange(k)
        colors = sns.color_palette("colorblind", max(n_comp, 2))
        present = np.array([[(y == c).any() for c in range(k)] for _, y in groups.values()])
        for ax, (title, (w, y)), has in zip(axes, groups.items(), present):
            for p in range(w.shape[1]):
                mean = np.array([w[y == c, p].mean() if has[c] else 0.0 for c in range(k)])
                sd = np.array([w[y == c, p].std() if has[c] else 0.0 for c in range(k)])
                ax.bar(x[has] + (p - (n_comp - 1) / 2) * width, mean[has], width * 0.95, yerr=sd[has], capsize=2,
                       color=colors[p], label=f"{name}[{p}]", error_kw={"elinewidth": 0.7})
            ax.set_xticks(x, [_short(c, 9) for c in classes], rotation=30 if k > 4 else 0,
                          ha="right" if k > 4 else "center")
            if unit:
                ax.set_ylim(0, 1)
            ax.set_ylabel("mean value")
            ax.set_title(title, fontsize=7.5)
            ax.grid(axis="x", visible=False)
        for ax in axes[n:]:
            ax.set_axis_off()
        h, lab = max((ax.get_legend_handles_labels() for ax in axes[:n]), key=lambda hl: len(hl[1]))
        fig.legend(h, lab, loc="outside lower center", ncols=min(len(lab), 4), frameon=False)
        _save(fig, path, dpi)


def mean_maps(arr: np.ndarray, y: np.ndarray, k: int) -> list[np.ndarray | None]:
    """The mean of (N, h, w) maps over all samples, then over each true class (None: no sample)."""
    return [arr.mean(axis=0)] + [arr[y == c].mean(axis=0) if (y == c).any() else None for c in range(k)]


def colour_scale(groups: dict[str, tuple[np.ndarray, np.ndarray]], k: int) -> tuple[float, float, float, float]:
    """(vmin, vmax, lo, hi): one colour scale for every panel of a figure, and the range the mean maps
    span. Values within [0, 1] (gates, sigmoid maps) get the whole [0, 1] scale, so a near-uniform
    map looks near-uniform; any others get their own range, stated in the caption."""
    means = [m for arr, y in groups.values() for m in mean_maps(arr, y, k) if m is not None]
    lo, hi = min(float(m.min()) for m in means), max(float(m.max()) for m in means)
    raw_lo = min(float(a.min()) for a, _ in groups.values())
    raw_hi = max(float(a.max()) for a, _ in groups.values())
    vmin, vmax = (0.0, 1.0) if raw_lo >= 0 and raw_hi <= 1 else (lo, hi if hi > lo else lo + 1e-9)
    return vmin, vmax, lo, hi


def mean_map_plot(groups: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str], path: Path,
                  dpi: int, name: str = "map") -> None:
    """Per cell (row): the mean of an (N, h, w) map over all test samples, then per true class, on one
    colour scale shared by every panel (``colour_scale``) with one labelled colour bar.

    ``groups``: row label ("rep × model") -> (maps (N, h, w), true labels (N,)).
    """
    if not groups:
        raise Skipped(f"no cell returned {name}")
    k = len(classes)
    ncols = k + 1
    vmin, vmax, _, _ = colour_scale(groups, k)
    panel = min(1.5, TEXT_WIDTH_IN / (ncols + 0.6))
    with _style(), mpl.rc_context({"axes.grid": False}):
        fig = Figure(figsize=(panel * ncols + 0.9, min(panel * len(groups) + 0.5, MAX_HEIGHT_IN)),
                     layout="constrained")
        axes = fig.subplots(len(groups), ncols, squeeze=False)
        im = None
        for i, (label, (arr, y)) in enumerate(groups.items()):
            for j, mp in enumerate(mean_maps(arr, y, k)):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if mp is None:
                    ax.set_axis_off()
                    ax.text(0.5, 0.5, "no test\nsamples", ha="center", va="center", fontsize=6,
                            transform=ax.transAxes)
                    continue
                im = ax.imshow(mp, cmap="inferno", vmin=vmin, vmax=vmax)
                if i == 0:
                    ax.set_title("all classes" if j == 0 else f"true: {_short(classes[j - 1], 10)}", fontsize=7)
                if j == 0:
                    ax.set_ylabel("\n× ".join(_short(p, 22) for p in label.split(" × ")), fontsize=6.5)
        if im is not None:
            fig.colorbar(im, ax=axes, shrink=0.8, aspect=20, label=f"mean {name} (scale {vmin:.2g} to {vmax:.2g})")
        _save(fig, path, dpi)


def stream_vectors_plot(groups: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str], path: Path,
                        dpi: int, name: str = "value") -> None:
    """An (N, s, c) array with a few rows (streams) of many components (e.g. channel gates): per cell
    and stream, a heatmap of the mean component per true class (y: true class, x: component), one colour
    scale for every panel (``colour_scale``) and one labelled colour bar."""
    if not groups:
        raise Skipped(f"no cell returned {name}")
    k = len(classes)
    vmin, vmax, _, _ = colour_scale(groups, k)
    panels = [(label, s) for label, (arr, _) in groups.items() for s in range(arr.shape[1])]
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    with _style(), mpl.rc_context({"axes.grid": False}):
        fig = Figure(figsize=(TEXT_WIDTH_IN, min(0.32 * k * nrows + 0.9 * nrows + 0.4, MAX_HEIGHT_IN)),
                     layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        im = None
        for ax, (label, s) in zip(axes, panels):
            arr, y = groups[label]
            per_class = np.stack([arr[y == c, s].mean(axis=0) if (y == c).any() else np.full(arr.shape[2], np.nan)
                                  for c in range(k)])
            im = ax.imshow(per_class, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
            ax.set_yticks(range(k), [_short(c, 10) for c in classes])
            ax.set_ylabel("true class")
            ax.set_xlabel(f"{name} component (of {arr.shape[2]})")
            ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
            ax.set_title(f"{label} — stream {s + 1} of {arr.shape[1]}", fontsize=7)
        for ax in axes[len(panels):]:
            ax.set_axis_off()
        if im is not None:
            fig.colorbar(im, ax=axes.tolist(), shrink=0.8, aspect=25,
                         label=f"mean {name} (scale {vmin:.2g} to {vmax:.2g})")
        _save(fig, path, dpi)


def examples_plot(examples: dict[str, tuple[np.ndarray, list[str]]], path: Path, dpi: int) -> None:
    """Each representation of one synthetic sample: one row per representation, one panel per channel.
    Signed channels use a diverging map centred at zero."""
    if not examples:
        raise Skipped("examples.npz is missing or empty")
    ncols = max(a.shape[0] for a, _ in examples.values())
    panel = min(1.5, TEXT_WIDTH_IN / ncols)
    with _style(), mpl.rc_context({"axes.grid": False}):
        fig = Figure(figsize=(panel * ncols + 0.3, min(panel * 1.05 * len(examples) + 0.3, MAX_HEIGHT_IN)),
                     layout="constrained")
        axes = fig.subplots(len(examples), ncols, squeeze=False)
        for i, (rep, (arr, chans)) in enumerate(examples.items()):
            for j in range(ncols):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j >= arr.shape[0]:
                    ax.set_axis_off()
                    continue
                ch = arr[j].astype(float)
                # a flow component (u*/v* by the channel naming convention) is signed even when a
                # sample happens to have one sign only: diverging map centred on 0
                signed = j in {k for pair in vector_pairs(tuple(chans)) for k in pair}
                if signed or ch.min() < 0:
                    lim = float(np.abs(ch).max()) or 1.0
                    im = ax.imshow(ch, cmap="RdBu_r", vmin=-lim, vmax=lim)
                else:
                    im = ax.imshow(ch, cmap="viridis")
                ax.set_title(_short(chans[j], 16), fontsize=6.5)
                if j == 0:
                    ax.set_ylabel(_short(rep, 20), fontsize=7)
                cb = fig.colorbar(im, ax=ax, shrink=0.75, aspect=10)
                cb.ax.tick_params(labelsize=5)
        _save(fig, path, dpi)


def per_subject_plot(df: pd.DataFrame, reps: list[str], models: list[str], metric: str, path: Path,
                     dpi: int) -> None:
    """Box plot with every subject as a dot: the per-subject score the significance test pairs."""
    if not len(df):
        raise Skipped("no per-subject scores")
    pal = model_palette(models)
    with _style():
        fig = Figure(figsize=(TEXT_WIDTH_IN, 3.2), layout="constrained")
        ax = fig.subplots()
        with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11's deprecated `vert`
            warnings.simplefilter("ignore", mpl.MatplotlibDeprecationWarning)
            sns.boxplot(data=df, x="representation", y=metric, hue="model", order=reps, hue_order=models,
                        palette=pal, ax=ax, fliersize=0, linewidth=0.8, boxprops={"alpha": 0.55})
        # seaborn draws the jitter from numpy's global RNG: seed it (and restore it) so the figure is
        # byte-identical between runs and a committed example report does not churn.
        state = np.random.get_state()
        np.random.seed(0)
        try:
            sns.stripplot(data=df, x="representation", y=metric, hue="model", order=reps, hue_order=models,
                          palette=pal, ax=ax, dodge=True, size=2.6, jitter=0.15, legend=False,
                          edgecolor="0.2", linewidth=0.3)
        finally:
            np.random.set_state(state)
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(f"per-subject {metric.upper() if metric != 'acc' else 'accuracy'}")
        ax.set_xlabel("representation")
        _xticks(ax, np.arange(len(reps)), reps)
        h, lab = ax.get_legend_handles_labels()
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        fig.legend(h[: len(models)], lab[: len(models)], loc="outside lower center", ncols=min(len(models), 5),
                   frameon=False, title="model")
        _save(fig, path, dpi)
