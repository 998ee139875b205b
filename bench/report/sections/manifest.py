"""The run manifest (``bench.results.manifest``), at the top of every report: the choices that change results
silently (class set and samples per source database, label source, apex rule, face crop, flow backend
or precomputed files with their normalisation, representation parameters, training recipe)."""

from __future__ import annotations

from ..context import ReportContext
from ..document import Block, Heading, Para, Table


def build(ctx: ReportContext) -> list[Block]:
    from bench.results.manifest import load_manifest, manifest_items

    m = load_manifest(ctx.run.run_dir)
    if m is None:
        return [Heading("Run manifest"), Para(
            "*This run directory has no `manifest.json` (written by runs of this version of the suite): "
            "class set, apex rule, crop and flow choices are not recorded; see the run facts below.*")]
    items = manifest_items(m)
    return [Heading("Run manifest"), Para(
        "What the data and the preprocessing were. Each of these choices changes results and papers "
        "rarely state them; two runs are comparable only when they agree here (`manifest.json`)."),
        Table(["Item", "Value"], [[k, v] for k, v in items], "Run manifest.", align=["l", "l"])]
