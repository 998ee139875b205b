"""What a run writes beside its tables: MEGC2019 logs, model explanations, the audit, examples."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from bench.core.files import atomic_path
from bench.data import dataset_is_synthetic
from bench.results.tables import CELL_AXES, UnitRecordError

log = logging.getLogger("bench.run")


def gather_records(store, keys: list[str]) -> list[dict]:
    """Every unit's record, in plan order; a missing or broken one now means a damaged run dir."""
    records = [store.load(k) for k in keys]
    lost = [str(store.path(k)) for k, r in zip(keys, records) if r is None]
    if lost:  # every unit was run or resumed: a missing or broken record now is a damaged run dir
        raise UnitRecordError(f"{len(lost)} unit record(s) missing or invalid after the run (first: {lost[0]}: "
                           f"{store.problems.get(lost[0], 'missing')}); rerun the same command to redo them")
    return records


def write_side_files(run_dir: Path, records: list[dict], predictions, plan, prep, audit: bool) -> None:
    """The MEGC2019 logs, aux.npz, audit.parquet, examples.npz and the manifest of a finished run."""
    from bench.results.manifest import write_manifest

    write_megc_logs(run_dir, predictions, list(prep.first_table().classes))
    write_aux(run_dir, records)
    write_audit(run_dir, records, audit)
    write_examples(run_dir, plan, prep)
    write_manifest(run_dir, plan, prep)  # the data/preprocessing choices; the report shows it first


MAX_LOG_NAME = 200  # bytes of a log's file name before it is shortened (file systems allow 255)


def log_name(keys) -> str:
    """A cell's MEGC2019 log file name: its axes joined, unsafe characters replaced. A name past
    ``MAX_LOG_NAME`` bytes (long labels) keeps its first 120 characters and a digest of the whole,
    so it still names the cell, stays unique, and its ``.classes.json`` companion fits too."""
    full = "__".join(str(k) for k in keys)
    safe = "".join(ch if ch.isalnum() or ch in "._-=," else "_" for ch in full)
    if len(safe.encode()) + len(".txt") > MAX_LOG_NAME:
        head = safe.encode()[:120].decode(errors="ignore")  # whole characters only
        safe = f"{head}__{hashlib.sha256(full.encode()).hexdigest()[:16]}"
    return f"{safe}.txt"


def write_megc_logs(run_dir: Path, predictions, classes: list[str]) -> None:
    """Each cell's predictions also in the MEGC2019 per-fold log format (``python -m bench.score`` reads it)."""
    from bench.evaluation.prediction_files import companion_path, write_megc_log
    from bench.runtime.rundir import record_run_files, run_files

    out = run_dir / "predictions"
    logs = {}
    for keys, g in (predictions.groupby(list(CELL_AXES), sort=True) if len(predictions) else ()):
        logs[log_name(keys)] = g
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


def write_aux(run_dir: Path, records: list[dict]) -> None:
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
        with atomic_path(run_dir / "aux.npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})
    else:  # a previous run's explanations must not outlive the table they belonged to
        (run_dir / "aux.npz").unlink(missing_ok=True)


def write_audit(run_dir: Path, records: list[dict], audit: bool) -> None:
    """``audit.parquet``: the leakage audit's per-epoch test predictions (``bench.evaluation.audit``), written
    only with ``audit=true``; without it, a previous audited run's file goes, so a report never
    shows shortcuts of a table they were not computed with."""
    if not audit:
        for name in ("audit.parquet", "audit_inner.parquet"):
            (run_dir / name).unlink(missing_ok=True)
        return
    import tempfile

    from bench.evaluation.audit import audit_frame
    from bench.evaluation.grid_audit import inner_frame

    # audit_inner.parquet: one inner-validation score per unit (the honest configuration pick), when any
    for name, frame in (("audit.parquet", audit_frame(records)), ("audit_inner.parquet", inner_frame(records))):
        if name == "audit_inner.parquet" and not len(frame):
            (run_dir / name).unlink(missing_ok=True)
            continue
        fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, run_dir / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def write_examples(run_dir: Path, plan, prep) -> None:
    """One synthetic sample through every representation, for the report (never real data)."""
    ex = {}
    for cell in plan.cells:
        if not dataset_is_synthetic(cell.cfg["dataset"].get("name", "")):
            continue
        x, channels, _ = prep.representation(cell)
        ex[cell.representation.name] = x[0]
        ex[f"{cell.representation.name}__channels"] = np.asarray(channels)
    if ex:
        with atomic_path(run_dir / "examples.npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **ex)
    else:
        (run_dir / "examples.npz").unlink(missing_ok=True)
