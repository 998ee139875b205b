"""``run_study``: the walk of a study, step by step (``python -m bench.run`` calls it).

Plan the grid (``bench.plan``) -> check each dataset's folders (``dataset.root``) -> claim and lock the run
directory -> load each dataset once ->
flows once per (dataset, flow) from the content-hash cache -> each representation once per
(dataset, flow, representation) -> folds with the leak guard -> units on an executor, each
persisted as it finishes -> the results table -> MLflow (written from the table) -> the report ->
a summary on stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

from bench.core.config import ConfigError, to_container
from bench.core.hashing import stable_hash
from bench.plan.planner import Plan, plan_study
from bench.core.files import atomic_write_text
from bench.results.tables import UnitStore, collect, write_tables
from bench.runner.execute import run_units
from bench.runner.facts import git_commit, now_utc, run_facts
from bench.runner.outputs import gather_records, write_side_files
from bench.runner.prepare import Prepared
from bench.runner.summary import print_answer, print_next_steps, print_summary
from bench.runner.tasks import RunContext, plan_units, resume_notes
from bench.training.tuning import check_tuning_storage
from bench.runtime.rundir import check_output_dir, check_report_dir, check_run_dir, locked, own_run_dir


def run_study(overrides: list[str], *, out=None) -> Path:
    """Run a study; returns its run directory.

    The run directory must be the suite's own (or new, or empty) and is locked from before its
    first write to the end (``bench.runtime.rundir``): a second study or backfill into it is refused."""
    with contextlib.ExitStack() as held:  # the run directory's lock, released however the study ends
        return _run_study(overrides, out=out or sys.stdout, held=held)


def _run_study(overrides: list[str], *, out, held: contextlib.ExitStack) -> Path:
    t_start, started = time.perf_counter(), now_utc()
    plan = plan_study(overrides)
    check_plan(plan)
    _check_data_cache(plan)
    _check_data_roots(plan)  # a wrong dataset.root is refused before anything is written in the run dir
    ctx = _claim_run_dir(plan, overrides, held, out)
    tracking_cfg = _check_tracking(plan, ctx.run_dir)
    check_tuning_storage(ctx.run_dir, plan.cells, out)  # a damaged optuna.journal: refused (or a torn line cut) now
    config_yaml = _config_yaml(plan)
    _announce(plan, ctx.run_dir, out)

    prep, store = Prepared(plan, bool(plan.base.progress)), UnitStore(ctx.run_dir)
    _prepare_data(plan, prep)
    units = plan_units(plan, prep, store, ctx)
    resume_notes(units, store, ctx.run_dir, out)
    failed, train_seconds = run_units(units, store, plan.base.executor, ctx.run_dir, bool(plan.base.progress), out)
    more_failed, more_seconds, seeds_auto = _more_seeds(plan, prep, store, ctx, units, failed, out)
    failed, train_seconds = failed + more_failed, train_seconds + more_seconds

    records = gather_records(store, units.keys)
    results, predictions = collect(records)
    write_tables(ctx.run_dir, results, predictions)
    atomic_write_text(ctx.run_dir / "config.yaml", config_yaml)
    write_side_files(ctx.run_dir, records, predictions, plan, prep, ctx.audit)

    facts = run_facts(plan, prep, units, ctx, failed=len(failed), started=started, train_seconds=train_seconds)
    if seeds_auto:
        facts["seeds_auto"] = seeds_auto
    _track(facts, tracking_cfg, ctx.run_dir, records, out)
    _write_facts(ctx.run_dir, facts, t_start)
    print_summary(results, predictions, len(prep.first_table().classes), out=out)
    print_answer(predictions, len(prep.first_table().classes), plan.cells, to_container(plan.base.report_options), out=out)
    if failed:
        print(f"\n{len(failed)} unit(s) FAILED; tracebacks in {ctx.run_dir / 'results.csv'} (column 'error')", file=out)
    report_path = _report(plan, ctx.run_dir, facts, t_start) if plan.base.report else None
    print_next_steps(facts.get("mlflow"), report_path, out=out, run_dir=ctx.run_dir, results=results)
    print(f"done in {facts['wall_seconds']:.1f} s; results: {ctx.run_dir / 'results.parquet'}", file=out)
    return ctx.run_dir


def _more_seeds(plan: Plan, prep: Prepared, store: UnitStore, ctx: RunContext, units, failed: list, out
                ) -> tuple[list[dict], float, dict]:
    """``study.seeds=auto``: seeds added to the cells of undecided comparisons (``bench.runner.seeds``):
    the failed rows, training seconds and record of its rounds; nothing for a fixed seed list, or when
    a unit of the first round failed (nothing to decide on)."""
    if plan.seed_policy is None:
        return [], 0.0, {}
    if failed:
        print(f"seeds=auto: {len(failed)} unit(s) failed, so no seed is added", file=out)
        return [], 0.0, {}
    from bench.runner.seeds import until_decided

    return until_decided(plan, prep, store, ctx, units, out)


def check_plan(plan: Plan) -> None:
    """Refuse, right after planning and before any data is loaded, what the planner does not check:
    the executor node (``bench.runtime.executors.check_executor_cfg``) and the run's on/off switches."""
    from bench.runtime.executors import check_executor_cfg

    check_executor_cfg(to_container(plan.base.executor))
    for key in ("resume", "report", "progress", "audit"):
        value = plan.base.get(key)
        if not isinstance(value, bool) and not (key == "audit" and value == "grid"):
            raise ConfigError(f"{key} must be true or false{' (or grid)' if key == 'audit' else ''}, got {value!r}")


