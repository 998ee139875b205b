"""Every representation at once, per model: the Friedman test and Nemenyi's critical difference (Demšar 2006).

The unit of replication is the subject: per model, each subject's accuracy on its own test clips (mean
over seeds; per-subject UF1 is degenerate under LOSO, where a subject has a few clips and rarely every
class) ranks the representations (1 = best, ties share the mean rank); Friedman's test asks whether
the mean ranks differ at all, and two representations whose mean ranks differ by less than Nemenyi's
critical difference CD = q_α √(k(k+1)/(6N)) are joined by a bar in the diagram (scikit-posthocs draws it
from the Nemenyi p-values). Only subjects every representation of the model was tested on count.
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats as sps

from .. import figures as F
from .. import stats
from ..context import Facet, PerSetting, ReportContext
from ..document import Block, Heading, Para, Table

TITLE = "All representations at once: ranks over subjects"
MIN_REPS = 3  # Friedman compares at least three; two are the verdicts' pairwise comparison


def subject_scores(ctx: ReportContext, preds: pd.DataFrame, model: str) -> pd.DataFrame:
    """Subjects × representations: per-subject accuracy (mean over seeds), subjects every one has."""
    cols = {}
    for rep in ctx.reps:
        part = preds[(preds["model"] == model) & (preds["representation"] == rep)]
        if len(part):
            cols[rep] = stats.per_subject_table(part, ctx.run.n_classes).set_index("subject")["acc"]
    return pd.DataFrame(cols).dropna()


def friedman(scores: pd.DataFrame, alpha: float) -> dict:
    """Mean ranks (1 = best), Friedman's χ² and p, the Nemenyi p-values and critical difference."""
    import scikit_posthocs as sp

    n, k = scores.shape
    ranks = scores.rank(axis=1, ascending=False).mean()
    chi2, p = sps.friedmanchisquare(*[scores[c].to_numpy() for c in scores.columns])
    q = sps.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    nemenyi = sp.posthoc_nemenyi_friedman(scores.reset_index(drop=True))
    return dict(ranks=ranks, chi2=float(chi2), p=float(p), cd=float(q * np.sqrt(k * (k + 1) / (6 * n))),
                nemenyi=nemenyi, n=n, k=k)


def cd_plot(results: dict[str, dict], names: dict[str, str], path, dpi: int) -> None:
    """One critical-difference diagram per model (scikit-posthocs), on the report's own Figure."""
    import scikit_posthocs as sp

    if not results:
        raise F.Skipped("no model has three representations tested on the same subjects")
    with F._style(), mpl.rc_context({"axes.grid": False}):
        fig = Figure(figsize=(F.TEXT_WIDTH_IN, 1.25 * len(results) + 0.3), layout="constrained")
        axes = fig.subplots(len(results), 1, squeeze=False)[:, 0]
        for ax, (model, r) in zip(axes, results.items()):
            ranks = r["ranks"].rename(index=names)
            sig = r["nemenyi"].copy()
            sig.index = sig.columns = ranks.index
            sp.critical_difference_diagram(ranks, sig, ax=ax, label_props={"fontsize": 7})
            ax.set_title(f"{model}: mean rank over {r['n']} subjects (1 = best); "
                         f"Friedman p = {r['p']:.3f}, CD = {r['cd']:.2f}", fontsize=7.5)
        F._save(fig, path, dpi)


PER_SETTING = PerSetting(headings=True)


def lead(ctx: ReportContext) -> list[Block]:
    if len(ctx.reps) < MIN_REPS:
        return []
    return [Heading(TITLE), Para(
        "The verdicts compare each representation with the baseline; this compares them all at once, per "
        "model (Demšar 2006). **Unit of replication: the subject** — each subject's accuracy on its own test "
        "clips, the mean over seeds, ranks the representations (1 = best); Friedman's test asks whether the "
        "mean ranks differ at all, and Nemenyi's post-hoc test joins by a bar the representations whose mean "
        f"ranks differ by less than the critical difference at α = {ctx.opts.alpha:g} (scikit-posthocs). Only "
        "subjects every representation of the model was tested on count. Like the Wilcoxon test, a bar is "
        "not equivalence: it says the data cannot tell those ranks apart.")]


def build_setting(ctx: ReportContext, f: Facet) -> list[Block]:
    preds, results = f.predictions, {}
    for model in f.models_in(preds):
        scores = subject_scores(ctx, preds, model)
        if scores.shape[1] >= MIN_REPS and len(scores) >= 2:
            results[ctx.model_name(model)] = friedman(scores, ctx.opts.alpha)
    if not results:
        return [Para(f"*No diagram{f.suffix}: no model has {MIN_REPS} representations tested on the same subjects.*")]
    names = {r: ctx.rep_name(r) for r in ctx.reps}
    rows, frame = [], []
    for model, r in results.items():
        order = r["ranks"].sort_values()
        rows.append([model, str(r["n"]), str(r["k"]), f"{r['chi2']:.2f}", f"{r['p']:.3f}", f"{r['cd']:.2f}",
                     ", ".join(f"{names[k]} {v:.2f}" for k, v in order.items())])
        frame += [dict(model=model, representation=k, mean_rank=v, n_subjects=r["n"], friedman_chi2=r["chi2"],
                       friedman_p=r["p"], cd=r["cd"]) for k, v in order.items()]
    t = Table(["Model", "Subjects", "k", "Friedman χ²", "p", "CD", "Mean rank (1 = best)"], rows,
              f"Friedman test and Nemenyi's critical difference per model{f.suffix}; unit of replication: subjects "
              "(per-subject accuracy, mean over seeds).", align=["l", "r", "r", "r", "r", "r", "l"])
    out = ctx.table(t, pd.DataFrame(frame), f.stem("ranks"))
    return out + ctx.figure(cd_plot, f.stem("critical_difference"),
                            f"Critical-difference diagrams{f.suffix}: representations by mean rank over subjects "
                            f"(1 = best); a bar joins those Nemenyi cannot tell apart at α = {ctx.opts.alpha:g}.",
                            results, names)
