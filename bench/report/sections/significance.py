"""Verdicts against the baseline, with the classical tests as secondary columns.

Per comparison (same model, representation vs the baseline representation, within one setting): the
verdict of ``bench.evaluation.verdicts`` (better / practically equivalent / worse / undecided, posterior
over ΔUF1 against a ROPE), then the Wilcoxon test on seed-averaged per-subject accuracy with Holm
(``tables.significance_frame``), how many seeds agree on the sign of the pooled-UF1 difference, and an
exact McNemar test per seed on the same clips with Holm. Those tests never decide the verdict.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.evaluation.verdicts import FULL, prob

from .. import stats
from ..context import Facet, PerSetting, ReportContext
from ..document import Block, Bullets, Heading, Para, Table
from ..load import SETTING
from ..names import signed
from ..tables import fmt_p, significance_frame, significance_table


def _wilcoxon_method(ctx: ReportContext) -> Para:
    o = ctx.opts
    return Para(
        f"Each representation is compared with the baseline `{o.baseline}` for the same model. "
        "**Wilcoxon (subjects).** Statistic: per-subject accuracy, averaged over seeds — with LOSO a subject "
        "contributes only a few samples, often not of every class, so per-subject UF1/UAR are degenerate while "
        "accuracy is defined for any number of samples. Test: two-sided Wilcoxon signed-rank test "
        "(scipy.stats.wilcoxon; zero differences discarded, the 'wilcox' convention). It assumes the "
        "subjects are independent and the paired differences are symmetric about their median; it does "
        "not assume normality. p-values are exact when the non-zero |differences| have no ties, exact "
        "by enumerating the sign flips when they tie, and from the normal approximation only for large "
        f"tied samples. Holm's step-down correction controls the family-wise error at {o.alpha:g} over "
        "all Wilcoxon comparisons tested within a dataset (one family per dataset · flow setting). Effect sizes: the median per-subject difference "
        "(representation minus baseline) and the matched-pairs rank-biserial correlation r = (R+ − R−)"
        "/(R+ + R−) in [−1, 1]. A comparison with every difference zero, or fewer than "
        f"{o.min_pairs} subjects with a non-zero difference, is not tested and is reported as such"
        + (f" (with {o.min_pairs - 1} non-zero pairs the smallest possible exact two-sided p-value is "
           f"{2 / 2 ** (o.min_pairs - 1):.3g})" if o.min_pairs > 1 else "") + ".")


def _seed_method(ctx: ReportContext) -> Para:
    o = ctx.opts
    return Para(
        "**Seeds.** For every seed that both cells ran, the difference of their pooled UF1 (representation "
        "minus baseline); the table counts the seeds where it is higher and lower. "
        "**McNemar (clips, per seed).** For each seed, the two cells' pooled predictions are paired on the "
        "same clips: b = clips the baseline gets right and the representation wrong, c = the reverse. Exact "
        "two-sided test: p = binomial(b; b + c, ½) (scipy.stats.binomtest); p = 1 when b + c = 0. Holm's "
        f"correction at {o.alpha:g} over all per-seed McNemar tests within a dataset · flow setting (every "
        "comparison × every seed; a seed with no discordant clip has no power and stays out of the family). "
        "These tests are secondary: they do not decide the verdict. A test that does not reject is not "
        "evidence of no difference (only the ROPE can say \"equivalent\"), and McNemar treats every clip as "
        "independent while the clips of one subject share a face and a test fold, so under LOSO its p-values "
        "are optimistic.")


def rule_method(ctx: ReportContext) -> Para:
    """The verdict rule in words (bench.evaluation.verdicts), as the report states it."""
    o = ctx.opts
    return Para(
        f"**Verdict.** ΔUF1 is the representation's pooled UF1 minus the baseline's (`{o.baseline}`) for the "
        "same model, averaged over the seeds both ran. Its posterior is the Bayesian bootstrap over subjects "
        f"and seeds ({o.n_boot} draws, seed {o.seed}): each draw weighs the subjects, and independently the "
        "seeds, with Dirichlet(1, …, 1) weights, pools each seed's weighted predictions of both cells, and "
        "averages their UF1 difference over the weighted seeds; both cells get the same weights (paired). "
        f"Region of practical equivalence (ROPE): |ΔUF1| ≤ {o.rope:g}. Rule: {o.rule().words()}. An undecided "
        "comparison says what would decide it: more seeds (when the seed part of the posterior's variance is "
        "what keeps it undecided, or seed variance was not measured), or more subjects than the data have "
        f"(when the subject part alone does). Interval: {o.ci_level:.0%} of the posterior. A comparison with "
        "one seed can still be decided, by the subject bootstrap alone; it says so.")


def comparisons(ctx: ReportContext) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The verdicts (every source pooled) with the secondary columns (Wilcoxon, seeds, McNemar) joined,
    the per-seed McNemar frame, and notes about comparisons that could not be made."""
    df, notes = significance_frame(ctx.run, ctx.opts)
    preds = ctx.run.predictions
    has_clip = "clip" in preds.columns and preds["clip"].notna().all()
    if not has_clip and len(df):
        notes.append("the predictions table has no clip column, so the per-seed McNemar tests (paired on clips) "
                     "are not computed")
    mc_rows, extra = [], []
    for s in ctx.settings:
        family, recs = [], []
        for i in df.index[df["dataset"] == s] if len(df) else []:
            diffs, tests = _seed_tests(ctx, df.loc[i], has_clip)
            family += tests
            recs.append((i, diffs, tests))
        stats.apply_holm_mcnemar(family)
        for i, diffs, tests in recs:
            extra.append(_secondary(i, diffs, tests, ctx.opts.alpha))
            r = df.loc[i]
            mc_rows += [dict(dataset=s, model=r["model"], representation=r["representation"], baseline=r["baseline"],
                             seed=t.seed, n_clips=t.n_clips, duf1=float(d), b=t.b, c=t.c, p=t.p, p_holm=t.p_holm)
                        for t, d in zip(tests, diffs)]
    if extra:
        df = df.join(pd.DataFrame(extra).set_index("_i"))
    v = ctx.verdicts
    v = v[v["source"] == FULL].drop(columns=["source", "baseline"])
    df = v.merge(df, on=["dataset", "model", "representation"], how="left", suffixes=("", "_wilcoxon")) \
        if len(df) else v.assign(status="no_pairs", p_holm=np.nan, seeds_higher=0, seeds_lower=0, seeds_equal=0,
                                 mcnemar_n=0, mcnemar_n_sig=np.nan, baseline=ctx.base)
    mc = pd.DataFrame(mc_rows, columns=["dataset", "model", "representation", "baseline", "seed", "n_clips",
                                        "duf1", "b", "c", "p", "p_holm"])
    return df, mc, notes