def _claim_run_dir(plan: Plan, overrides: list[str], held: contextlib.ExitStack, out) -> RunContext:
    """Check the run (and report) folders are the suite's own and writable, then lock them for the
    whole study and claim the run's: a clash is refused now, not after every unit has trained."""
    base, study = plan.base, plan.study["name"]
    run_dir = Path(base.run_dir)
    # Whose folder first (a listing, writes nothing), then whether it can be written (a probe file).
    check_run_dir(run_dir)
    reports_dir = Path(base.paths.reports) / study if base.report else None
    if reports_dir is not None:  # the report is written after training: check its folder now, like the run dir
        _refuse_nested(run_dir, reports_dir)
        check_report_dir(reports_dir)  # the suite's own, new or empty, never a user's
    check_output_dir(run_dir)
    if reports_dir is not None:
        check_output_dir(reports_dir, "reports folder", "paths.reports=... or run without a report (report=false)")
    # Refuse a folder the suite does not own, lock it for the whole study (before the tracking check
    # creates mlflow.db), claim it with its marker.
    held.enter_context(own_run_dir(run_dir, out=out, command=" ".join(["python -m bench.run", *overrides])))
    if reports_dir is not None:  # a second study writing the same report is refused now
        held.enter_context(locked(reports_dir, purpose="write a report into", command=f"study {study}"))
    return RunContext(study=study, run_dir=run_dir, commit=git_commit(), resume=bool(base.resume),
                      audit=base.audit is not False,  # audit: per-epoch test predictions, apart from the headline
                      audit_grid=base.audit == "grid")  # audit=grid: also each unit's inner-validation score


def _check_data_cache(plan: Plan) -> None:
    """A generated dataset is written into its ``cache_dir`` (by default under ``paths.cache``, which
    ``DUALFLOW_CACHE`` sets) before it is read: a place that is not a writable folder is refused now,
    naming it. (An unusable flow cache is only a warning: the flows are then kept in memory.)"""
    from bench.data import dataset_is_synthetic

    cache = Path(str(plan.base.paths.cache)).expanduser()
    nodes = {str(c.cfg["dataset"]["cache_dir"]): str(c.cfg["dataset"].get("name")) for c in plan.cells
             if "cache_dir" in c.cfg["dataset"] and dataset_is_synthetic(str(c.cfg["dataset"].get("name", "")))}
    for folder, name in nodes.items():
        d = Path(folder).expanduser()
        why = _unusable_folder(d)
        if why:
            where = (f"the cache folder {cache} (DUALFLOW_CACHE, paths.cache)" if d == cache or cache in d.parents
                     else f"dataset.cache_dir {d}")
            raise ConfigError(f"{where} cannot hold the generated {name} data ({why}); point DUALFLOW_CACHE "
                              "(or paths.cache=..., dataset.cache_dir=...) at a writable folder")


def _check_data_roots(plan: Plan) -> None:
    """Every dataset folder a cell names (``dataset.root``, a composite's ``dataset.<db>.root``) must be
    an existing folder: a wrong one is refused now, naming its key (and a public release's clone
    command), before the run directory, its lock or ``mlflow.db`` exist (``bench.data.check_roots``)."""
    from bench.data import check_roots

    for node in {stable_hash(c.cfg["dataset"]): c.cfg["dataset"] for c in plan.cells}.values():
        check_roots(node)


def _unusable_folder(d: Path) -> str:
    """Why ``d`` could not be created and written ('' if it could); nothing is created to find out."""
    p = d
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    if not p.is_dir():
        return f"{p} is not a folder"
    if not os.access(p, os.W_OK | os.X_OK):
        return f"{p} is not writable"
    return ""


