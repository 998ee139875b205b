"""The answer, first: what was compared on what data, one sentence per comparison family, one compact table.

A family is one model within one setting (dataset · flow): every representation against the baseline
for that model, each with its verdict (``bench.evaluation.verdicts``: better / practically equivalent /
worse / undecided, a posterior over ΔUF1 against a ROPE). The compact table has the representations as
rows and the models as columns, pooled UF1 with its interval; the best of each column is bold, every
cell practically equivalent to it is bold and marked ≈, every cell undecided against it marked ?.
"""

from __future__ import annotations

import pandas as pd

from bench.evaluation.verdicts import EQUIVALENT, FULL, SEEDS, SUBJECTS, UNDECIDED, compare, prob

from ..context import ReportContext
from ..document import Block, Bullets, Contents, Heading, Para, Table
from ..load import SETTING
from ..names import display, signed

TITLE = "The answer"
_P = {"better": "p_better", "worse": "p_worse", EQUIVALENT: "p_equivalent"}
SHOWN = {"best": "", "≈": " ≈", "?": " ?", "": ""}  # a compact-table cell's mark (``ties``) as printed


def build(ctx: ReportContext) -> list[Block]:
    out: list[Block] = [Heading(f"Benchmark report: {ctx.run.study}", 1), Heading(TITLE), Para(compared(ctx)),
                        Para(rule_words(ctx))]
    v = ctx.verdicts
    for s in ctx.settings:
        fam = family_sentences(ctx, v[(v["dataset"] == s) & (v["source"] == FULL)])
        if fam:
            out += ([Para(f"**{s}**:")] if ctx.multi else []) + [Bullets(fam)]
    if not len(v):
        out.append(Para("No comparison: " + ("the study has a single representation." if len(ctx.reps) < 2 else
                                             f"the baseline `{ctx.opts.baseline}` is not in this study.")))
    for s in ctx.settings:
        out += compact_table(ctx, s)
    return out + [Contents()]


# ---------------------------------------------------------------- what was compared, on what data


def compared(ctx: ReportContext) -> str:
    """What was compared, on what data, with how many seeds, in one paragraph."""
    reps = ", ".join(ctx.rep_name(r) for r in ctx.reps)
    models = ", ".join(ctx.model_name(m) for m in ctx.models)
    data = "; ".join(data_words(ctx, d) for d in ctx.datasets)
    return (f"This study compared {len(ctx.reps)} motion representation{'s' if len(ctx.reps) > 1 else ''} "
            f"({reps}) with {len(ctx.models)} model{'s' if len(ctx.models) > 1 else ''} ({models}) on {data}, "
            f"every cell scored on its predictions pooled over all leave-one-subject-out folds, "
            f"{seed_words(ctx)}.")


def data_words(ctx: ReportContext, label: str) -> str:
    """A dataset in words, from the manifest (else run.json, else the predictions): its name, the source
    databases of a composite, clips and subjects, and "synthetic" when its loader generates it."""
    facts = _dataset_facts(ctx, label)
    preds = ctx.run.predictions[ctx.run.predictions["dataset"] == label]
    sources = list(dict.fromkeys(preds["source_dataset"].astype(str)))
    n_clips = facts.get("n_samples") or _clips(preds)
    n_subj = facts.get("n_subjects") or preds["subject"].nunique()
    name = display(label, "dataset", facts.get("table"))
    size = f"{n_clips} clips, {n_subj} subjects"
    if len(sources) > 1:
        srcs = [display(x, "source") for x in sources]
        return f"the {name} of {', '.join(srcs[:-1])} and {srcs[-1]} ({size})"
    if _synthetic(facts.get("table") or label):
        return f"synthetic data (`{label}`: generated clips, not faces; {size})"
    return f"{name} ({size})"


def _dataset_facts(ctx: ReportContext, label: str) -> dict:
    from bench.results.manifest import load_manifest

    try:
        m = load_manifest(ctx.run.run_dir) or {}
    except Exception:  # noqa: BLE001 - a damaged manifest must not cost the answer
        m = {}
    d = (m.get("datasets") or {}).get(label) or ((ctx.run.facts.get("datasets") or {}).get(label)) or {}
    return d if isinstance(d, dict) else {}


def _clips(preds: pd.DataFrame) -> int:
    first = preds[["representation", "model", "seed"]].drop_duplicates().iloc[0]
    one = preds[(preds["representation"] == first["representation"]) & (preds["model"] == first["model"])
                & (preds["seed"] == first["seed"])]
    return len(one)


def _synthetic(name: str) -> bool:
    from bench.data import dataset_is_synthetic

    try:
        return dataset_is_synthetic(str(name))
    except Exception:  # noqa: BLE001 - an unknown loader (an old run's) is simply not known to be synthetic
        return False


def seed_words(ctx: ReportContext) -> str:
    n = ctx.run.predictions.groupby([SETTING, "representation", "model"])["seed"].nunique()
    lo, hi = int(n.min()), int(n.max())
    auto = (" (study.seeds=auto: more seeds only where a comparison was undecided)"
            if isinstance(ctx.run.facts.get("seeds_auto"), dict) else "")
    if lo == hi:
        return f"{lo} seed{'s' if lo > 1 else ''} per cell{auto}"
    return f"{lo} to {hi} seeds per cell{auto}"


