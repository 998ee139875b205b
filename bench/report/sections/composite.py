"""The MEGC2019 composite table, the way the field reads it, and the published anchors below it.

When a setting's predictions come from several source databases (the MEGC2019 composite: SMIC +
CASME II + SAMM), the report leads with one row per cell and the columns Full / SMIC / CASME II /
SAMM × UF1 / UAR. As MEGC2019 defines them, Full is scored on every prediction of the cell pooled
over all LOSO folds, and each database on its own predictions pooled the same way (never a mean of
per-fold or per-database scores). With several seeds each figure is the mean over seeds of the
per-seed pooled score. Below the table, separated from it, published results on the same protocol
(``bench/report/anchors/megc2019.yaml``: data, not prose) with their sources and whether their
protocol is leak-free: anchors to read the suite's figures against, not results of this run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from bench.evaluation.metrics import per_seed_scores
from bench.protocols.folds import MEGC2019_DATASETS

from ..context import Facet, PerSetting, ReportContext
from ..document import Block, Bullets, Heading, Para, Table
from ..names import DATASET

ANCHORS = Path(__file__).resolve().parents[1] / "anchors" / "megc2019.yaml"
DISPLAY = DATASET  # bench.report.names: SMIC, CASME II, SAMM
ORDER = MEGC2019_DATASETS  # the order MEGC2019 tables use
CELL = ["representation", "model"]


def composite_scores(preds: pd.DataFrame, n_classes: int) -> pd.DataFrame:
    """One row per cell (representation, model): ``n_seeds``, ``Full_uf1``, ``Full_uar`` and
    ``<source>_uf1`` / ``<source>_uar`` per source database, pooled over folds (MEGC2019), per seed,
    then averaged over seeds. Columns in the order Full, smic, casme2, samm, then any other source."""
    sources = sorted(preds["source_dataset"].astype(str).unique(),
                     key=lambda s: (ORDER.index(s) if s in ORDER else len(ORDER), s))
    rows = []
    for keys, cell in preds.groupby(CELL, sort=False):
        row = {**dict(zip(CELL, keys)), "n_seeds": int(cell["seed"].nunique())}
        for name, part in [("Full", cell), *((s, cell[cell["source_dataset"].astype(str) == s]) for s in sources)]:
            if len(part):  # a seed without clips of this source is not in its mean
                mean = per_seed_scores(part, n_classes, [])[["uf1", "uar", "n"]].mean()
                row.update({f"{name}_{m}": float(v) for m, v in mean.items()})
        rows.append(row)
    cols = [*CELL, "n_seeds"] + [f"{n}_{m}" for n in ("Full", *sources) for m in ("uf1", "uar", "n")]
    out = pd.DataFrame(rows)
    return out[[c for c in cols if c in out.columns]]


def load_anchors(path: Path = ANCHORS) -> list[dict]:
    """The published anchors (a list of mappings: method, uf1, uar, source, leak_free, note)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    anchors = data.get("anchors") or []
    for i, a in enumerate(anchors):
        missing = [k for k in ("method", "uf1", "source", "leak_free") if k not in a]
        if missing:
            raise ValueError(f"{path}: anchor {i} ({a.get('method', '?')}) lacks {missing}")
    return anchors


def _fmt(v) -> str:
    """A published figure with the digits its source gives (0.713 stays 0.713); — when absent."""
    return "—" if v is None or (isinstance(v, float) and v != v) else str(v)


def _anchor_blocks() -> list[Block]:
    try:
        anchors = load_anchors()
    except (OSError, ValueError, yaml.YAMLError) as e:
        return [Para(f"*Published anchors not shown: {e}.*")]
    rows = [[a["method"], _fmt(a.get("uf1")), _fmt(a.get("uar")), str(a["leak_free"]), a["source"],
             str(a.get("note") or "")] for a in anchors]
    return [Heading(ANCHORS_TITLE, 3), Para(
        "Published MEGC2019 composite results on the same protocol (LOSO over the 68 subjects, UF1/UAR "
        "pooled over all folds), to read the table above against. They were not computed by this run, "
        "on other flows and code, each with its author's own tuned recipe, while this run trains every "
        "model with the suite's unified settings. *Leak-free* says whether the source's protocol made no choice "
        "(epoch, threshold, hyper-parameter) on the test subject; this suite's figures always are. "
        f"Source file: `bench/report/anchors/{ANCHORS.name}`."),
        Table(["Method", "UF1", "UAR", "Leak-free", "Source", "Note"], rows,
              "Published anchors (MEGC2019 composite, 3 classes). — = not reported.",
              align=["l", "r", "r", "l", "l", "l"])]