def _refuse_nested(run_dir: Path, reports_dir: Path) -> None:
    """The run directory and the report folder each own their folder: neither may hold the other."""
    run, rep = Path(os.path.realpath(run_dir)), Path(os.path.realpath(reports_dir))
    if run == rep or rep in run.parents or run in rep.parents:
        inner, outer = ("run directory", "reports folder") if rep in run.parents else ("reports folder", "run directory")
        if run == rep:
            raise ConfigError(f"the run directory and the reports folder are the same folder ({run_dir}); "
                              "give them different places (run_dir=... or paths.reports=...)")
        raise ConfigError(f"the {inner} would be inside the {outer} ({run_dir} and {reports_dir}); each owns its "
                          "folder, so give them separate places (run_dir=... or paths.reports=...)")


def _check_tracking(plan: Plan, run_dir: Path) -> dict:
    """The tracking node with its store URI filled in; an unreachable store fails before any training."""
    from bench.tracking.mlflow_store import check_tracking, default_uri

    tracking_cfg = to_container(plan.base.tracking)
    if tracking_cfg.get("enabled"):
        tracking_cfg["uri"] = tracking_cfg.get("uri") or default_uri(run_dir)
        check_tracking(tracking_cfg)
    return tracking_cfg


def _prepare_data(plan: Plan, prep: Prepared) -> None:
    """Every cell's data and flows, before any unit runs (``plan_units`` reuses them). A setting the
    loader or the flow backend refuses (a ValueError / TypeError such as a size out of its range) is
    a config error naming the cell, not a traceback."""
    from bench.data.table import DataError

    for cell in plan.cells:
        try:
            prep.flowset(cell)
        except (ValueError, TypeError) as e:
            if isinstance(e, (ConfigError, DataError)):
                raise
            raise ConfigError(f"cell {cell.label}: dataset {cell.dataset.option!r} or flow {cell.flow.option!r} "
                              f"refuses its settings: {e}") from e


def _config_yaml(plan: Plan) -> str:
    """The composed config, written with the tables it describes (a study stopped before them leaves
    the previous config.yaml and tables, which agree; the lock file names the running one)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(plan.base, resolve=True)


def _announce(plan: Plan, run_dir: Path, out) -> None:
    print(f"study {plan.study['name']}: {len(plan.cells)} cell(s)"
          + (f", {len(plan.excluded)} excluded" if plan.excluded else "") + f" -> {run_dir}", file=out)


def _track(facts: dict, tracking_cfg: dict, run_dir: Path, records: list[dict], out) -> None:
    """Log the run to MLflow from its table; a failure warns (the results are safe) with the backfill
    command, and is recorded in run.json (``mlflow.error``; ``mlflow.required`` from ``tracking.required``,
    which makes ``python -m bench.run`` exit 3)."""
    if not tracking_cfg.get("enabled"):
        return
    from bench.tracking.mlflow_store import log_run

    t0 = time.perf_counter()
    try:
        facts["mlflow"] = log_run(run_dir, tracking_cfg, facts=facts, records=records)
    except Exception as e:  # noqa: BLE001 - the results table is safe; MLflow can be back-filled
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        required = bool(tracking_cfg.get("required"))
        facts["mlflow"] = {"tracking_uri": tracking_cfg["uri"], "error": first, "required": required}
        print(f"warning: MLflow logging failed ({first}); the results are complete in {run_dir}. "
              f"Re-log them with: python -m bench.tracking backfill {run_dir} --uri {tracking_cfg['uri']}"
              + (" (tracking.required=true: exit status 3)" if required else ""), file=out)
    facts["timings"]["tracking"] = round(time.perf_counter() - t0, 3)


def _write_facts(run_dir: Path, facts: dict, t_start: float) -> None:
    facts["wall_seconds"] = round(time.perf_counter() - t_start, 3)
    atomic_write_text(run_dir / "run.json", json.dumps(facts, indent=2, default=str))


def _report(plan: Plan, run_dir: Path, facts: dict, t_start: float) -> Path:
    """Write the report and record its time in run.json."""
    from bench.report import ReportOptions, make_report

    t0 = time.perf_counter()
    options = ReportOptions.from_mapping(to_container(plan.base.report_options))
    path = make_report(run_dir, Path(plan.base.paths.reports) / plan.study["name"], options)
    facts["timings"]["report"] = round(time.perf_counter() - t0, 3)
    _write_facts(run_dir, facts, t_start)
    return path
