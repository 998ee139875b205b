"""Assemble the report: load the run, run every section in order, write Markdown and PDF."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from bench.runtime import rundir

from . import markdown as md
from . import pdf as pdfmod
from . import sections
from .context import Facet, PerSetting, ReportContext
from .document import Block, Heading
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

    ``out_dir`` must be a report folder of the suite (its ``.dualflow-report`` marker), new or empty;
    any other non-empty folder is refused with a ``ConfigError`` (``bench.runtime.rundir``). Only files a
    report of the suite wrote there (the marker's list) are ever replaced or removed.
    """
    t0 = time.perf_counter()
    opts = options if isinstance(options, ReportOptions) else ReportOptions.from_mapping(options)
    run = load_run(run_dir)
    if not len(run.predictions):
        raise ReportInputError(f"{run.run_dir}: predictions table has no rows; nothing to report")
    out = Path(out_dir) if out_dir is not None else Path("reports") / run.study
    rundir.check_report_dir(out)  # a folder of the suite's own (or new, or empty), before writing anything
    out.mkdir(parents=True, exist_ok=True)
    with rundir.locked(out, purpose="write a report into", command=f"report of {run.run_dir}"):
        previous = rundir.claim_report_dir(out)  # checked again under the lock; the last report's files
        ctx = ReportContext(run, out, opts)
        ctx.written = _Recorded(out, previous)
        blocks: list[Block] = [b for section in sections.SECTIONS for b in build_section(section, ctx)]

        (out / "report.md").write_text(md.render(blocks))
        ctx.written.append(out / "report.md")
        if opts.pdf:
            n = pdfmod.render(blocks, out / "report.pdf", out, title=f"Benchmark report: {run.study}",
                              items=title_items(run, ctx), footer=f"dualflow-bench · {run.study}")
            ctx.written.append(out / "report.pdf")
            log.info("report.pdf: %d pages", n)
        _remove_stale(out, ctx.written, previous)
    log.info("report for %s written to %s in %.1f s", run.study, out, time.perf_counter() - t0)
    return out


def build_section(section, ctx: ReportContext) -> list[Block]:
    """One section's blocks (``[]``: the section is left out).

    A plain section is ``section.build(ctx)``. A per-setting section (its module sets ``PER_SETTING``,
    ``True`` or a ``PerSetting``; like benchopt's plot ``options``) is faceted here, once for every
    section: its ``lead(ctx)`` (heading and method; ``[]`` leaves the section out), then
    ``build_setting(ctx, facet)`` for each setting (``Facet``: the setting's frames, stems and caption
    suffix), each under a heading naming the setting when the spec asks for it and there are several,
    then ``close(ctx, faceted)`` (notes after the settings; ``faceted``: every setting's blocks).
    ``lead`` and ``close`` are optional.
    """
    spec = getattr(section, "PER_SETTING", None)
    if not spec:
        return section.build(ctx)
    spec = spec if isinstance(spec, PerSetting) else PerSetting()
    out = section.lead(ctx) if hasattr(section, "lead") else []
    if hasattr(section, "lead") and not out:
        return []
    faceted: list[Block] = []
    for s in getattr(ctx, spec.over):
        blocks = section.build_setting(ctx, Facet(ctx, s))
        if blocks and spec.headings and ctx.multi:
            faceted.append(Heading(s, 3))
        faceted += blocks
    return out + faceted + (section.close(ctx, faceted) if hasattr(section, "close") else [])


def title_items(run, ctx: ReportContext) -> list[tuple[str, str]]:
    """The title page's (label, value) lines: what ran (study, cells, commit, when), then the run
    manifest's data and preprocessing choices (``bench.results.manifest``) when the run has one. The
    manifest module and file are optional."""
    f = run.facts
    items = [("Study", run.study), ("Dataset", ", ".join(ctx.datasets)),
             ("Representations", ", ".join(ctx.reps)), ("Models", ", ".join(ctx.models)),
             ("Git commit", value(f.get("git_commit"))), ("Run finished", value(f.get("finished")))]
    try:
        from bench.results.manifest import load_manifest, manifest_items
    except ImportError:
        return items
    try:
        m = load_manifest(run.run_dir)
        shown = [(str(k), str(v)) for k, v in manifest_items(m)] if m else []
    except Exception as e:  # noqa: BLE001 - a damaged manifest must not cost the report
        log.warning("%s: run manifest not shown on the title page (%s)", run.run_dir, e)
        shown = []
    have = {k for k, _ in items}
    return items + [(k, v) for k, v in shown if k not in have]


class _Recorded(list):
    """``ctx.written`` that keeps the report folder's marker up to date as files are written.

    The marker lists every file a report of the suite wrote there: the previous report's and this
    one's so far, so a report that stops half-way (an error, a kill) leaves no file unrecorded, and
    the next one removes what it does not write again.
    """

    def __init__(self, out: Path, previous: set[str]):
        super().__init__()
        self.out, self.previous = Path(out), set(previous)

    def rel(self) -> set[str]:
        return {Path(p).resolve().relative_to(self.out.resolve()).as_posix() for p in self}

    def _sync(self) -> None:
        rundir.record_report_files(self.out, self.previous | self.rel())

    def append(self, p) -> None:
        super().append(p)
        self._sync()

    def extend(self, ps) -> None:
        super().extend(ps)
        self._sync()

    def __iadd__(self, ps):
        self.extend(ps)
        return self


def _remove_stale(out: Path, written: _Recorded, previous: set[str]) -> None:
    """Delete the files a previous report wrote that this one did not (they would mislead).

    Only files the marker lists as the suite's: a file someone else put in the folder is never
    touched (legacy report folders: see ``bench.runtime.rundir``). The marker then lists this report's files.
    """
    now = written.rel()
    for rel in sorted(previous - now):
        p = out / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            continue  # the marker is the suite's own, but never follow a path out of the folder
        if p.is_file() or p.is_symlink():
            p.unlink()
            log.info("removed %s (written by the previous report, not by this one)", p)
    rundir.record_report_files(out, now)
    kept = [p for sub, exts in (("figures", (".png",)), ("tables", (".csv", ".tex"))) if (out / sub).is_dir()
            for p in sorted((out / sub).iterdir()) if p.suffix in exts and p.relative_to(out).as_posix() not in now]
    if kept:
        log.warning("%s: kept %d figure/table file(s) no report of the suite recorded writing (%s); "
                    "delete them by hand if they are stale", out, len(kept), ", ".join(p.name for p in kept[:5]))
