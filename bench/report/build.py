"""Assemble the report: load the run, run every section in order, write Markdown and PDF."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from bench.core.config import ConfigError
from bench.runtime import rundir

from . import markdown as md
from . import pdf as pdfmod
from . import sections
from .context import Facet, PerSetting, ReportContext
from .document import Block, Heading
from .html import write_html
from .load import ReportInputError, axis_options, load_run, ordered
from .tables import ReportOptions, baseline_label

log = logging.getLogger(__name__)


def make_report(run_dir: str | Path, out_dir: str | Path | None = None,
                options: ReportOptions | dict | None = None, *, strict_baseline: bool = False) -> Path:
    """Write ``report.md``, ``report.pdf``, ``figures/*.png`` and ``tables/*.{csv,tex}``.

    ``out_dir`` defaults to ``reports/<study>`` (relative to the working directory). ``options`` is a
    ``ReportOptions`` or a mapping of its fields (the ``report`` config group). Returns the report
    directory. ``strict_baseline``: a baseline that names no representation of the run is refused
    (``ReportInputError``, listing them) instead of reported as "no significance tests" (the command
    line's explicit ``--baseline``).

    ``out_dir`` must be a report folder of the suite (its ``.dualflow-report`` marker), new or empty;
    any other non-empty folder is refused with a ``ConfigError`` (``bench.runtime.rundir``). Only files a
    report of the suite wrote there (the marker's list) are ever replaced or removed. A report that
    cannot be written (a full disk) raises ``ReportOutputError`` and leaves the previous one as it was
    (``_write_report``).
    """
    t0 = time.perf_counter()
    opts = options if isinstance(options, ReportOptions) else ReportOptions.from_mapping(options)
    run = load_run(run_dir)
    if not len(run.predictions):
        raise ReportInputError(f"{run.run_dir}: predictions table has no rows; nothing to report")
    if strict_baseline:
        check_baseline(run, opts.baseline)
    out = Path(out_dir) if out_dir is not None else Path("reports") / run.study
    try:
        _write_report(run, out, opts)
    except OSError as e:
        raise ReportOutputError(_output_error(out, e)) from e
    log.info("report for %s written to %s in %.1f s", run.study, out, time.perf_counter() - t0)
    return out


class ReportOutputError(ReportInputError):
    """The report could not be written (a full disk, a read-only folder); the previous report is kept.
    A ``ReportInputError`` so that every caller that turns the reporter's errors into one line does."""


def check_baseline(run, baseline: str) -> None:
    """Refuse a baseline that names no representation (label or option) of the run, listing them."""
    labels, options = ordered(run.predictions["representation"]), axis_options(run.results)
    base, why = baseline_label(labels, baseline, options)
    if base is not None:
        return
    shown = ", ".join(lab + (f" (option {options[lab]})" if options.get(lab, lab) != lab else "") for lab in labels)
    raise ReportInputError(f"{why}; its representations are: {shown}. Name one of them (its label or its "
                           "option) with --baseline")


# Where a report is written before it replaces the previous one: a folder inside the report folder
# (same file system, so every move is a rename), named like the atomic writes' temporary files.
STAGING = ".report-staging.tmp"


def _write_report(run, out: Path, opts: ReportOptions) -> None:
    """Build the report in a staging folder, then swap it in; a failure leaves the previous report.

    The design (issue 24): every file (figures, tables, report.md, report.pdf) is written into
    ``<out>/.report-staging.tmp/`` first, so a full disk or any error while writing leaves the
    report folder exactly as the previous report left it (the staging folder is removed). Only when
    all of them are written is each moved into place with ``os.replace`` (a rename: it needs no
    space and is atomic per file), ``report.md`` last, and only then are the previous report's stale
    files removed. Writing each file atomically in place would not do: a failure half-way would
    leave new tables beside the old report's figures. The swap itself is a handful of renames: a
    kill inside it can mix old and new files, but never tears one, and the marker lists both
    reports' files first, so the next report removes whatever it does not write again.
    """
    rundir.check_report_dir(out)  # a folder of the suite's own (or new, or empty), before writing anything
    out.mkdir(parents=True, exist_ok=True)
    with rundir.locked(out, purpose="write a report into", command=f"report of {run.run_dir}"):
        previous = rundir.claim_report_dir(out)  # checked again under the lock; the last report's files
        stage = _open_stage(out)
        try:
            ctx = ReportContext(run, out, opts, root=stage)
            blocks: list[Block] = [b for section in sections.SECTIONS for b in build_section(section, ctx)]
            (stage / "report.md").write_text(md.render(blocks))
            ctx.written.append(stage / "report.md")
            write_html(ctx, blocks)  # report.html: the same blocks and derived data, one self-contained page
            if opts.pdf and pdfmod.can_typeset():  # no compiler: one warning, the other files still written
                n = pdfmod.render(blocks, stage / "report.pdf", stage, title=f"Benchmark report: {run.study}",
                                  items=[], footer=f"dualflow-bench · {run.study}")
                ctx.written.append(stage / "report.pdf")
                log.info("report.pdf: %d pages", n)
            now = _swap_in(stage, out, ctx.written, previous)
            _remove_stale(out, now, previous)
        finally:
            _close_stage(out, stage)


def _output_error(out: Path, e: OSError) -> str:
    where = ""
    if e.filename:
        name = Path(str(e.filename))
        try:  # a staged file is named by its place in the report folder
            name = out / name.resolve().relative_to((out / STAGING).resolve())
        except (ValueError, OSError):
            pass
        where = f" ({name})"
    return (f"cannot write the report into {out}{where}: {e.strerror or e}; the previous report there (if any) "
            "is left as it was. Free some space (or choose another folder with --out) and run the report again")


def _open_stage(out: Path) -> Path:
    """A fresh staging folder, recorded in the marker first (a report killed while staging leaves
    it, and the next report removes it: only what the marker records is ever deleted)."""
    stage = out / STAGING
    data = rundir.read_marker(out, rundir.REPORT_MARKER) or {}
    if stage.is_symlink() or stage.exists():
        if data.get("staging") != STAGING:
            raise ConfigError(f"{stage} is in the way of the report (the suite did not record creating it); "
                              "move it away and run the report again")
        _remove(stage)
    rundir.write_marker(out, rundir.REPORT_MARKER, {**data, "staging": STAGING})
    stage.mkdir()
    return stage


def _close_stage(out: Path, stage: Path) -> None:
    """Remove the staging folder (what a failed report wrote) and its record in the marker."""
    _remove(stage)
    try:
        data = rundir.read_marker(out, rundir.REPORT_MARKER) or {}
        if data.pop("staging", None) is not None:
            rundir.write_marker(out, rundir.REPORT_MARKER, data)
    except OSError as e:  # a full disk: the record stays, and the next report removes what it names
        log.debug("%s: staging record left in the marker (%s)", out, e)


def _remove(p: Path) -> None:
    if p.is_symlink() or p.is_file():
        p.unlink()
    elif p.exists():
        shutil.rmtree(p, ignore_errors=True)


def _swap_in(stage: Path, out: Path, written: list[Path], previous: set[str]) -> set[str]:
    """Move every staged file into the report folder, ``report.md`` last; returns their relative paths."""
    rels = list(dict.fromkeys(Path(p).relative_to(stage).as_posix() for p in written))
    for rel in rels:  # on disk before any is moved: a crash after the renames finds them whole
        with open(stage / rel, "rb") as f:
            os.fsync(f.fileno())
    rundir.record_report_files(out, previous | set(rels))  # a kill during the swap leaves no file unrecorded
    try:
        for rel in sorted(rels, key=lambda r: {"report.pdf": 1, "report.md": 2}.get(r, 0)):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, out / rel)
    except OSError as e:  # a rename needs no space: rare, but then the folder is part old, part new
        raise ReportOutputError(f"cannot move the new report into {out} ({e.strerror or e}); some of its files "
                                "are the new report's, the rest the previous one's: run the report again") from e
    return set(rels)


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


def _remove_stale(out: Path, now: set[str], previous: set[str]) -> None:
    """Delete the files a previous report wrote that this one did not (they would mislead).

    Only files the marker lists as the suite's: a file someone else put in the folder is never
    touched (legacy report folders: see ``bench.runtime.rundir``). The marker then lists this report's files.
    """
    for rel in sorted(previous - now):
        p = out / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            continue  # the marker is the suite's own, but never follow a path out of the folder
        if p.is_file() or p.is_symlink():
            p.unlink()
            log.info("removed %s (written by the previous report, not by this one)", p)
    rundir.record_report_files(out, now)
    kept = [p for sub, exts in (("figures", (".png", ".pdf")), ("tables", (".csv", ".tex"))) if (out / sub).is_dir()
            for p in sorted((out / sub).iterdir()) if p.suffix in exts and p.relative_to(out).as_posix() not in now]
    if kept:
        log.warning("%s: kept %d figure/table file(s) no report of the suite recorded writing (%s); "
                    "delete them by hand if they are stale", out, len(kept), ", ".join(p.name for p in kept[:5]))
