"""Significance against the baseline, with seeds as a source of variance.

Per comparison (same model, representation vs the baseline representation, within one setting): the
Wilcoxon test on seed-averaged per-subject accuracy with Holm (``tables.significance_frame``), how
many seeds agree on the sign of the pooled-UF1 difference, an exact McNemar test per seed on the same
clips with Holm, and a verdict (``stats.VERDICT_RULE``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stats
from ..context import Facet, PerSetting, ReportContext
from ..document import Block, Bullets, Heading, Para, Table
from ..load import SETTING
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
        "minus baseline); the table counts the seeds where it is higher and lower and gives its mean ± sd over seeds. "
        "**McNemar (clips, per seed).** For each seed, the two cells' pooled predictions are paired on the "
        "same clips: b = clips the baseline gets right and the representation wrong, c = the reverse. Exact "
        "two-sided test: p = binomial(b; b + c, ½) (scipy.stats.binomtest); p = 1 when b + c = 0. Holm's "
        f"correction at {o.alpha:g} over all per-seed McNemar tests within a dataset · flow setting (every "
        "comparison × every seed; a seed with no discordant clip has no power and stays out of the family). "
        "**Verdict** (one sentence per comparison below): " + stats.VERDICT_RULE.format(alpha=o.alpha))


def comparisons(ctx: ReportContext) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The Wilcoxon frame with the seed columns and verdicts added, the per-seed McNemar frame, notes."""
    o = ctx.opts
    df, notes = significance_frame(ctx.run, o)
    preds, sc = ctx.run.predictions, ctx.seed_scores
    has_clip = "clip" in preds.columns and preds["clip"].notna().all()
    if not has_clip and len(df):
        notes.append("the predictions table has no clip column, so the per-seed McNemar tests (paired on clips) "
                     "are not computed")
    mc_rows, extra = [], []
    for s in ctx.settings:
        family, recs = [], []
        for i in df.index[df["dataset"] == s] if len(df) else []:
            r = df.loc[i]
            cell = preds[(preds[SETTING] == s) & (preds["model"] == r["model"])]
            b, x = cell[cell["representation"] == r["baseline"]], cell[cell["representation"] == r["representation"]]
            seeds = sorted(set(b["seed"]) & set(x["seed"]))
            sub = sc[(sc[SETTING] == s) & (sc["model"] == r["model"])]
            u = {rep: sub[sub["representation"] == rep].set_index("seed")["uf1"]
                 for rep in (r["baseline"], r["representation"])}
            diffs = np.array([u[r["representation"]][k] - u[r["baseline"]][k] for k in seeds])
            tests = [stats.mcnemar_of_seed(b[b["seed"] == k], x[x["seed"] == k], k) for k in seeds] if has_clip else []
            family += tests
            recs.append((i, seeds, diffs, tests))
        stats.apply_holm_mcnemar(family)
        for i, seeds, diffs, tests in recs:
            r = df.loc[i]
            hi, lo, eq = stats.sign_counts(diffs)
            label, why = stats.verdict(diffs, r["status"], None if pd.isna(r["p_holm"]) else float(r["p_holm"]),
                                       None if pd.isna(r["rank_biserial"]) else float(r["rank_biserial"]),
                                       o.alpha, "" if r["status"] == "tested" else r["result"])
            extra.append(dict(
                _i=i, n_seeds=len(seeds), seeds=";".join(map(str, seeds)),
                duf1_mean=float(diffs.mean()) if len(diffs) else np.nan,
                duf1_std=float(diffs.std(ddof=1)) if len(diffs) > 1 else np.nan,
                seeds_higher=hi, seeds_lower=lo, seeds_equal=eq,
                mcnemar_n_sig=sum(t.p_holm < o.alpha for t in tests) if tests else np.nan,
                mcnemar_n=len(tests), verdict=label, verdict_reason=why))
            for t, d in zip(tests, diffs):
                mc_rows.append(dict(dataset=s, model=r["model"], representation=r["representation"],
                                    baseline=r["baseline"], seed=t.seed, n_clips=t.n_clips, duf1=float(d),
                                    b=t.b, c=t.c, p=t.p, p_holm=t.p_holm))
    if extra:
        df = df.join(pd.DataFrame(extra).set_index("_i"))
    mc = pd.DataFrame(mc_rows, columns=["dataset", "model", "representation", "baseline", "seed", "n_clips",
                                        "duf1", "b", "c", "p", "p_holm"])
    return df, mc, notes


