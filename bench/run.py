"""``python -m bench.run study=NAME [key=value ...]``: run a study end to end.

Plan the grid (bench.plan.planner) -> load each dataset once -> flows once per (dataset, flow) from the
content-hash cache -> each representation once per (dataset, flow, representation) -> folds with the
leak guard -> units of work on an executor, each persisted as it finishes -> the results table ->
MLflow (written from the table) -> the report -> a summary on stdout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.core.config import ConfigError, to_container
from bench.results.tables import CELL_AXES
from bench.plan.planner import Plan, plan_study, stable_hash

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
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: finished units are kept; rerun to resume
"""


def git_commit() -> str:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                           cwd=Path(__file__).parent)
        return r.stdout.strip() if r.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("dualflow-bench", "torch", "timm", "opencv-contrib-python-headless", "numpy", "pandas", "scipy",
                "optuna", "mlflow", "hydra-core", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def check_output_dir(folder: Path, what: str = "run directory",
                     hint: str = "run_dir=... or paths.runs=...") -> None:
    """Fail before any training when results could not be written (read-only or full disk)."""
    probe = folder / ".write_probe"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            probe.write_bytes(b"\0" * 65536)
        finally:
            probe.unlink(missing_ok=True)  # a short write (disk full) must not leave the probe behind
    except OSError as e:
        raise ConfigError(f"cannot write to the {what} {folder}: {e.strerror or e}. Choose another with {hint}") from None


class _Prepared:
    """Per-study data cache: tables, flows, representations and folds, each computed once."""

    def __init__(self, plan: Plan, progress: bool):
        self.plan, self.progress = plan, progress
        self.tables, self.flows, self.reps, self.folds, self.digests = {}, {}, {}, {}, {}
        self.timings = {"data": 0.0, "flow": 0.0, "representation": 0.0}
        self.flow_params: dict = {}

    def table(self, cell):
        from bench.data import load_dataset

        key = stable_hash(cell.cfg["dataset"])
        if key not in self.tables:
            t0 = time.perf_counter()
            self.tables[key] = load_dataset(cell.cfg["dataset"])
            self.timings["data"] += time.perf_counter() - t0
        return key, self.tables[key]

    def flowset(self, cell):
        from bench.flow import compute_flows

        dkey, table = self.table(cell)
        key = stable_hash([dkey, cell.cfg["flow"]])
        if key not in self.flows:
            f = dict(cell.cfg["flow"])
            t0 = time.perf_counter()
            self.flows[key] = compute_flows(
                table, backend=f.pop("backend"), backend_params=f.pop("params", None), crop=f.pop("crop", None),
                size=f.pop("size", 112), workers=int(f.pop("workers", 1)), progress=self.progress,
                cache_dir=Path(self.plan.base.paths.cache) / "flows", **f)
            self.timings["flow"] += time.perf_counter() - t0
            self.flow_params[cell.flow.name] = self.flows[key].params
        return key, self.flows[key]

    def representation(self, cell):
        from bench.training.fold import represent

        fkey, fs = self.flowset(cell)
        key = stable_hash([fkey, cell.cfg["representation"]])
        if key not in self.reps:
            t0 = time.perf_counter()
            self.reps[key] = represent(cell.cfg["representation"], fs.flows, stored=fs.stored)
            self.timings["representation"] += time.perf_counter() - t0
        return self.reps[key]

    def fold_digest(self, cell, fold) -> str:
        """What the data of a fold *is*: its rows' table content (subject, clip, label, key frames,
        source dataset), the flows' content-hash cache keys, and the class names, for the training
        and the test rows. A unit's key holds it, so editing the data reruns exactly the units
        whose rows changed, and moving the data or the cache reruns nothing."""
        fkey, fs = self.flowset(cell)
        _, table = self.table(cell)
        if fkey not in self.digests:
            df = table.df
            cols = [c for c in ("subject", "clip", "label", "onset", "apex", "offset", "dataset") if c in df.columns]
            rows = df[cols].astype(str).agg("\x1f".join, axis=1).tolist()
            self.digests[fkey] = np.array([hashlib.sha256(f"{r}\x1f{k}".encode()).hexdigest()[:20]
                                           for r, k in zip(rows, fs.keys)])
        d = self.digests[fkey]
        return stable_hash([list(table.classes), d[np.asarray(fold.train_idx)].tolist(),
                            d[np.asarray(fold.test_idx)].tolist()])

    def fold_list(self, cell):
        from bench.protocols.folds import ProtocolSpec

        dkey, table = self.table(cell)
        spec = ProtocolSpec.from_mapping(cell.cfg["protocol"])
        # Folds depend on the data and the outer protocol only, never on the training seed, so
        # every cell of a study is tested on the same folds.
        key = stable_hash([dkey, spec.name, spec.k, spec.seed])
        if key not in self.folds:
            self.folds[key] = spec.make_folds(table.df)
        return self.folds[key]


def run_study(overrides: list[str], *, out=None) -> Path:
    """Run a study; returns its run directory.

    The run directory must be the suite's own (or new, or empty) and is locked from before its
    first write to the end (``bench.runtime.rundir``): a second study or backfill into it is refused."""
    with contextlib.ExitStack() as held:  # the run directory's lock, released however the study ends
        return _run_study(overrides, out=out, held=held)


def _run_study(overrides: list[str], *, out, held: contextlib.ExitStack) -> Path:
    out = out or sys.stdout
    from tqdm.auto import tqdm

    from bench.runtime.executors import StudyInterrupted, check_tasks, make_executor
    from bench.results.tables import UnitRecordError, UnitStore, atomic_write_text, cell_columns, collect, write_tables
    from bench.training.units import UnitTask

    t_start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    plan = plan_study(overrides)
    check_plan(plan)
    base = plan.base
    study = plan.study["name"]
    run_dir = Path(base.run_dir)
    from bench.runtime.rundir import check_report_dir, check_run_dir, own_run_dir

    # Whose folder first (a listing, writes nothing), then whether it can be written (a probe file).
    check_run_dir(run_dir)
    check_output_dir(run_dir)
    if base.report:  # the report is written after training: check its folder now, like the run dir
        reports_dir = Path(base.paths.reports) / study
        check_report_dir(reports_dir)  # the suite's own, new or empty, never a user's
        check_output_dir(reports_dir, "reports folder", "paths.reports=... or run without a report (report=false)")
    # Refuse a folder the suite does not own, lock it for the whole study (before the tracking check
    # creates mlflow.db), claim it with its marker.
    held.enter_context(own_run_dir(run_dir, out=out, command=" ".join(["python -m bench.run", *overrides])))
    tracking_cfg = to_container(base.tracking)
    from bench.tracking.mlflow_store import check_tracking, default_uri

    if tracking_cfg.get("enabled"):
        tracking_cfg["uri"] = tracking_cfg.get("uri") or default_uri(run_dir)
        check_tracking(tracking_cfg)  # an unreachable store fails before any training
    progress = bool(base.progress)
    commit = git_commit()
    from omegaconf import OmegaConf

    # config.yaml is written with the tables it describes (below): a study stopped before them
    # leaves the previous config.yaml and tables, which agree; the lock file names the running one.
    config_yaml = OmegaConf.to_yaml(base, resolve=True)
    print(f"study {study}: {len(plan.cells)} cell(s)" + (f", {len(plan.excluded)} excluded" if plan.excluded else "")
          + f" -> {run_dir}", file=out)

    prep = _Prepared(plan, progress)
    store = UnitStore(run_dir)
    tasks, all_keys, skipped = [], [], 0
    audit = bool(base.audit)  # the leakage audit: per-epoch test predictions, apart from the headline
    unaudited = 0  # finished units run again because they lack the audit's per-epoch predictions
    cell_units: dict[str, int] = {}
    for cell in plan.cells:
        _, table = prep.table(cell)
        x, channels, _flags = prep.representation(cell)
        folds = prep.fold_list(cell)
        df = table.df
        subjects = df["subject"].astype(str).to_numpy()
        y = df["label"].to_numpy(dtype=np.int64)
        clips = df["clip"].astype(str).to_numpy()
        sources = df["dataset"].astype(str).to_numpy()
        tuning = cell.cfg.get("tuning") or {}
        flows = None
        if int(tuning.get("n_trials") or 0) > 0 and "representation" in (tuning.get("space") or {}):
            flows = prep.flowset(cell)[1].flows  # the tuner recomputes the representation per trial
        columns = cell_columns({a: getattr(cell, a).option for a in ("dataset", "flow", "representation", "model")},
                               cell.cfg)
        for fold in folds:
            key = stable_hash([cell.cfg_hash, fold.name, sorted(map(str, fold.test_subjects)),
                               prep.fold_digest(cell, fold)])
            all_keys.append(key)
            if base.resume and store.is_done(key, audit=audit):
                skipped += 1
                continue
            unaudited += bool(audit and base.resume and store.is_done(key))
            cell_units[cell.label] = cell_units.get(cell.label, 0) + 1
            tasks.append(UnitTask(
                study=study,
                labels={"dataset": cell.dataset.name, "flow": cell.flow.name,
                        "representation": cell.representation.name, "model": cell.model.name},
                names={"representation": str(cell.cfg["representation"]["name"]), "model": str(cell.cfg["model"]["name"])},
                seed=cell.seed, fold=str(fold.name), train_idx=np.asarray(fold.train_idx),
                test_idx=np.asarray(fold.test_idx), x=x, y=y, subjects=subjects, clips=clips,
                source_datasets=sources, channels=channels, n_classes=len(table.classes), cell_cfg=cell.cfg,
                cell_hash=cell.cfg_hash, unit_key=key, run_dir=str(run_dir), git_commit=commit, flows=flows,
                columns=columns, audit=audit))
    if unaudited:
        print(f"audit: {unaudited} finished unit(s) were run without audit=true (no per-epoch predictions); "
              "running them again (same seeds, same headline)", file=out)
    if skipped:
        print(f"resume: {skipped} finished unit(s) found in {run_dir / 'units'}, {len(tasks)} to run", file=out)
    for path, problem in store.problems.items():
        print(f"resume: {path} is not a valid unit record ({problem}); redoing that unit", file=out)

    t_train = time.perf_counter()
    cells_bar = tqdm(total=len(cell_units), desc="cells", unit="cell", disable=not progress or not tasks, position=0)
    units_bar = tqdm(total=len(tasks), desc="folds", unit="fold", disable=not progress or not tasks, position=1)
    left = dict(cell_units)
    failed = []

    def on_result(task, rec):
        store.save(rec)
        units_bar.update(1)
        units_bar.set_postfix_str(f"{rec['row'].get('cell', '')} fold {task.fold}", refresh=False)
        left[task.cell] -= 1
        if left[task.cell] == 0:
            cells_bar.update(1)
        if rec["row"].get("status") != "ok":
            failed.append(rec["row"])

    try:
        if tasks:
            check_tasks(tasks)  # what every unit of a cell would fail on, known now the data is loaded
            executor = make_executor(to_container(base.executor))
            note = executor.cap_note(len(tasks)) if hasattr(executor, "cap_note") else None
            if note:
                print(note, file=out)
            executor.run(tasks, on_result)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM through main(): keep what finished, say so
        signum = getattr(e, "signum", signal.SIGINT)
        kept = sum(store.is_done(k) for k in all_keys)
        raise StudyInterrupted(signum, f"interrupted ({signal.Signals(signum).name}): {kept} of {len(all_keys)} "
                                       f"units finished and kept in {run_dir}; rerun the same command to resume"
                               ) from None
    finally:
        units_bar.close()
        cells_bar.close()
    train_seconds = time.perf_counter() - t_train

    records = [store.load(k) for k in all_keys]
    lost = [str(store.path(k)) for k, r in zip(all_keys, records) if r is None]
    if lost:  # every unit was run or resumed: a missing or broken record now is a damaged run dir
        raise UnitRecordError(f"{len(lost)} unit record(s) missing or invalid after the run (first: {lost[0]}: "
                           f"{store.problems.get(lost[0], 'missing')}); rerun the same command to redo them")
    results, predictions = collect(records)
    write_tables(run_dir, results, predictions)
    atomic_write_text(run_dir / "config.yaml", config_yaml)
    _write_megc_logs(run_dir, predictions, list(next(iter(prep.tables.values())).classes))
    _write_aux(run_dir, records)
    _write_audit(run_dir, records, audit)
    _write_examples(run_dir, plan, prep)
    from bench.results.manifest import write_manifest

    write_manifest(run_dir, plan, prep)  # the data/preprocessing choices; the report shows it first

    first_table = next(iter(prep.tables.values()))
    facts = {
        "study": study, "description": plan.study.get("description", ""), "overrides": plan.overrides,
        "classes": list(first_table.classes),
        "datasets": {c.dataset.name: _dataset_facts(prep.table(c)[1]) for c in plan.cells},
        "class_counts": _dataset_facts(first_table)["class_counts"],
        "n_subjects": len(first_table.subjects),
        "protocol": to_container(base.protocol), "tuning": to_container(base.tuning),
        "trainer": to_container(base.trainer), "flow": prep.flow_params,
        "seeds": sorted({c.seed for c in plan.cells}), "cells": [c.label for c in plan.cells],
        "excluded": plan.excluded, "versions": versions(), "git_commit": commit,
        "executor": to_container(base.executor), "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "units": {"total": len(all_keys), "ran": len(tasks), "resumed": skipped, "failed": len(failed)},
        "timings": {**{k: round(v, 3) for k, v in prep.timings.items()}, "train": round(train_seconds, 3)},
        "audit": audit,
    }
    if tracking_cfg.get("enabled"):
        from bench.tracking.mlflow_store import log_run

        t0 = time.perf_counter()
        try:
            facts["mlflow"] = log_run(run_dir, tracking_cfg, facts=facts, records=records)
        except Exception as e:  # noqa: BLE001 - the results table is safe; MLflow can be back-filled
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            facts["mlflow"] = {"tracking_uri": tracking_cfg["uri"], "error": first}
            print(f"warning: MLflow logging failed ({first}); the results are complete in {run_dir}. "
                  f"Re-log them with: python -m bench.tracking backfill {run_dir} --uri {tracking_cfg['uri']}",
                  file=out)
        facts["timings"]["tracking"] = round(time.perf_counter() - t0, 3)
    facts["wall_seconds"] = round(time.perf_counter() - t_start, 3)
    atomic_write_text(run_dir / "run.json", json.dumps(facts, indent=2, default=str))

    print_summary(results, predictions, len(first_table.classes), out=out)
    report_path = None
    if failed:
        print(f"\n{len(failed)} unit(s) FAILED; tracebacks in {run_dir / 'results.csv'} (column 'error')", file=out)
    if base.report:
        from bench.report import make_report

        t0 = time.perf_counter()
        path = make_report(run_dir, Path(base.paths.reports) / study)
        facts["timings"]["report"] = round(time.perf_counter() - t0, 3)
        facts["wall_seconds"] = round(time.perf_counter() - t_start, 3)
        atomic_write_text(run_dir / "run.json", json.dumps(facts, indent=2, default=str))
        report_path = path
    print_next_steps(facts.get("mlflow"), report_path, out=out)
    print(f"done in {facts['wall_seconds']:.1f} s; results: {run_dir / 'results.parquet'}", file=out)
    return run_dir


def _dataset_facts(table) -> dict:
    counts = table.df["label"].value_counts().to_dict()
    return {"name": table.name, "n_samples": len(table), "n_subjects": len(table.subjects),
            "class_counts": {table.classes[int(k)]: int(v) for k, v in sorted(counts.items())},
            "problems": list(table.problems)[:50]}


def _write_megc_logs(run_dir: Path, predictions, classes: list[str]) -> None:
    """Each cell's predictions also in the MEGC2019 per-fold log format (``python -m bench.score`` reads it)."""
    from bench.evaluation.prediction_files import companion_path, write_megc_log
    from bench.runtime.rundir import record_run_files, run_files

    out = run_dir / "predictions"
    logs = {}
    for keys, g in (predictions.groupby(list(CELL_AXES), sort=True) if len(predictions) else ()):
        safe = "__".join(str(k) for k in keys)
        safe = "".join(ch if ch.isalnum() or ch in "._-=," else "_" for ch in safe)
        logs[f"{safe}.txt"] = g
    # A log per cell of *this* table only: the suite's logs of other cells go, nothing else does.
    # The run marker lists the logs the suite wrote, recorded before writing so none is orphaned.
    ours = run_files(run_dir, "predictions")
    names = set(logs) | {companion_path(out / n).name for n in logs}  # each log and its classes file
    record_run_files(run_dir, "predictions", ours | names)
    for name, g in logs.items():
        write_megc_log(g, out / name, classes=classes)
    for name in sorted(ours - names):
        (out / name).unlink(missing_ok=True)
    record_run_files(run_dir, "predictions", names)
    others = sorted(p.name for p in out.iterdir() if p.name not in names) if out.is_dir() else []
    if others:
        log.warning("%s: kept %d file(s) the suite did not write (%s)", out, len(others), ", ".join(others[:5]))
    elif out.is_dir() and not logs:
        out.rmdir()


def _write_aux(run_dir: Path, records: list[dict]) -> None:
    """What models explained about their test predictions, per cell and seed: ``aux.npz`` holds
    ``<cell_hash>/<name>`` (the per-sample arrays of every fold, in unit order) and
    ``<cell_hash>/y_true``; the results table maps each cell_hash to its axes."""
    arrays: dict[str, list] = {}
    for rec in records:
        aux = rec.get("aux")
        if not aux:
            continue
        cell = rec["row"]["cell_hash"]
        n = len(rec["predictions"])
        kept = {k: v for k, v in aux.items() if v is not None and len(v) == n}
        for k, v in kept.items():
            arrays.setdefault(f"{cell}/{k}", []).extend(v)
        if kept:
            arrays.setdefault(f"{cell}/y_true", []).extend(p["y_true"] for p in rec["predictions"])
    if arrays:
        np.savez_compressed(run_dir / "aux.npz", **{k: np.asarray(v) for k, v in arrays.items()})
    else:  # a previous run's explanations must not outlive the table they belonged to
        (run_dir / "aux.npz").unlink(missing_ok=True)


def _write_audit(run_dir: Path, records: list[dict], audit: bool) -> None:
    """``audit.parquet``: the leakage audit's per-epoch test predictions (``bench.evaluation.audit``), written
    only with ``audit=true``; without it, a previous audited run's file goes, so a report never
    shows shortcuts of a table they were not computed with."""
    path = run_dir / "audit.parquet"
    if not audit:
        path.unlink(missing_ok=True)
        return
    import tempfile

    from bench.evaluation.audit import audit_frame

    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".audit.parquet.", suffix=".tmp")
    os.close(fd)
    try:
        audit_frame(records).to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_examples(run_dir: Path, plan: Plan, prep: _Prepared) -> None:
    """One synthetic sample through every representation, for the report (never real data)."""
    ex = {}
    for cell in plan.cells:
        if not str(cell.cfg["dataset"].get("name", "")).startswith("synthetic"):
            continue
        x, channels, _ = prep.representation(cell)
        ex[cell.representation.name] = x[0]
        ex[f"{cell.representation.name}__channels"] = np.asarray(channels)
    if ex:
        np.savez_compressed(run_dir / "examples.npz", **ex)
    else:
        (run_dir / "examples.npz").unlink(missing_ok=True)