ANCHORS_TITLE = "Published anchors (not run here): this run used unified settings, not each author's tuned recipe"
PER_SETTING = PerSetting(over="composite_settings")


def lead(ctx: ReportContext) -> list[Block]:
    if not ctx.composite_settings:
        return []
    return [Heading("MEGC2019 composite: Full / SMIC / CASME II / SAMM"), Para(
        "The field's table. Full: UF1 and UAR of all of a cell's predictions pooled over the "
        "leave-one-subject-out folds; each database: its own predictions pooled the same way "
        "(MEGC2019's definition, not a mean over folds or databases). The models were trained on the "
        "composite. Confidence intervals and tests are in the sections below.")]


def build_setting(ctx: ReportContext, f: Facet) -> list[Block]:
    df = composite_scores(f.predictions, ctx.run.n_classes)
    sources = [c[:-4] for c in df.columns if c.endswith("_uf1")]
    seeds = int(df["n_seeds"].max()) if len(df) else 1
    columns = ["Representation", "Model"] + [f"{DISPLAY.get(n, n)} {m}" for n in sources for m in ("UF1", "UAR")]
    rows, bold = [], set()
    for r in df.to_dict("records"):
        rows.append([ctx.rep_name(str(r["representation"])), ctx.model_name(str(r["model"]))]
                    + [f"{r[f'{n}_{m}']:.4f}" if pd.notna(r.get(f"{n}_{m}")) else "—"
                       for n in sources for m in ("uf1", "uar")])
    for j, (n, m) in enumerate((n, m) for n in sources for m in ("uf1", "uar")):
        col = df[f"{n}_{m}"].round(4)  # as shown: a tie for best is not marked
        if col.notna().any() and (col == col.max()).sum() == 1:
            bold.add((int(col.to_numpy().argmax()), 2 + j))
    n_txt = ", ".join(f"{DISPLAY.get(n, n)} {int(df[f'{n}_n'].max())}" for n in sources if f"{n}_n" in df)
    caption = (f"MEGC2019 composite{f.suffix}: UF1 / UAR pooled over all folds, per source database "
               f"({n_txt} predictions per cell)" + (f"; mean over {seeds} seeds" if seeds > 1 else "")
               + ". Bold: best per column (unmarked when tied).")
    t = Table(columns, rows, caption, bold=bold, align=["l", "l"] + ["r"] * (len(columns) - 2))
    return ctx.table(t, df, f.stem("composite")) + per_source_answers(ctx, f)


def per_source_answers(ctx: ReportContext, f: Facet) -> list[Block]:
    """The answer (one sentence per model, each representation's verdict against the baseline) for the
    composite pooled (Full) and for each source database on its own."""
    from .answer import family_sentences

    v = f.of(ctx.verdicts, "dataset")
    out: list[Block] = []
    for source in dict.fromkeys(["", *v["source"]]):
        part = v[v["source"] == source]
        sentences = family_sentences(ctx, part) + uncompared(ctx, f, part) if len(v) else []
        if sentences:
            out += [Para(f"**{DISPLAY.get(source, source) if source else 'Full'}**:"), Bullets(sentences)]
    if out:
        out.insert(0, Para("The answer per source database (the verdict rule of section \"Verdicts against the "
                           "baseline\", on that database's own predictions and subjects; Full: all of them pooled):"))
    return out


def uncompared(ctx: ReportContext, f: Facet, v) -> list[str]:
    """One sentence for each model of the setting that has no verdict: it has no baseline cell (or no
    other representation), so the answer says so instead of leaving the model out."""
    done = set(v["model"])
    base = ctx.rep_name(ctx.base or ctx.opts.baseline)
    out = []
    for model in [m for m in ctx.models if m in set(f.head["model"]) and m not in done]:
        reps = set(f.head.loc[f.head["model"] == model, "representation"])
        why = (f"it has no {base} cell (the baseline)" if (ctx.base or ctx.opts.baseline) not in reps
               else "it has no other representation" if len(reps) < 2 else "no verdict on these predictions")
        out.append(f"With {ctx.model_name(model)}, no comparison: {why}.")
    return out


def close(ctx: ReportContext, faceted: list[Block]) -> list[Block]:
    return _anchor_blocks()
