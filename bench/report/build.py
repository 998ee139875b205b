"""Assemble the report: load the run, run every section in order, write Markdown and PDF."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from . import markdown as md
from . import pdf as pdfmod
from . import sections
from .context import ReportContext
from .document import Block
from .load import ReportInputError, load_run
from .tables import ReportOptions
from .words import value

log = logging.getLogger(__name__)


def make_report(run_dir: str | Path, out_dir: str | Path | None = None,
                options: ReportOptions | dict | None = None) -> Path:
    """Write ``report.md``, ``report.pdf``, ``figures/*.png`` and ``tables/*.{csv,tex}``.

    ``out_dir`` defaults to ``reports/<study>`` (relative to the working directory). ``options`` is a
    ``ReportOptions`` or a mapping of its fields (the ``report`` config group). Returns the report
    directory.
    """
    t0 = time.perf_counter()
    opts = options if isinstance(options, ReportOptions) else ReportOptions.from_mapping(options)
    run = load_run(run_dir)
    if not len(run.predictions):
        raise ReportInputError(f"{run.run_dir}: predictions table has no rows; nothing to report")
    out = Path(out_dir) if out_dir is not None else Path("reports") / run.study
    out.mkdir(parents=True, exist_ok=True)
    ctx = ReportContext(run, out, opts)
    blocks: list[Block] = [b for section in sections.SECTIONS for b in section.build(ctx)]

    (out / "report.md").write_text(md.render(blocks))
    ctx.written.append(out / "report.md")
    if opts.pdf:
        f = run.facts
        subtitle = [f"Study: {run.study}", f"Dataset: {', '.join(ctx.datasets)}",
                    f"Representations: {', '.join(ctx.reps)}", f"Models: {', '.join(ctx.models)}",
                    f"Git commit: {value(f.get('git_commit'))}",
                    f"Run finished: {value(f.get('finished'))}"]
        n = pdfmod.render(blocks, out / "report.pdf", out, title=f"Benchmark report: {run.study}",
                          subtitle=subtitle, footer=f"dualflow-bench · {run.study}", dpi=opts.dpi)
        ctx.written.append(out / "report.pdf")
        log.info("report.pdf: %d pages", n)
    _remove_stale(out, ctx.written)
    log.info("report for %s written to %s in %.1f s", run.study, out, time.perf_counter() - t0)
    return out


def _remove_stale(out: Path, written: list[Path]) -> None:
    """Delete figures/tables a previous report wrote that this one did not (they would mislead)."""
    keep = {p.resolve() for p in written}
    for sub, exts in (("figures", (".png",)), ("tables", (".csv", ".tex"))):
        d = out / sub
        if d.is_dir():
            for p in d.iterdir():
                if p.suffix in exts and p.resolve() not in keep:
                    p.unlink()