def summary_table(predictions, n_classes: int):
    """One row per cell (every axis but the seed): mean and sd over seeds of each seed's pooled scores.

    Columns: the cell axes, ``seeds`` (how many), ``UF1``/``UAR``/``ACC`` (mean over seeds; each seed's
    predictions pooled over all its folds, MEGC2019) with ``<M>_sd`` (sample sd over seeds, NaN with
    one seed), ``n`` (clips pooled per seed, the largest over seeds), and, for a cell whose predictions
    hold more than one ``source_dataset`` (the MEGC2019 composite), ``UF1_<source>``/``UAR_<source>``
    (with ``_sd``): each source's own pool.
    """
    import pandas as pd

    from bench.evaluation.metrics import per_seed_scores

    if len(predictions) == 0:
        return pd.DataFrame()
    axes = [a for a in CELL_AXES if a != "seed" and a in predictions.columns]
    multi = "source_dataset" in predictions.columns
    rows = []
    for keys, g in predictions.groupby(axes, sort=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row = dict(zip(axes, keys), seeds=int(g["seed"].nunique()))
        sources = sorted(g["source_dataset"].astype(str).unique()) if multi else []
        parts = [("", g)] + ([(f"_{src}", g[g["source_dataset"].astype(str) == src]) for src in sources]
                             if len(sources) > 1 else [])
        for suffix, part in parts:
            if not len(part):
                continue
            seeds = per_seed_scores(part, n_classes, [])  # one row per seed (that has clips of this part)
            for m in ("uf1", "uar") + (("acc",) if not suffix else ()):
                vals = seeds[m].to_numpy()
                row[f"{m.upper()}{suffix}"] = float(np.mean(vals))
                row[f"{m.upper()}{suffix}_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")
        row["n"] = int(g.groupby("seed").size().max())
        rows.append(row)
    tab = pd.DataFrame(rows)
    lead = [*axes, "seeds", "UF1", "UF1_sd", "UAR", "UAR_sd", "ACC", "ACC_sd", "n"]
    return tab[lead + [c for c in tab.columns if c not in lead]]


def print_summary(results, predictions, n_classes: int, out=None) -> None:
    """The end-of-run table: per cell, mean ± sd over seeds of the pooled UF1/UAR/accuracy (and, for a
    composite, each source's UF1/UAR); says so when seed variance was not measured."""
    import pandas as pd

    out = out or sys.stdout
    tab = summary_table(predictions, n_classes)
    if tab.empty:
        print("no predictions (every unit failed?)", file=out)
        return
    several = bool((tab["seeds"] > 1).any())

    def cell(v, sd) -> str:
        if pd.isna(v):
            return ""
        return f"{v:.3f} ± {sd:.3f}" if pd.notna(sd) else f"{v:.3f}"

    axes = [a for a in CELL_AXES if a in tab.columns]
    show = tab[axes + ["seeds"]].copy()
    scores = [c for c in tab.columns if c not in axes and c not in ("seeds", "n") and not c.endswith("_sd")]
    composite = len(scores) > 3  # per-source columns: the pooled ones are the "Full" composite
    for c in scores:
        m, _, src = c.partition("_")
        show[f"{m} {src}" if src else f"{m} full" if composite else c] = [
            cell(v, sd) for v, sd in zip(tab[c], tab[f"{c}_sd"])]
    show["n"] = tab["n"]
    how = "mean ± sd over seeds, each seed pooled over all its folds" if several else "one seed, pooled over all folds"
    print(f"\nPooled over all folds (MEGC2019 UF1/UAR; {how}):", file=out)
    print(show.to_string(index=False), file=out)
    if (tab["seeds"] == 1).any():
        which = "every cell" if not several else "cells with seeds = 1"
        print(f"seed variance was not measured for {which} (one seed): a single seed's UF1 moved by up to "
              "0.05 between two machines on the main study's 144 clips; run several seeds "
              "(study.seeds=[0,1,2]) to see the spread", file=out)


def print_next_steps(mlflow_info: dict | None, report_dir: Path | None, out=None) -> None:
    """The commands to look at the results: the MLflow UI with the link that opens on the runs, the report."""
    from bench.tracking.mlflow_store import ui_command, ui_link

    out = out or sys.stdout
    lines = []
    if mlflow_info and not mlflow_info.get("error") and mlflow_info.get("tracking_uri"):
        cmd = ui_command(mlflow_info["tracking_uri"])
        link = mlflow_info.get("ui_link") or ui_link(mlflow_info.get("experiment_id"), mlflow_info["tracking_uri"],
                                                     view=False)
        lines.append(f"  MLflow runs:  {cmd}\n                then open {link}" if cmd else f"  MLflow runs:  open {link}")
        if mlflow_info.get("note"):  # e.g. an old experiment's artifact location outside the run directory
            lines.append(f"  note:         {mlflow_info['note']}")
    if report_dir is not None:
        lines.append(f"  report:       {Path(report_dir) / 'report.md'}"
                     + (f" and {Path(report_dir) / 'report.pdf'}" if (Path(report_dir) / "report.pdf").exists() else ""))
    if lines:
        print("\nLook at the results:", *lines, sep="\n", file=out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
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
    level = os.environ.get("DUALFLOW_LOGLEVEL", "WARNING").upper()
    logging.basicConfig(level=level if isinstance(logging.getLevelName(level), int) else "WARNING",
                        format="%(levelname)s %(name)s: %(message)s")
    old_term = _on_sigterm_stop()
    try:
        if show_cfg or plan_only:
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
            return 0
        run_dir = run_study(argv)
    except KeyboardInterrupt as e:  # SIGINT, or SIGTERM (see _on_sigterm_stop); run_study says what it kept
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
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return 1 if _failed_units(run_dir) else 0


def check_plan(plan: Plan) -> None:
    """Refuse, right after planning and before any data is loaded, what the planner does not check:
    the executor node (``bench.runtime.executors.check_executor_cfg``) and the run's on/off switches."""
    from bench.runtime.executors import check_executor_cfg

    check_executor_cfg(to_container(plan.base.executor))
    for key in ("resume", "report", "progress", "audit"):
        value = plan.base.get(key)
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")


def _on_sigterm_stop():
    """SIGTERM stops a study as Ctrl-C does (``StudyInterrupted``, a KeyboardInterrupt): the pool is
    stopped, finished units are kept, exit status 143. Returns the previous handler (None when this
    is not the main thread, where handlers cannot be set)."""
    from bench.runtime.executors import StudyInterrupted

    def stop(signum, frame):  # noqa: ARG001
        raise StudyInterrupted(signum)

    try:
        old = signal.signal(signal.SIGTERM, stop)
    except ValueError:
        return None
    return old if old is not None else signal.SIG_DFL


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


def _failed_units(run_dir: Path) -> int:
    try:
        return int(json.loads((Path(run_dir) / "run.json").read_text())["units"]["failed"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


if __name__ == "__main__":
    sys.exit(main())
