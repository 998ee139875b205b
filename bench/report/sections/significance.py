"""Significance against the baseline: paired Wilcoxon over subjects, Holm within a setting."""

from __future__ import annotations

from ..context import ReportContext
from ..document import Block, Bullets, Heading, Para
from ..tables import significance_frame, significance_table


def _method(ctx: ReportContext) -> Para:
    o = ctx.opts
    return Para(
        f"Each representation is compared with the baseline `{o.baseline}` for the same model, paired "
        "by subject. Statistic: per-subject accuracy (mean over seeds) — with LOSO a subject contributes "
        "only a few samples, often not of every class, so per-subject UF1/UAR are degenerate while "
        "accuracy is defined for any number of samples. Test: two-sided Wilcoxon signed-rank test "
        "(scipy.stats.wilcoxon; zero differences discarded, the 'wilcox' convention). It assumes the "
        "subjects are independent and the paired differences are symmetric about their median; it does "
        "not assume normality. p-values are exact when the non-zero |differences| have no ties, exact "
        "by enumerating the sign flips when they tie, and from the normal approximation only for large "
        f"tied samples. Holm's step-down correction controls the family-wise error at {o.alpha:g} over "
        "all comparisons tested within a dataset. Effect sizes: the median per-subject difference "
        "(representation minus baseline) and the matched-pairs rank-biserial correlation r = (R+ − R−)"
        "/(R+ + R−) in [−1, 1]. A comparison with every difference zero, or fewer than "
        f"{o.min_pairs} subjects with a non-zero difference, is not tested and is reported as such"
        + (f" (with {o.min_pairs - 1} non-zero pairs the smallest possible exact two-sided p-value is "
           f"{2 / 2 ** (o.min_pairs - 1):.3g})" if o.min_pairs > 1 else "") + ".")


def build(ctx: ReportContext) -> list[Block]:
    out: list[Block] = [Heading("Significance against the baseline"), _method(ctx)]
    df, notes = significance_frame(ctx.run, ctx.opts)
    for s in ctx.settings:
        sub = df[df["dataset"] == s] if len(df) else df
        if not len(sub):
            continue
        if ctx.multi:
            out.append(Heading(s, 3))
        t = significance_table(sub, f"Representation vs {sub['baseline'].iloc[0]} (same model), paired "
                                    f"over subjects on per-subject accuracy{ctx.suffix(s)}. "
                                    "Differ: subjects with a non-zero difference.")
        out += ctx.table(t, sub, ctx.stem("significance", s))
    if notes:
        out.append(Bullets(notes))
    if not len(df) and not notes:
        out.append(Para("No comparison: the study has a single representation."))
    return out