def _seed_tests(ctx: ReportContext, r: pd.Series, has_clip: bool) -> tuple[np.ndarray, list]:
    """Each common seed's pooled-UF1 difference and its McNemar test, for one comparison."""
    preds, sc = ctx.run.predictions, ctx.seed_scores
    cell = preds[(preds[SETTING] == r["dataset"]) & (preds["model"] == r["model"])]
    b, x = cell[cell["representation"] == r["baseline"]], cell[cell["representation"] == r["representation"]]
    seeds = sorted(set(b["seed"]) & set(x["seed"]))
    sub = sc[(sc[SETTING] == r["dataset"]) & (sc["model"] == r["model"])]
    u = {rep: sub[sub["representation"] == rep].set_index("seed")["uf1"] for rep in (r["baseline"], r["representation"])}
    diffs = np.array([u[r["representation"]][k] - u[r["baseline"]][k] for k in seeds])
    tests = [stats.mcnemar_of_seed(b[b["seed"] == k], x[x["seed"] == k], k) for k in seeds] if has_clip else []
    return diffs, tests


def _secondary(i, diffs: np.ndarray, tests: list, alpha: float) -> dict:
    hi, lo, eq = stats.sign_counts(diffs)
    return dict(_i=i, duf1_std=float(diffs.std(ddof=1)) if len(diffs) > 1 else np.nan,
                seeds_higher=hi, seeds_lower=lo, seeds_equal=eq,
                mcnemar_n_sig=sum(t.p_holm < alpha for t in tests) if tests else np.nan, mcnemar_n=len(tests))


def interval(lo: float, hi: float) -> str:
    """``[−0.011, 0.024]`` with true minus signs."""
    return f"[{fmt_signed(lo)}, {fmt_signed(hi)}]"


def fmt_signed(x: float) -> str:
    return signed(x).lstrip("+")


def verdict_table(ctx: ReportContext, df: pd.DataFrame, caption: str) -> Table:
    rows = []
    for _, r in df.iterrows():
        signs = f"{r['seeds_higher']} / {r['seeds_lower']}" + (f" ({r['seeds_equal']} equal)" if r["seeds_equal"] else "")
        mcn = f"{int(r['mcnemar_n_sig'])} of {r['mcnemar_n']}" if r["mcnemar_n"] else "—"
        probs = " / ".join(prob(r[c]) for c in ("p_better", "p_equivalent", "p_worse"))
        rows.append([ctx.model_name(r["model"]), ctx.rep_name(r["representation"]), str(r["n_seeds"]),
                     f"{signed(r['duf1'])} {interval(r['duf1_lo'], r['duf1_hi'])}", probs, r["verdict"], signs,
                     fmt_p(r["p_holm"]) if r["status"] == "tested" else "not tested", mcn])
    return Table(["Model", "Representation", "Seeds", "ΔUF1 [interval]", "P(better / equiv. / worse)", "Verdict",
                  "Seeds +/−", "Wilcoxon p (Holm)", "McNemar sig."], rows,
                 caption + " Secondary columns (they do not decide the verdict): Seeds +/−: seeds with a higher / "
                           "lower pooled UF1 than the baseline; Wilcoxon p (Holm) over subjects; McNemar sig.: "
                           f"seeds whose McNemar test has Holm p < {ctx.opts.alpha:g}.",
                 align=["l", "l", "r", "r", "r", "l", "r", "r", "r"])


