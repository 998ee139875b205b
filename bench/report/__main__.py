"""``python -m bench.report <run dir | study name> [--out reports/<study>] [--open]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path

from bench.runtime.rundir import check_not_locked

from .build import make_report
from .load import ReportInputError, resolve_run_dir
from .tables import ReportOptions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = ReportOptions()
    p = argparse.ArgumentParser(prog="python -m bench.report",
                                description="Write reports/<study>/report.md, report.html and report.pdf "
                                "(+ figures/*.png, tables/*.csv and *.tex) from a study's run directory.")
    p.add_argument("target", help="a run directory (holding predictions.parquet) or a study name under --runs-dir")
    p.add_argument("--out", type=Path, default=None,
                   help="report directory (default: reports/<study>): new, empty, or one the suite wrote a report "
                        "into (a non-empty folder of other files is refused)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where study names resolve (default: runs)")
    p.add_argument("--baseline", default=None,
                   help=f"baseline representation, a label or an option (default: {d.baseline}, when the study has "
                        "it; one given here that the study does not have is refused, listing those it has)")
    p.add_argument("--n-boot", type=int, default=d.n_boot, help=f"bootstrap replicates (default: {d.n_boot})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"bootstrap seed (default: {d.seed})")
    p.add_argument("--ci", type=float, default=d.ci_level, help=f"confidence level (default: {d.ci_level})")
    p.add_argument("--min-pairs", type=int, default=d.min_pairs,
                   help=f"fewest subjects with a non-zero difference to run a test (default: {d.min_pairs})")
    p.add_argument("--alpha", type=float, default=d.alpha,
                   help=f"family-wise level of the secondary tests, Wilcoxon and McNemar (default: {d.alpha})")
    p.add_argument("--rope", type=float, default=d.rope,
                   help=f"region of practical equivalence in UF1: |ΔUF1| <= rope is no practical difference "
                        f"(default: {d.rope})")
    p.add_argument("--decide-at", type=float, default=d.decide_at,
                   help=f"posterior probability a verdict needs (better, worse or practically equivalent; "
                        f"default: {d.decide_at})")
    p.add_argument("--no-pdf", action="store_true", help="write the Markdown, report.html, figures and tables only")
    p.add_argument("--open", action="store_true",
                   help="open report.html in the web browser when written (with no browser, print its path)")
    p.add_argument("-q", "--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if a.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        run_dir = resolve_run_dir(a.target, a.runs_dir)
        # Not while a study (or backfill) writes the run directory: its tables are replaced at its
        # end, and a report of the previous ones would be stale. A study with report=true writes its
        # own report when it ends.
        check_not_locked(run_dir, purpose="wait for it to finish (a study with report=true writes its "
                                          "report at the end), then run python -m bench.report again")
        opts = ReportOptions(baseline=a.baseline or ReportOptions().baseline, n_boot=a.n_boot, seed=a.seed,
                             ci_level=a.ci, min_pairs=a.min_pairs, alpha=a.alpha, rope=a.rope,
                             decide_at=a.decide_at, pdf=not a.no_pdf)
        out = make_report(run_dir, a.out, opts, strict_baseline=a.baseline is not None)
    except (ReportInputError, ValueError, OSError) as e:  # ReportOutputError: a full disk, the old report kept
        if os.environ.get("DUALFLOW_LOGLEVEL", "").strip().upper() == "DEBUG":
            traceback.print_exc()
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    print(out / "report.md")
    print(out / "report.html")
    if not a.no_pdf:
        print(out / "report.pdf")
    if a.open:
        open_page(out / "report.html")
    return 0


def open_page(path: Path) -> bool:
    """Open ``path`` in the web browser (a ``file://`` URI: the page needs no server); with no browser
    to open, say where the page is. Returns whether a browser took it."""
    import webbrowser

    try:
        opened = webbrowser.open(path.resolve().as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        print(f"no web browser to open; open this file in one: {path}")
    return opened


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:  # one the reporter did not word itself (reading the run)
        return f"{type(e).__name__}{f' {e.filename}' if e.filename else ''}: {e.strerror} (errno {e.errno})"
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
