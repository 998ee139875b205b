"""report.html: the report as one self-contained page, opened with a double click.

One file, no server, no network: its style, its script and its data are inline, its figures are
inline SVG, and a Content-Security-Policy forbids loading anything else. It holds the answer (the
report's own opening blocks, so the same sentences and the same compact table as report.md), a
sortable, filterable table of every cell, the noise floor (a dot per seed; hover names the seed and
its UF1), the verdicts (the Markdown's verdict tables), and per cell a drill-down: its confusion
matrix, its per-subject scores paired with the baseline cell's, its learning curve and its recipe.

Why hand-rolled SVG and a small inline script rather than a plotting library: the page must open
offline from a file, so every byte of a library would be inlined into every report (plotly's bundle
is about 3.5 MB per file; altair / Vega-Lite needs its JS bundle, about 1 MB, inlined too), and the
figures here are dots, lines and squares. The whole page adds no dependency and weighs a few tens of
kilobytes for a typical study.

The numbers come from the same derived data as report.md (``data``): they agree by construction.
"""

from __future__ import annotations

from pathlib import Path

from ..context import ReportContext
from ..document import Block
from ..sections import significance
from . import data, page, svg

NAME = "report.html"


def write_html(ctx: ReportContext, blocks: list[Block]) -> Path:
    """Write ``report.html`` into the report's folder (``ctx.root``) and record it in ``ctx.written``."""
    path = ctx.root / NAME
    path.write_text(render(ctx, blocks), encoding="utf-8")
    ctx.written.append(path)
    return path


def render(ctx: ReportContext, blocks: list[Block]) -> str:
    recs = data.cells(ctx)
    seeds = data.seeds(ctx, recs)
    payload = {"study": ctx.run.study, "classes": list(map(str, ctx.run.classes)), "cells": [_public(c) for c in recs],
               "seeds": {str(k): v for k, v in seeds.items()},
               "drill": {str(k): v for k, v in data.drill(ctx, recs).items()}}
    body = "\n".join([
        '<nav><a href="#answer">Answer</a><a href="#all-cells">All cells</a><a href="#noise-floor">Noise floor</a>'
        '<a href="#verdicts">Verdicts</a><a href="#drill">Drill-down</a></nav>',
        '<section id="answer">' + page.blocks_html(page.answer_blocks(blocks)) + "</section>",
        _cells_section(recs), _noise_section(ctx, recs, seeds), _verdicts_section(ctx),
        '<section id="drill"><h2>Drill-down</h2><p id="drill-hint">Choose a cell in the table above '
        "(<em>open</em>) to see its confusion matrix, its per-subject scores against the baseline, its learning "
        'curve and its recipe.</p><div id="drill-body"></div></section>',
        '<div id="tip" role="tooltip" hidden></div>'])
    return page.page(f"Benchmark report: {ctx.run.study}", body, payload)


def _public(c: dict) -> dict:
    keep = ("id", "setting", "rep", "model", "rep_name", "model_name", "n_seeds", "baseline", "uf1_text", "uf1_ci",
            "uar_text", "uar_ci", "acc_text", "acc_ci", "verdict", "duf1_text", "probs")
    return {k: c[k] for k in keep if k in c}


def _cells_section(recs: list[dict]) -> str:
    return ('<section id="all-cells"><h2>All cells</h2><p>Pooled scores of every cell (mean ± sd over seeds; '
            "interval: the report's subject-and-seed bootstrap interval), with its verdict against the baseline "
            "(same model). Click a column heading to sort; choose an axis value to filter; <em>open</em> shows "
            "the cell's details.</p>" + page.filters(recs) + page.cells_table(recs) + "</section>")


def _noise_section(ctx: ReportContext, recs: list[dict], seeds: dict) -> str:
    out = ['<section id="noise-floor"><h2>Noise floor</h2><p>Each dot is one seed\'s pooled UF1 of a cell '
           "(hover: its seed and UF1), the bar the mean over seeds. Where two cells' dots overlap, reseeding alone "
           "can reorder them.</p>"]
    drawn = False
    for s in ctx.settings:
        fig = svg.noise_floor(recs, seeds, s)
        if fig:
            out.append((f"<h3>{page.inline(s)}</h3>" if ctx.multi else "") + f'<figure>{fig}</figure>')
            drawn = True
    if not drawn:
        out.append("<p><em>Each cell ran one seed: seed variance was not measured.</em></p>")
    return "".join(out) + "</section>"


def _verdicts_section(ctx: ReportContext) -> str:
    """The Markdown's verdict tables (``sections.significance``), one per setting, and each reason."""
    df, _, _ = ctx.derive(significance.comparisons)
    out = ['<section id="verdicts"><h2>Verdicts against the baseline</h2>']
    if not len(df):
        return out[0] + "<p>No comparison: the study has a single representation or no baseline.</p></section>"
    for s in ctx.settings:
        sub = df[df["dataset"] == s]
        if not len(sub):
            continue
        t = significance.verdict_table(ctx, sub, f"Representation vs the baseline (same model){ctx.suffix(s)}.")
        reasons = "".join(f"<li>{page.inline(ctx.model_name(r['model']))}: "
                          f"{page.inline(ctx.rep_name(r['representation']))} — <strong>{page.inline(r['verdict'])}"
                          f"</strong>: {page.inline(r['reason'])}.</li>" for _, r in sub.iterrows())
        out.append((f"<h3>{page.inline(s)}</h3>" if ctx.multi else "") + page.table_html(t, "block verdicts")
                   + f"<ul>{reasons}</ul>")
    return "".join(out) + "</section>"