def verdict_table(df: pd.DataFrame, alpha: float, caption: str) -> Table:
    rows = []
    for _, r in df.iterrows():
        d = f"{r['duf1_mean']:+.3f}" if pd.notna(r["duf1_mean"]) else "no common seed"
        if r["n_seeds"] > 1:
            d += f" ± {r['duf1_std']:.3f}"
        signs = f"{r['seeds_higher']} / {r['seeds_lower']}" + (f" ({r['seeds_equal']} equal)" if r["seeds_equal"] else "")
        mcn = f"{int(r['mcnemar_n_sig'])} of {r['mcnemar_n']}" if r["mcnemar_n"] else "—"
        rows.append([r["model"], r["representation"], str(r["n_seeds"]), d, signs,
                     fmt_p(r["p_holm"]) if r["status"] == "tested" else "not tested", mcn, r["verdict"]])
    return Table(["Model", "Representation", "Seeds", "ΔUF1 (mean ± sd)", "Seeds +/-",
                  "Wilcoxon p (Holm)", "McNemar sig.", "Verdict"], rows,
                 caption + f" Seeds +/-: seeds with a higher / lower pooled UF1 than the baseline. McNemar sig.: "
                           f"seeds whose McNemar test has Holm p < {alpha:g}.",
                 align=["l", "l", "r", "r", "r", "r", "r", "l"])


def mcnemar_table(mc: pd.DataFrame, caption: str) -> Table:
    rows = [[r["model"], r["representation"], str(r["seed"]), str(r["n_clips"]), f"{r['duf1']:+.3f}",
             str(r["b"]), str(r["c"]), fmt_p(r["p"]), fmt_p(r["p_holm"])] for _, r in mc.iterrows()]
    return Table(["Model", "Representation", "Seed", "Clips", "ΔUF1", "b", "c", "p", "p (Holm)"], rows, caption,
                 align=["l", "l", "r", "r", "r", "r", "r", "r", "r"])


PER_SETTING = PerSetting(headings=True)


def lead(ctx: ReportContext) -> list[Block]:
    return [Heading("Significance against the baseline"), _wilcoxon_method(ctx), _seed_method(ctx)]


def build_setting(ctx: ReportContext, f: Facet) -> list[Block]:
    df, mc, _ = ctx.derive(comparisons)
    sub = f.of(df, "dataset") if len(df) else df
    if not len(sub):
        return []
    base, out = sub["baseline"].iloc[0], []
    if sub["n_seeds"].max() < 2:
        out.append(Para("Each comparison ran with one seed: **seed variance was not measured**, so no "
                        "comparison gets a verdict; a difference below may be seed noise."))
    t = verdict_table(sub, ctx.opts.alpha, f"Representation vs {base} (same model){f.suffix}: pooled-UF1 "
                                           "difference over seeds, sign agreement, the Wilcoxon test over subjects "
                                           "and the per-seed McNemar tests, and the verdict.")
    out += ctx.table(t, sub[["dataset", "model", "representation", "baseline", "n_seeds", "seeds", "duf1_mean",
                             "duf1_std", "seeds_higher", "seeds_lower", "seeds_equal", "p_holm", "mcnemar_n",
                             "mcnemar_n_sig", "verdict", "verdict_reason"]], f.stem("verdicts"))
    out.append(Bullets([f"{r['model']}: {r['representation']} vs {base} — **{r['verdict']}**: "
                        f"{r['verdict_reason']}." for _, r in sub.iterrows()]))
    t = significance_table(sub, f"Wilcoxon: representation vs {base} (same model), paired over subjects on "
                                f"per-subject accuracy (mean over seeds){f.suffix}. Differ: subjects with a "
                                "non-zero difference. Result: this test alone.")
    out += ctx.table(t, sub, f.stem("significance"))
    m = f.of(mc, "dataset")
    if len(m):
        t = mcnemar_table(m, f"Exact McNemar per seed{f.suffix}: b = {base} right and the representation "
                             "wrong, c = the reverse, on the clips both predicted; Holm over this table.")
        out += ctx.table(t, m, f.stem("mcnemar"))
    return out


def close(ctx: ReportContext, faceted: list[Block]) -> list[Block]:
    df, _, notes = ctx.derive(comparisons)
    if notes:
        return [Bullets(notes)]
    return [] if len(df) else [Para("No comparison: the study has a single representation.")]
