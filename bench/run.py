"""``python -m bench.run study=NAME [key=value ...]``: run a study end to end.

The command line: parse the flags, run ``bench.runner.walk.run_study`` (the walk itself: plan,
data, flows, representations, folds, units, tables, MLflow, report, summary) and turn what went
wrong into one ``error:`` line and an exit status.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

from bench.core.config import ConfigError
from bench.plan.planner import plan_study
from bench.runner.summary import print_next_steps, print_summary, summary_table  # noqa: F401 - public
from bench.runner.walk import check_plan, run_study
from bench.runtime.rundir import check_output_dir  # noqa: F401 - public

log = logging.getLogger("bench.run")

USAGE = """usage: python -m bench.run study=NAME [group=option ...] [key=value ...] [--cfg job] [--plan]

  study=NAME        a study from studies/ (default: smoke)
  group=option      dataset, flow, representation, model, trainer, protocol, tuning, tracking, executor
  key=value         any config key, e.g. trainer.epochs=20 dataset.root=/data/CASME2 study.seeds=[0,1]
  +key=value ~key   add / delete a key (Hydra syntax), e.g. ~tuning.space.trainer.epochs
  --cfg job         print the composed config and the planned cells, run nothing
  --plan            print the planned cells, run nothing

exit status:
  0    every unit finished ok
  1    the study ran to the end but some unit failed (tracebacks in runs/<study>/results.csv)
  2    a bad command line, config, data, flow, protocol or report input, an OS error (e.g. a full
       disk), or executor.on_error=stop after a failed unit: one 'error: ...' line on stderr
       (DUALFLOW_LOGLEVEL=DEBUG prints its traceback too)
  3    every unit finished ok but the MLflow logging failed and tracking.required=true (the results
       are complete; python -m bench.tracking backfill RUN_DIR re-logs them). With the default
       tracking.required=false that failure is a warning and the status stays 0
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: finished units are kept; rerun to resume
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    parsed = _parse_flags(argv)
    if isinstance(parsed, int):
        return parsed
    show_cfg, plan_only = parsed
    _configure_logging()
    from bench.runtime.executors import sigterm_interrupts

    with sigterm_interrupts():  # SIGTERM stops a study as Ctrl-C does: finished units kept, exit 143
        return _run(argv, show_cfg, plan_only)


def _run(argv: list[str], show_cfg: bool, plan_only: bool) -> int:
    """The plan or the study, and its exit status: what went wrong as one ``error:`` line."""
    try:
        if show_cfg or plan_only:
            _show_plan(argv, show_cfg)
            return 0
        run_dir = run_study(argv)
    except KeyboardInterrupt as e:  # SIGINT, or SIGTERM (sigterm_interrupts); run_study says what it kept
        signum = int(getattr(e, "signum", signal.SIGINT))
        _debug_traceback()
        print(getattr(e, "note", "") or f"interrupted ({signal.Signals(signum).name}); every finished unit is "
              f"kept in the run directory; rerun the same command to resume", file=sys.stderr)
        return 128 + signum
    except Exception as e:
        if not isinstance(e, _user_errors()):
            raise  # a bug: the full traceback
        _debug_traceback()
        print(f"error: {_error_line(e)}", file=sys.stderr)
        return 2
    return _exit_status(run_dir)


def _parse_flags(argv: list[str]) -> tuple[bool, bool] | int:
    """Take ``--cfg job`` and ``--plan`` out of ``argv`` (in place); an exit status on a bad command line."""
    show_cfg = plan_only = False
    if "--cfg" in argv:
        i = argv.index("--cfg")
        what = argv[i + 1] if i + 1 < len(argv) else "job"
        del argv[i:i + 2]
        show_cfg = True
        if what not in ("job", "all"):
            print(f"error: --cfg takes 'job' (got {what!r})", file=sys.stderr)
            return 2
    if "--plan" in argv:
        argv.remove("--plan")
        plan_only = True
    bad = [a for a in argv if "=" not in a and not a.startswith("~")]  # ~key deletes a key (Hydra)
    if bad:
        print(f"error: arguments must be key=value overrides, got {bad}\n\n{USAGE}", file=sys.stderr)
        return 2
    return show_cfg, plan_only


def _configure_logging() -> None:
    level = os.environ.get("DUALFLOW_LOGLEVEL", "WARNING").upper()
    logging.basicConfig(level=level if isinstance(logging.getLevelName(level), int) else "WARNING",
                        format="%(levelname)s %(name)s: %(message)s")


def _show_plan(argv: list[str], show_cfg: bool) -> None:
    """``--cfg job`` / ``--plan``: the composed config and the planned cells, nothing run."""
    from omegaconf import OmegaConf

    plan = plan_study(argv)
    check_plan(plan)
    if show_cfg:
        print(OmegaConf.to_yaml(plan.base, resolve=False))
    print(f"# planned cells ({len(plan.cells)}):")
    for c in plan.cells:
        print(f"#   {c.label}  [{c.cfg_hash}]")
    for e in plan.excluded:
        print(f"#   excluded: {e}")


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors after planning that mean bad input or a bad machine state, not a bug: one line, exit 2.
    Only modules already imported can have raised theirs, so nothing is imported here."""
    kinds: list[type[BaseException]] = [ConfigError, OSError]
    for mod, name in (("bench.data.table", "DataError"), ("bench.flow.pipeline", "FlowError"),
                      ("bench.protocols.folds", "ProtocolError"), ("bench.report.load", "ReportInputError"),
                      ("bench.runtime.executors", "StudyStopped"), ("bench.results.tables", "UnitRecordError")):
        kind = getattr(sys.modules.get(mod), name, None)
        if isinstance(kind, type):
            kinds.append(kind)
    return tuple(kinds)


def _error_line(e: BaseException) -> str:
    summary = getattr(e, "summary", None)
    if isinstance(summary, str) and summary:
        return summary  # StudyStopped: the unit and its error's last line (the record has the traceback)
    if isinstance(e, OSError) and e.strerror:
        where = f" {e.filename}" + (f" -> {e.filename2}" if e.filename2 else "") if e.filename else ""
        return f"{type(e).__name__}{where}: {e.strerror} (errno {e.errno})"
    return str(e) or type(e).__name__


def _debug_traceback() -> None:
    if os.environ.get("DUALFLOW_LOGLEVEL", "").strip().upper() == "DEBUG":  # for debugging: the whole story
        traceback.print_exc()


EXIT_TRACKING_FAILED = 3  # every unit ok, the MLflow logging failed, and tracking.required=true


def _exit_status(run_dir: Path) -> int:
    """1 when some unit failed; 3 when the logging failed and tracking was required; else 0."""
    if _failed_units(run_dir):
        return 1
    mlflow = _facts(run_dir).get("mlflow")
    failed_logging = isinstance(mlflow, dict) and bool(mlflow.get("error")) and mlflow.get("required") is True
    return EXIT_TRACKING_FAILED if failed_logging else 0


def _facts(run_dir: Path) -> dict:
    try:
        facts = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return facts if isinstance(facts, dict) else {}


def _failed_units(run_dir: Path) -> int:
    try:
        return int(_facts(run_dir)["units"]["failed"])
    except (KeyError, ValueError, TypeError):
        return 0


if __name__ == "__main__":
    sys.exit(main())
