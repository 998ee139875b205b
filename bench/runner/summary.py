"""The end-of-run console summary: pooled scores per cell, and where to look next."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bench.results.tables import CELL_AXES


def summary_table(predictions, n_classes: int):
    """One row per cell (every axis but the seed): mean and sd over seeds of each seed's pooled scores.

    Columns: the cell axes, ``seeds`` (how many), ``UF1``/``UAR``/``ACC`` (mean over seeds; each seed's
    predictions pooled over all its folds, MEGC2019) with ``<M>_sd`` (sample sd over seeds, NaN with
    one seed), ``n`` (clips pooled per seed, the largest over seeds), and, for a cell whose predictions
    hold more than one ``source_dataset`` (the MEGC2019 composite), ``UF1_<source>``/``UAR_<source>``
    (with ``_sd``): each source's own pool.
    """
    import pandas as pd

    from bench.evaluation.metrics import per_seed_scores

    if len(predictions) == 0:
        return pd.DataFrame()
    axes = [a for a in CELL_AXES if a != "seed" and a in predictions.columns]
    multi = "source_dataset" in predictions.columns
    rows = []
    for keys, g in predictions.groupby(axes, sort=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row = dict(zip(axes, keys), seeds=int(g["seed"].nunique()))
        sources = sorted(g["source_dataset"].astype(str).unique()) if multi else []
        parts = [("", g)] + ([(f"_{src}", g[g["source_dataset"].astype(str) == src]) for src in sources]
                             if len(sources) > 1 else [])
        for suffix, part in parts:
            if not len(part):
                continue
            seeds = per_seed_scores(part, n_classes, [])  # one row per seed (that has clips of this part)
            for m in ("uf1", "uar") + (("acc",) if not suffix else ()):
                vals = seeds[m].to_numpy()
                row[f"{m.upper()}{suffix}"] = float(np.mean(vals))
                row[f"{m.upper()}{suffix}_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")
        row["n"] = int(g.groupby("seed").size().max())
        rows.append(row)
    tab = pd.DataFrame(rows)
    lead = [*axes, "seeds", "UF1", "UF1_sd", "UAR", "UAR_sd", "ACC", "ACC_sd", "n"]
    return tab[lead + [c for c in tab.columns if c not in lead]]


def print_summary(results, predictions, n_classes: int, out=None) -> None:
    """The end-of-run table: per cell, mean ± sd over seeds of the pooled UF1/UAR/accuracy (and, for a
    composite, each source's UF1/UAR); says so when seed variance was not measured."""
    import pandas as pd

    out = out or sys.stdout
    tab = summary_table(predictions, n_classes)
    if tab.empty:
        print("no predictions (every unit failed?)", file=out)
        return
    several = bool((tab["seeds"] > 1).any())

    def cell(v, sd) -> str:
        if pd.isna(v):
            return ""
        return f"{v:.3f} ± {sd:.3f}" if pd.notna(sd) else f"{v:.3f}"

    axes = [a for a in CELL_AXES if a in tab.columns]
    show = tab[axes + ["seeds"]].copy()
    scores = [c for c in tab.columns if c not in axes and c not in ("seeds", "n") and not c.endswith("_sd")]
    composite = len(scores) > 3  # per-source columns: the pooled ones are the "Full" composite
    for c in scores:
        m, _, src = c.partition("_")
        show[f"{m} {src}" if src else f"{m} full" if composite else c] = [
            cell(v, sd) for v, sd in zip(tab[c], tab[f"{c}_sd"])]
    show["n"] = tab["n"]
    how = "mean ± sd over seeds, each seed pooled over all its folds" if several else "one seed, pooled over all folds"
    print(f"\nPooled over all folds (MEGC2019 UF1/UAR; {how}):", file=out)
    print(show.to_string(index=False), file=out)
    if (tab["seeds"] == 1).any():
        which = "every cell" if not several else "cells with seeds = 1"
        print(f"seed variance was not measured for {which} (one seed): a single seed's UF1 moved by up to "
              "0.05 between two machines on the main study's 144 clips; run several seeds "
              "(study.seeds=[0,1,2]) to see the spread", file=out)


def print_next_steps(mlflow_info: dict | None, report_dir: Path | None, out=None) -> None:
    """The commands to look at the results: the MLflow UI with the link that opens on the runs, the report."""
    from bench.tracking.mlflow_store import ui_command, ui_link

    out = out or sys.stdout
    lines = []
    if mlflow_info and not mlflow_info.get("error") and mlflow_info.get("tracking_uri"):
        cmd = ui_command(mlflow_info["tracking_uri"])
        link = mlflow_info.get("ui_link") or ui_link(mlflow_info.get("experiment_id"), mlflow_info["tracking_uri"],
                                                     view=False)
        lines.append(f"  MLflow runs:  {cmd}\n                then open {link}" if cmd else f"  MLflow runs:  open {link}")
        if mlflow_info.get("note"):  # e.g. an old experiment's artifact location outside the run directory
            lines.append(f"  note:         {mlflow_info['note']}")
    if report_dir is not None:
        lines.append(f"  report:       {Path(report_dir) / 'report.md'}"
                     + (f" and {Path(report_dir) / 'report.pdf'}" if (Path(report_dir) / "report.pdf").exists() else ""))
    if lines:
        print("\nLook at the results:", *lines, sep="\n", file=out)