def rule_words(ctx: ReportContext) -> str:
    o = ctx.opts
    return (f"Each representation is compared with {ctx.rep_name(ctx.base or o.baseline)} for the same model. "
            f"ΔUF1: the difference of pooled UF1, mean over seeds, with its {o.ci_level:.0%} interval; a verdict "
            f"is decided at P ≥ {o.decide_at:g} with a region of practical equivalence of ±{o.rope:g} UF1 "
            f"({o.rule().words()}; section \"Verdicts against the baseline\").")


# ---------------------------------------------------------------- one sentence per family


def family_sentences(ctx: ReportContext, v: pd.DataFrame) -> list[str]:
    """One sentence per model: each representation's verdict against the baseline."""
    out = []
    for model, fam in v.groupby("model", sort=False):
        base = ctx.rep_name(fam["baseline"].iloc[0])
        parts = [clause(ctx, r, base if i == 0 else "it") for i, (_, r) in enumerate(fam.iterrows())]
        out.append(f"With {ctx.model_name(model)}, " + "; ".join(parts) + ".")
    return out


def clause(ctx: ReportContext, r: pd.Series, base: str) -> str:
    """``COF is practically equivalent to single-phase flow (ΔUF1 +0.006 [−0.011, 0.024], P(equivalent) 0.97)``."""
    rep, verdict = ctx.rep_name(r["representation"]), r["verdict"]
    delta = f"ΔUF1 {signed(r['duf1'])} [{signed(r['duf1_lo']).lstrip('+')}, {signed(r['duf1_hi']).lstrip('+')}]"
    if verdict == UNDECIDED:
        return f"{rep} is undecided against {base} ({delta}; {needs_words(r)})"
    word = {"better": "better than", "worse": "worse than", EQUIVALENT: "practically equivalent to"}[verdict]
    p = f"P({'equivalent' if verdict == EQUIVALENT else verdict}) {prob(r[_P[verdict]])}"
    one = ", one seed" if r["n_seeds"] == 1 else ""
    return f"{rep} is {word} {base} ({delta}, {p}{one})"


def needs_words(r: pd.Series) -> str:
    """What would decide an undecided comparison, in a few words."""
    if r["needs"] == SUBJECTS:
        return "it would take more subjects than the data have"
    if r["needs"] == SEEDS and pd.notna(r.get("seeds_wanted")) and r.get("seeds_wanted"):
        return f"about {int(r['seeds_wanted'])} seeds would decide it"
    if r["needs"] == SEEDS and r["n_seeds"] == 1:
        return "one seed: more seeds would decide it"
    return "more seeds than the cap would decide it" if r["needs"] == SEEDS else "undecided"


# ---------------------------------------------------------------- the compact table


def compact_table(ctx: ReportContext, setting: str) -> list[Block]:
    """Representations × models, pooled UF1 with its interval; the best per column and its ties marked."""
    head = ctx.heads[setting]
    if not len(head):
        return []
    reps = [r for r in ctx.reps if r in set(head["representation"])]
    models = [m for m in ctx.models if m in set(head["model"])]
    marks = ctx.derive(ties).get(setting, {})
    cells = head.set_index(["representation", "model"])
    rows, bold = [], set()
    for i, rep in enumerate(reps):
        row = [ctx.rep_name(rep)]
        for j, m in enumerate(models):
            if (rep, m) not in cells.index:
                row.append("—")
                continue
            c, mark = cells.loc[(rep, m)], marks.get((rep, m), "")
            row.append(f"{c['uf1']:.3f} [{c['uf1_ci_lo']:.3f}, {c['uf1_ci_hi']:.3f}]" + SHOWN[mark])
            if mark in ("best", "≈"):
                bold.add((i, j + 1))
        rows.append(row)
    o = ctx.opts
    caption = (f"Pooled UF1{ctx.suffix(setting)} (mean over seeds) [{o.ci_level:.0%} subject-and-seed bootstrap "
               f"interval]. Bold: the best of its column, and every cell practically equivalent to it "
               f"(marked ≈: P(|ΔUF1| ≤ {o.rope:g}) ≥ {o.decide_at:g} against the best); ?: undecided against the "
               "best; unmarked: worse than the best.")
    t = Table(["Representation", *[ctx.model_name(m) for m in models]], rows, caption, bold,
              ["l"] + ["r"] * len(models))
    frame = head[["representation", "model", "n_seeds", "uf1", "uf1_ci_lo", "uf1_ci_hi"]].assign(
        vs_best=[marks.get((r, m), "") for r, m in zip(head["representation"], head["model"])])
    return ctx.table(t, frame, ctx.stem("uf1", setting), fit_column=True)


def ties(ctx: ReportContext) -> dict[str, dict[tuple[str, str], str]]:
    """Per setting, (representation, model) -> "best", "≈" (practically equivalent to the column's best),
    "?" (undecided against it) or "" (worse)."""
    preds, rule, out = ctx.run.predictions, ctx.opts.rule(), {}
    for s in ctx.settings:
        head, marks = ctx.heads[s], {}
        for m, col in head.groupby("model", sort=False):
            best = col.loc[col["uf1"].idxmax(), "representation"]
            cell = preds[(preds[SETTING] == s) & (preds["model"] == m)]
            marks[(best, m)] = "best"
            for rep in col["representation"]:
                if rep != best:
                    c = compare(cell[cell["representation"] == rep], cell[cell["representation"] == best],
                                ctx.run.n_classes, rule)
                    marks[(rep, m)] = {EQUIVALENT: "≈", UNDECIDED: "?"}.get(c.verdict, "") if c else "?"
        out[s] = marks
    return out
