"""``python -m bench.run study=NAME [key=value ...]``: run a study end to end.

Plan the grid (bench.study) -> load each dataset once -> flows once per (dataset, flow) from the
content-hash cache -> each representation once per (dataset, flow, representation) -> folds with the
leak guard -> units of work on an executor, each persisted as it finishes -> the results table ->
MLflow (written from the table) -> the report -> a summary on stdout.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.config import ConfigError, to_container
from bench.results import CELL_AXES
from bench.study import Plan, plan_study, stable_hash

log = logging.getLogger("bench.run")

USAGE = """usage: python -m bench.run study=NAME [group=option ...] [key=value ...] [--cfg job] [--plan]

  study=NAME        a study from studies/ (default: smoke)
  group=option      dataset, flow, representation, model, trainer, protocol, tuning, tracking, executor
  key=value         any config key, e.g. trainer.epochs=20 dataset.root=/data/CASME2 study.seeds=[0,1]
  +key=value ~key   add / delete a key (Hydra syntax), e.g. ~tuning.space.trainer.epochs
  --cfg job         print the composed config and the planned cells, run nothing
  --plan            print the planned cells, run nothing
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


def check_output_dir(run_dir: Path) -> None:
    """Fail before any training when results could not be written (read-only or full disk)."""
    probe = run_dir / ".write_probe"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            probe.write_bytes(b"\0" * 65536)
        finally:
            probe.unlink(missing_ok=True)  # a short write (disk full) must not leave the probe behind
    except OSError as e:
        raise ConfigError(f"cannot write to the run directory {run_dir}: {e.strerror or e}. "
                          f"Choose another with run_dir=... or paths.runs=...") from None


class _Prepared:
    """Per-study data cache: tables, flows, representations and folds, each computed once."""

    def __init__(self, plan: Plan, progress: bool):
        self.plan, self.progress = plan, progress
        self.tables, self.flows, self.reps, self.folds = {}, {}, {}, {}
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
        from bench.fold import represent

        fkey, fs = self.flowset(cell)
        key = stable_hash([fkey, cell.cfg["representation"]])
        if key not in self.reps:
            t0 = time.perf_counter()
            self.reps[key] = represent(cell.cfg["representation"], fs.flows)
            self.timings["representation"] += time.perf_counter() - t0
        return self.reps[key]

    def fold_list(self, cell):
        from bench.protocol import ProtocolSpec

        dkey, table = self.table(cell)
        spec = ProtocolSpec.from_mapping(cell.cfg["protocol"])
        # Folds depend on the data and the outer protocol only, never on the training seed, so
        # every cell of a study is tested on the same folds.
        key = stable_hash([dkey, spec.name, spec.k, spec.seed])
        if key not in self.folds:
            self.folds[key] = spec.make_folds(table.df)
        return self.folds[key]


