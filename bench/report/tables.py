"""Result tables (headline, per source dataset, significance): computed frames, formatting, CSV/LaTeX."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.evaluation.verdicts import Rule, baseline_label  # noqa: F401 - baseline_label: the report's too

from . import stats
from .document import Table
from .load import SETTING, RunData, axis_options, ordered
from .names import minus

log = logging.getLogger(__name__)

METRIC_NAMES = {"uf1": "UF1", "uar": "UAR", "acc": "Accuracy"}


@dataclass
class ReportOptions:
    """Reporter settings (config group ``report_options``; every field is a key of the same name)."""

    baseline: str = "single_phase"  # representation every other one is compared against
    n_boot: int = 2000  # bootstrap replicates (over subjects and seeds)
    ci_level: float = 0.95
    seed: int = 0  # bootstrap RNG seed
    min_pairs: int = stats.DEFAULT_MIN_PAIRS  # fewest non-zero paired differences to run the test
    alpha: float = 0.05  # family-wise level of the secondary tests (Wilcoxon, McNemar; Holm)
    rope: float = 0.01  # region of practical equivalence, in UF1 (bench.evaluation.verdicts)
    decide_at: float = 0.95  # a verdict needs P(better), P(worse) or P(equivalent) at least this
    pdf: bool = True
    dpi: int = 200  # PNG resolution; the PDF embeds them at >= 150 dpi

    @classmethod
    def from_mapping(cls, m) -> "ReportOptions":
        """From a plain mapping (e.g. the ``report`` config group); unknown keys are an error."""
        from dataclasses import fields

        known = {f.name for f in fields(cls)}
        d = dict(m or {})
        extra = sorted(set(d) - known)
        if extra:
            raise ValueError(f"unknown report option(s) {', '.join(extra)}; known: {', '.join(sorted(known))}")
        return cls(**d)

    def __post_init__(self) -> None:
        if self.n_boot < 1:
            raise ValueError(f"report.n_boot must be >= 1, got {self.n_boot}")
        if not 0 < self.ci_level < 1:
            raise ValueError(f"report.ci_level must be in (0, 1), got {self.ci_level}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"report.alpha must be in (0, 1), got {self.alpha}")
        if self.min_pairs < 1:
            raise ValueError(f"report.min_pairs must be >= 1, got {self.min_pairs}")
        if self.dpi < 150:
            raise ValueError(f"report.dpi must be >= 150 (print resolution), got {self.dpi}")
        try:
            self.rule()
        except ValueError as e:
            raise ValueError(f"report.{e}") from None

    def rule(self) -> Rule:
        """The verdict rule these options state (``bench.evaluation.verdicts.Rule``)."""
        return Rule(rope=self.rope, decide_at=self.decide_at, n_boot=self.n_boot, seed=self.seed,
                    ci_level=self.ci_level)


def failed_folds(run: RunData) -> pd.DataFrame:
    """Failed (dataset, representation, model, seed, fold) rows with their errors; ``dataset`` is the setting."""
    res = run.results
    if not len(res):
        return res
    bad = res[res["status"] != "ok"].assign(dataset=lambda d: d[SETTING])
    cols = [c for c in ("dataset", "representation", "model", "seed", "fold", "status", "error") if c in bad]
    return bad[cols].reset_index(drop=True)


def headline_frame(run: RunData, opts: ReportOptions, preds: pd.DataFrame | None = None,
                   by: tuple[str, ...] = (SETTING,)) -> tuple[pd.DataFrame, dict]:
    """One row per (by..., representation, model): pooled scores, seed std, bootstrap CI.

    ``by`` names columns of the predictions; the setting is written as ``dataset`` (its display
    label: the dataset, or ``<dataset> · <flow>`` when the study has several flows).
    Returns the numeric frame and {(by..., rep, model): CellSummary}.
    """
    preds = run.predictions if preds is None else preds
    fails = failed_folds(run)
    reps = ordered(preds["representation"], None)
    rows, cells = [], {}
    for key, grp in preds.groupby(list(by) + ["representation", "model"], sort=False):
        summ = stats.summarize_cell(grp, run.n_classes, opts.n_boot, opts.seed, opts.ci_level)
        cells[key] = summ
        *bkeys, rep, model = key
        row = {("dataset" if b == SETTING else b): v for b, v in zip(by, bkeys)}
        n_failed = 0
        if len(fails):
            n_failed = int(((fails["dataset"] == grp[SETTING].iloc[0])
                            & (fails["representation"] == rep) & (fails["model"] == model)).sum())
        row.update(representation=rep, model=model, n_seeds=len(summ.seeds),
                   seeds=";".join(map(str, summ.seeds)), n_subjects=summ.n_subjects,
                   n_samples=summ.n_samples, failed_folds=n_failed)
        for m in stats.METRICS:
            row[m] = summ.mean[m]
            row[f"{m}_std"] = summ.std[m] if summ.std[m] is not None else np.nan
            row[f"{m}_ci_lo"], row[f"{m}_ci_hi"] = summ.ci[m]
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        base, _ = baseline_label(reps, opts.baseline, axis_options(run.results))
        rep_order = ordered(df["representation"], base)
        df["_r"] = df["representation"].map({r: i for i, r in enumerate(rep_order)})
        df["_m"] = df["model"].map({m: i for i, m in enumerate(ordered(preds["model"]))})
        keys = [("dataset" if b == SETTING else b) for b in by]
        df = df.sort_values([*keys, "_r", "_m"], kind="stable").drop(columns=["_r", "_m"]).reset_index(drop=True)
    return df, cells


def fmt(x: float, nd: int = 3) -> str:
    return f"{x:.{nd}f}"


def fmt_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def score_cell(row: pd.Series, m: str, with_ci: bool = True) -> str:
    s = fmt(row[m])
    if row["n_seeds"] > 1 and pd.notna(row[f"{m}_std"]):
        s += f" ± {fmt(row[f'{m}_std'])}"
    if with_ci:
        s += f" [{fmt(row[f'{m}_ci_lo'])}, {fmt(row[f'{m}_ci_hi'])}]"
    return s


def best_cells(df: pd.DataFrame, metrics_: list[str], col_offset: int) -> set[tuple[int, int]]:
    """(row, col) of the best value per metric column; ties at the displayed precision all count."""
    out = set()
    for j, m in enumerate(metrics_):
        shown = df[m].round(3)
        for i in np.flatnonzero((shown == shown.max()).to_numpy()):
            out.add((int(i), col_offset + j))
    return out


def headline_table(df: pd.DataFrame, metrics_=("uf1", "uar", "acc"), caption: str = "") -> Table:
    lead = ["Representation", "Model"]
    rows = []
    for _, r in df.iterrows():
        model = r["model"] + (" †" if r.get("failed_folds", 0) else "")
        rows.append([r["representation"], model] + [score_cell(r, m) for m in metrics_])
    return Table(lead + [METRIC_NAMES[m] for m in metrics_], rows, caption,
                 best_cells(df, list(metrics_), len(lead)), ["l", "l"] + ["r"] * len(metrics_))


def breakdown_table(df: pd.DataFrame, caption: str) -> Table:
    """Per source dataset: UF1 and UAR as in MEGC2019."""
    rows, bold = [], set()
    for _, grp in df.groupby("source_dataset", sort=False):
        offset = len(rows)
        for i, (_, r) in enumerate(grp.iterrows()):
            rows.append([r["source_dataset"], r["representation"], r["model"], str(r["n_subjects"]),
                         score_cell(r, "uf1"), score_cell(r, "uar")])
        bold |= {(offset + i, c) for i, c in best_cells(grp.reset_index(drop=True), ["uf1", "uar"], 4)}
    return Table(["Dataset", "Representation", "Model", "Subjects", "UF1", "UAR"], rows, caption,
                 bold, ["l", "l", "l", "r", "r", "r"])


def significance_frame(run: RunData, opts: ReportOptions) -> tuple[pd.DataFrame, list[str]]:
    """Every representation vs the baseline with the same model (per setting), on per-subject accuracy.

    The family for Holm is every comparison that was actually tested within one setting (dataset,
    flow); ``dataset`` in the frame is the setting's label.
    Returns the frame and sentences about comparisons that could not be made at all.
    """
    preds = run.predictions
    options = axis_options(run.results)
    rows, notes = [], []
    for ds, dgrp in preds.groupby(SETTING, sort=False):
        reps = ordered(dgrp["representation"])
        base, why = baseline_label(reps, opts.baseline, options)
        if base is None:
            notes.append(f"{ds}: no significance tests — {why}.")
            continue
        family: list[stats.PairedTest] = []
        recs = []
        for model in ordered(dgrp["model"]):
            mgrp = dgrp[dgrp["model"] == model]
            if base not in set(mgrp["representation"]):
                others = [r for r in reps if r != base and r in set(mgrp["representation"])]
                if others:
                    notes.append(f"{ds}: model {model} has no {base} cell, so {', '.join(others)} "
                                 f"cannot be compared with the baseline for it.")
                continue
            bsub = stats.per_subject_table(mgrp[mgrp["representation"] == base], run.n_classes).set_index("subject")
            for rep in reps:
                if rep == base or rep not in set(mgrp["representation"]):
                    continue
                rsub = stats.per_subject_table(mgrp[mgrp["representation"] == rep], run.n_classes).set_index("subject")
                common = sorted(set(bsub.index) & set(rsub.index))
                t = stats.paired_wilcoxon(rsub.loc[common, "acc"].to_numpy(), bsub.loc[common, "acc"].to_numpy(),
                                          opts.min_pairs)
                family.append(t)
                recs.append((ds, model, rep, base, t))
        stats.apply_holm(family)
        for ds_, model, rep, base_, t in recs:
            if t.status == "tested":
                assert t.p_holm is not None
                if t.p_holm < opts.alpha:
                    verdict = ("better" if (t.rank_biserial or 0) > 0 else "worse") + f" (Holm p < {opts.alpha:g})"
                else:
                    verdict = f"no significant difference (Holm p ≥ {opts.alpha:g})"
            else:
                verdict = t.reason
            rows.append(dict(
                dataset=ds_, model=model, representation=rep, baseline=base_, n_subjects=t.n_pairs,
                n_nonzero=t.n_nonzero, median_diff=t.median_diff, mean_diff=t.mean_diff,
                rank_biserial=t.rank_biserial, statistic=t.statistic, p=t.p, p_holm=t.p_holm,
                method=t.method, status=t.status, result=verdict,
            ))
    return pd.DataFrame(rows), notes


def significance_table(df: pd.DataFrame, caption: str) -> Table:
    """Untested comparisons show "—" for W and p; the Result column says why in words."""
    def num(v, f=fmt):
        return f(v) if v is not None and pd.notna(v) else "undefined"

    rows = []
    for _, r in df.iterrows():
        tested = r["status"] == "tested"
        rows.append([
            r["model"], r["representation"], str(r["n_subjects"]), str(r["n_nonzero"]),
            num(r["median_diff"], lambda v: f"{v:+.3f}"), num(r["rank_biserial"], lambda v: f"{v:+.2f}"),
            f"{r['statistic']:g}" if tested else "—",
            fmt_p(r["p"]) if tested else "—",
            fmt_p(r["p_holm"]) if tested else "—",
            r["result"],
        ])
    caption += " —: not tested (the Result column says why)." if (df["status"] != "tested").any() else ""
    return Table(["Model", "Representation", "Subjects", "Differ", "Median Δacc", "Rank-biserial r",
                  "W", "p", "p (Holm)", "Result"], rows, caption,
                 align=["l", "l", "r", "r", "r", "r", "r", "r", "r", "l"])


# ---------------------------------------------------------------- writers

_TEX_ESC = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "±": r"$\pm$", "≥": r"$\geq$", "θ": r"$\theta$", "×": r"$\times$", "†": r"$^\dagger$",
            "Δ": r"$\Delta$", "<": r"$<$", ">": r"$>$", "—": "---", "\u00a0": "~", "\u2212": r"$-$",
            "≈": r"$\approx$", "½": r"$\frac{1}{2}$", "→": r"$\to$", "·": r"$\cdot$", "≤": r"$\leq$"}


def tex_escape(s: str) -> str:
    """LaTeX text of ``s``: special characters escaped, a negative number's hyphen a true minus."""
    return "".join(_TEX_ESC.get(ch, ch) for ch in minus(str(s)))


