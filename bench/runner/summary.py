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


class _Names:
    """Print names of the run's axis labels (``bench.report.names``), as the report's answer uses them."""

    def __init__(self, options: dict[str, dict[str, str]]):
        self.options = options

    def rep_name(self, label: str) -> str:
        from bench.report.names import display

        return display(label, "representation", self.options["representation"].get(str(label)))

    def model_name(self, label: str) -> str:
        from bench.report.names import display

        return display(label, "model", self.options["model"].get(str(label)))


def print_answer(predictions, n_classes: int, cells, report_options: dict, out=None) -> None:
    """The report's answer, on the console: per setting the best cell and one sentence per model, each
    representation's verdict against the baseline (``bench.evaluation.verdicts``, the report's rule)."""
    from bench.evaluation.verdicts import FULL, verdicts
    from bench.report.sections.answer import family_sentences
    from bench.report.tables import ReportOptions

    out = out or sys.stdout
    if len(predictions) == 0:
        return
    opts = ReportOptions.from_mapping(report_options)
    names = _Names({g: {getattr(c, g).name: getattr(c, g).option for c in cells} for g in ("representation", "model")})
    v = verdicts(predictions, n_classes, opts.baseline, options=names.options["representation"], rule=opts.rule())
    by = [c for c in ("dataset", "flow") if c in predictions.columns]
    groups = list(predictions.groupby(by, sort=False)) if by else [((), predictions)]
    print(f"\nThe answer ({opts.rule().words()}; ΔUF1 against {names.rep_name(opts.baseline)}, "
          f"{opts.ci_level:.0%} interval):", file=out)
    for key, grp in groups:
        key = key if isinstance(key, tuple) else (key,)
        if len(groups) > 1:
            print(f"  {' · '.join(map(str, key))}:", file=out)
        print(f"  best cell: {_best(grp, n_classes, names)}", file=out)
        mine = v
        for col, val in zip(by, key):
            mine = mine[mine[col] == val]
        for sentence in family_sentences(names, mine[mine["source"] == FULL]):
            print(f"  - {sentence}", file=out)
    if not len(v):
        print(f"  no comparison: {_why_no_comparison(opts.baseline, names)}", file=out)


def _why_no_comparison(baseline: str, names: _Names) -> str:
    """Why no verdict was drawn: one representation only, or the baseline is not in the study."""
    options = set(names.options["representation"].values())
    if options == {baseline}:
        return f"the study has one representation ({baseline!r}), so none to set beside the baseline"
    return f"the baseline {baseline!r} is not among this study's representations (report_options.baseline=...)"


def _best(grp, n_classes: int, names: _Names) -> str:
    """The cell with the highest UF1 (mean over seeds of each seed's pooled UF1)."""
    tab = summary_table(grp, n_classes).sort_values("UF1", ascending=False, kind="stable")
    r = tab.iloc[0]
    seeds = int(r["seeds"])
    return (f"{names.rep_name(r['representation'])} × {names.model_name(r['model'])}, UF1 {r['UF1']:.3f}"
            + (f" ± {r['UF1_sd']:.3f} over {seeds} seeds" if seeds > 1 else " (one seed)"))


def print_next_steps(mlflow_info: dict | None, report_dir: Path | None, out=None, *, run_dir: Path | None = None,
                     results=None) -> None:
    """The commands to look at the results: the MLflow UI with the link that opens on the runs, the report;
    after a tuned run (``results``), a line on the tuning and the optuna-dashboard command on ``run_dir``'s storage."""
    from bench.tracking.mlflow_store import ui_command, ui_link
    from bench.training.tuning import dashboard_commands, tuning_line

    out = out or sys.stdout
    lines = []
    tuned = tuning_line(results) if run_dir is not None else None
    if tuned:
        print(f"\n{tuned}", file=out)
        lines += [f"  Optuna:       {cmd}" for cmd in dashboard_commands(run_dir)]
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
        if (Path(report_dir) / "report.html").exists():  # the browsable one: sortable table, drill-downs
            lines.append(f"  in a browser: {Path(report_dir) / 'report.html'}")
    if lines:
        print("\nLook at the results:", *lines, sep="\n", file=out)