def run_study(overrides: list[str], *, out=None) -> Path:
    """Run a study; returns its run directory."""
    out = out or sys.stdout
    from tqdm.auto import tqdm

    from bench.executors import make_executor
    from bench.results import UnitStore, atomic_write_text, cell_columns, collect, write_tables
    from bench.units import UnitTask

    t_start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    plan = plan_study(overrides)
    base = plan.base
    study = plan.study["name"]
    run_dir = Path(base.run_dir)
    check_output_dir(run_dir)
    tracking_cfg = to_container(base.tracking)
    from bench.tracking import check_tracking, default_uri

    if tracking_cfg.get("enabled"):
        tracking_cfg["uri"] = tracking_cfg.get("uri") or default_uri(run_dir)
        check_tracking(tracking_cfg)  # an unreachable store fails before any training
    progress = bool(base.progress)
    commit = git_commit()
    from omegaconf import OmegaConf

    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(base, resolve=True))
    print(f"study {study}: {len(plan.cells)} cell(s)" + (f", {len(plan.excluded)} excluded" if plan.excluded else "")
          + f" -> {run_dir}", file=out)

    prep = _Prepared(plan, progress)
    store = UnitStore(run_dir)
    tasks, all_keys, skipped = [], [], 0
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
            key = stable_hash([cell.cfg_hash, fold.name, sorted(map(str, fold.test_subjects))])
            all_keys.append(key)
            if base.resume and store.is_done(key):
                skipped += 1
                continue
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
                columns=columns))
    if skipped:
        print(f"resume: {skipped} finished unit(s) found in {run_dir / 'units'}, {len(tasks)} to run", file=out)

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
            make_executor(to_container(base.executor)).run(tasks, on_result)
    finally:
        units_bar.close()
        cells_bar.close()
    train_seconds = time.perf_counter() - t_train

    records = [r for r in (store.load(k) for k in all_keys) if r is not None]
    results, predictions = collect(records)
    write_tables(run_dir, results, predictions)
    _write_megc_logs(run_dir, predictions, list(next(iter(prep.tables.values())).classes))
    _write_aux(run_dir, records)
    _write_examples(run_dir, plan, prep)

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
    }
    if tracking_cfg.get("enabled"):
        from bench.tracking import log_run

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
    if failed:
        print(f"\n{len(failed)} unit(s) FAILED; tracebacks in {run_dir / 'results.csv'} (column 'error')", file=out)
    if base.report:
        from bench.report import make_report

        t0 = time.perf_counter()
        path = make_report(run_dir, Path(base.paths.reports) / study)
        facts["timings"]["report"] = round(time.perf_counter() - t0, 3)
        facts["wall_seconds"] = round(time.perf_counter() - t_start, 3)
        atomic_write_text(run_dir / "run.json", json.dumps(facts, indent=2, default=str))
        print(f"report: {path}", file=out)
    if facts.get("mlflow") and not facts["mlflow"].get("error"):
        print(f"mlflow: mlflow ui --backend-store-uri {facts['mlflow']['tracking_uri']} --host 127.0.0.1", file=out)
    print(f"done in {facts['wall_seconds']:.1f} s; results: {run_dir / 'results.parquet'}", file=out)
    return run_dir


def _dataset_facts(table) -> dict:
    counts = table.df["label"].value_counts().to_dict()
    return {"name": table.name, "n_samples": len(table), "n_subjects": len(table.subjects),
            "class_counts": {table.classes[int(k)]: int(v) for k, v in sorted(counts.items())},
            "problems": list(table.problems)[:50]}


def _write_megc_logs(run_dir: Path, predictions, classes: list[str]) -> None:
    """Each cell's predictions also in the MEGC2019 per-fold log format (``python -m bench.score`` reads it)."""
    import shutil

    from bench.prediction_files import write_megc_log

    out = run_dir / "predictions"
    shutil.rmtree(out, ignore_errors=True)  # a log per cell of *this* table only
    if len(predictions) == 0:
        return
    for keys, g in predictions.groupby(list(CELL_AXES), sort=True):
        safe = "__".join(str(k) for k in keys)
        safe = "".join(ch if ch.isalnum() or ch in "._-=," else "_" for ch in safe)
        write_megc_log(g, out / f"{safe}.txt", classes=classes)


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


def summary_table(predictions, n_classes: int):
    import pandas as pd

    from bench.metrics import pooled_scores

    rows = []
    if len(predictions) == 0:
        return pd.DataFrame()
    for keys, g in predictions.groupby(list(CELL_AXES), sort=True):
        s = pooled_scores(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), n_classes)
        rows.append(dict(zip(CELL_AXES, keys),
                         UF1=s["uf1"], UAR=s["uar"], ACC=s["acc"], n=len(g)))
    return pd.DataFrame(rows)


def print_summary(results, predictions, n_classes: int, out=None) -> None:
    out = out or sys.stdout
    tab = summary_table(predictions, n_classes)
    if tab.empty:
        print("no predictions (every unit failed?)", file=out)
        return
    print("\nPooled over all folds (MEGC2019 UF1/UAR):", file=out)
    print(tab.to_string(index=False, float_format=lambda v: f"{v:.3f}"), file=out)


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
    logging.basicConfig(level=os.environ.get("DUALFLOW_LOGLEVEL", "WARNING"),
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if show_cfg or plan_only:
            from omegaconf import OmegaConf

            plan = plan_study(argv)
            if show_cfg:
                print(OmegaConf.to_yaml(plan.base, resolve=False))
            print(f"# planned cells ({len(plan.cells)}):")
            for c in plan.cells:
                print(f"#   {c.label}  [{c.cfg_hash}]")
            for e in plan.excluded:
                print(f"#   excluded: {e}")
            return 0
        run_study(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