def to_latex(t: Table, label: str, fit_column: bool = False) -> str:
    """A booktabs table. Hand-written (not pandas Styler) so bold cells and escaping stay under control.
    ``fit_column``: the tabular scaled to the column width (a wide table that must fit a paper's column)."""
    align = "".join(t.align or ["l"] * len(t.columns))
    needs = r"\usepackage{booktabs, graphicx}" if fit_column else r"\usepackage{booktabs}"
    lines = [f"% requires {needs}", r"\begin{table}[ht]", r"\centering", r"\small",
             *([r"\resizebox{\columnwidth}{!}{%"] if fit_column else []),
             rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(rf"\textbf{{{tex_escape(c)}}}" for c in t.columns) + r" \\", r"\midrule"]
    for i, row in enumerate(t.rows):
        cells = [rf"\textbf{{{tex_escape(v)}}}" if (i, j) in t.bold else tex_escape(v) for j, v in enumerate(row)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}" + ("}" if fit_column else "")]
    if t.caption:
        lines.append(rf"\caption{{{tex_escape(t.caption)}}}")
    lines += [rf"\label{{tab:{label}}}", r"\end{table}", ""]
    return "\n".join(lines)


def write_table(t: Table, numeric: pd.DataFrame, tables_dir: Path, stem: str, fit_column: bool = False) -> list[Path]:
    """``<stem>.csv`` (full-precision numbers) and ``<stem>.tex`` (the formatted table)."""
    tables_dir.mkdir(parents=True, exist_ok=True)
    csv, tex = tables_dir / f"{stem}.csv", tables_dir / f"{stem}.tex"
    # Undefined numbers (a std with one seed, a p for an untested pair) are written as empty fields;
    # the neighbouring n_seeds / status columns say why.
    numeric.to_csv(csv, index=False, na_rep="", float_format="%.6g")
    tex.write_text(to_latex(t, stem, fit_column))
    return [csv, tex]