def mcnemar_table(ctx: ReportContext, mc: pd.DataFrame, caption: str) -> Table:
    rows = [[ctx.model_name(r["model"]), ctx.rep_name(r["representation"]), str(r["seed"]), str(r["n_clips"]),
             signed(r["duf1"]), str(r["b"]), str(r["c"]), fmt_p(r["p"]), fmt_p(r["p_holm"])] for _, r in mc.iterrows()]
    return Table(["Model", "Representation", "Seed", "Clips", "ΔUF1", "b", "c", "p", "p (Holm)"], rows, caption,
                 align=["l", "l", "r", "r", "r", "r", "r", "r", "r"])


PER_SETTING = PerSetting(headings=True)
TITLE = "Verdicts against the baseline"
VERDICT_COLUMNS = ["dataset", "model", "representation", "baseline", "verdict", "duf1", "duf1_lo", "duf1_hi",
                   "p_better", "p_equivalent", "p_worse", "n_seeds", "seeds", "n_subjects", "needs", "seeds_wanted",
                   "reason", "duf1_std", "seeds_higher", "seeds_lower", "seeds_equal", "p_holm", "mcnemar_n",
                   "mcnemar_n_sig"]


def lead(ctx: ReportContext) -> list[Block]:
    return [Heading(TITLE), rule_method(ctx), *seeds_auto_blocks(ctx), _wilcoxon_method(ctx), _seed_method(ctx)]


def seeds_auto_blocks(ctx: ReportContext) -> list[Block]:
    """With ``study.seeds=auto`` (run.json's ``seeds_auto``, ``bench.runner.seeds``): how many seeds each
    cell got and why (the rounds that added them, for the comparisons still undecided then)."""
    auto = ctx.run.facts.get("seeds_auto")
    if not isinstance(auto, dict) or not isinstance(auto.get("seeds"), dict):
        return []
    added: dict[str, list[str]] = {}
    for rnd in auto.get("rounds") or []:
        for cell, seed in (rnd.get("added") or {}).items():
            added.setdefault(cell, []).append(f"seed {seed} in round {rnd.get('round')}")
    rows = [[cell, str(n), "; ".join(added.get(cell, [])) or "—"] for cell, n in auto["seeds"].items()]
    text = (f"**Seeds until decided** (`study.seeds=auto`): every cell started with {auto.get('start')} seeds; "
            "after each round, both cells of every comparison still undecided that more seeds could decide "
            f"got one more seed, up to max_seeds={auto.get('max_seeds')}. Stopped: {auto.get('stopped', '—')}.")
    return [Para(text), Table(["Cell", "Seeds", "Added (for an undecided comparison)"], rows,
                              "Seeds per cell under study.seeds=auto.", align=["l", "r", "l"])]


def build_setting(ctx: ReportContext, f: Facet) -> list[Block]:
    df, mc, _ = ctx.derive(comparisons)
    sub = f.of(df, "dataset") if len(df) else df
    if not len(sub):
        return []
    base = ctx.rep_name(sub["baseline"].dropna().iloc[0]) if sub["baseline"].notna().any() else ctx.opts.baseline
    t = verdict_table(ctx, sub, f"Representation vs {base} (same model){f.suffix}: ΔUF1 (mean over seeds) with its "
                                f"{ctx.opts.ci_level:.0%} posterior interval, the posterior probabilities against "
                                f"the ROPE ±{ctx.opts.rope:g} and the verdict.")
    out = ctx.table(t, sub[[c for c in VERDICT_COLUMNS if c in sub.columns]], f.stem("verdicts"))
    out.append(Bullets([f"{ctx.model_name(r['model'])}: {ctx.rep_name(r['representation'])} vs {base} — "
                        f"**{r['verdict']}**: {r['reason']}." for _, r in sub.iterrows()]))
    wil = sub[sub["status"].notna() & (sub["status"] != "no_pairs")] if "status" in sub else sub.iloc[:0]
    if len(wil):
        wil = wil.assign(n_subjects=wil["n_subjects_wilcoxon"]).drop(columns="n_subjects_wilcoxon")
        t = significance_table(wil.assign(model=wil["model"].map(ctx.model_name),
                                          representation=wil["representation"].map(ctx.rep_name)),
                               f"Wilcoxon: representation vs {base} (same model), paired over subjects on "
                               f"per-subject accuracy (mean over seeds){f.suffix}. Differ: subjects with a non-zero "
                               "difference. Result: this test alone (not rejecting is not equivalence).")
        out += ctx.table(t, wil[[c for c in wil.columns if c not in ("p_better", "p_equivalent", "p_worse")]],
                         f.stem("significance"))
    m = f.of(mc, "dataset")
    if len(m):
        t = mcnemar_table(ctx, m, f"Exact McNemar per seed{f.suffix}: b = {base} right and the representation "
                                  "wrong, c = the reverse, on the clips both predicted; Holm over this table.")
        out += ctx.table(t, m, f.stem("mcnemar"))
    return out


def close(ctx: ReportContext, faceted: list[Block]) -> list[Block]:
    df, _, notes = ctx.derive(comparisons)
    if notes:
        return [Bullets(notes)]
    return [] if len(df) else [Para("No comparison: the study has a single representation.")]
