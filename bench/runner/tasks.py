"""The units of a study: one ``UnitTask`` per cell x fold, keyed by config and data; finished ones skipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.core.hashing import stable_hash
from bench.results.tables import FoldExpectation, UnitStore, cell_columns
from bench.training.units import UnitTask


@dataclass
class UnitPlan:
    """Every unit's key (in plan order), the tasks still to run, and what resume found."""

    keys: list[str] = field(default_factory=list)
    tasks: list[UnitTask] = field(default_factory=list)
    skipped: int = 0  # finished units found on disk
    unaudited: int = 0  # finished units run again because they lack the audit's per-epoch predictions
    cell_units: dict[str, int] = field(default_factory=dict)  # units to run per cell label


@dataclass(frozen=True)
class RunContext:
    """What every unit of a run shares: where it writes, which commit, resume and audit."""

    study: str
    run_dir: Path
    commit: str
    resume: bool
    audit: bool
    audit_grid: bool = False  # audit=grid: every unit also holds an inner-validation score (bench.evaluation.grid_audit)


def plan_units(plan, prep, store: UnitStore, ctx: RunContext) -> UnitPlan:
    """Cross each cell with its folds; keep the units resume cannot skip."""
    units = UnitPlan()
    for cell in plan.cells:
        arrays = _cell_arrays(cell, prep)
        for fold in prep.fold_list(cell):
            key = stable_hash([cell.cfg_hash, fold.name, sorted(map(str, fold.test_subjects)),
                               prep.fold_digest(cell, fold)])
            units.keys.append(key)
            store.expect(key, _expectation(arrays, fold))
            if ctx.resume and store.is_done(key, audit=ctx.audit) and (not ctx.audit_grid or _has_inner(store, key)):
                units.skipped += 1
                continue
            units.unaudited += bool(ctx.audit and ctx.resume and store.is_done(key))
            units.cell_units[cell.label] = units.cell_units.get(cell.label, 0) + 1
            units.tasks.append(_task(cell, fold, key, arrays, ctx))
    return units


def _has_inner(store: UnitStore, key: str) -> bool:
    """With audit=grid, a finished unit also needs its inner-validation score (else it runs again)."""
    return "inner" in ((store.load(key) or {}).get("audit") or {})


def _cell_arrays(cell, prep) -> dict:
    """The arrays and labels every unit of a cell shares (one copy per cell, not per fold)."""
    _, table = prep.table(cell)
    x, channels, _flags = prep.representation(cell)
    df = table.df
    flows = None
    if cell.settings.tuning.tunes_representation:
        flows = prep.flowset(cell)[1].flows  # the tuner recomputes the representation per trial
    return dict(
        x=x, channels=channels, y=df["label"].to_numpy(dtype=np.int64), flows=flows,
        subjects=df["subject"].astype(str).to_numpy(), clips=df["clip"].astype(str).to_numpy(),
        source_datasets=df["dataset"].astype(str).to_numpy(), n_classes=len(table.classes),
        columns=cell_columns({a: getattr(cell, a).option for a in ("dataset", "flow", "representation", "model")},
                             cell.cfg))


def _expectation(arrays: dict, fold) -> FoldExpectation:
    """What the unit's record must hold, from this run's sample table (checked on resume and at the end)."""
    te = np.asarray(fold.test_idx)
    return FoldExpectation(subjects=tuple(arrays["subjects"][te].tolist()), clips=tuple(arrays["clips"][te].tolist()),
                           y_true=tuple(int(v) for v in arrays["y"][te]), n_classes=int(arrays["n_classes"]))


def _task(cell, fold, key: str, arrays: dict, ctx: RunContext) -> UnitTask:
    return UnitTask(
        study=ctx.study,
        labels={"dataset": cell.dataset.name, "flow": cell.flow.name,
                "representation": cell.representation.name, "model": cell.model.name},
        names={"representation": str(cell.cfg["representation"]["name"]), "model": str(cell.cfg["model"]["name"])},
        seed=cell.seed, fold=str(fold.name), train_idx=np.asarray(fold.train_idx),
        test_idx=np.asarray(fold.test_idx), cell_cfg=cell.cfg, cell_hash=cell.cfg_hash, unit_key=key,
        run_dir=str(ctx.run_dir), git_commit=ctx.commit, audit=ctx.audit, audit_grid=ctx.audit_grid, settings=cell.settings, **arrays)


def resume_notes(units: UnitPlan, store: UnitStore, run_dir: Path, out) -> None:
    """Say what resume found: audited reruns, finished units kept, damaged records redone."""
    if units.unaudited:
        print(f"audit: {units.unaudited} finished unit(s) were run without audit=true (no per-epoch predictions); "
              "running them again (same seeds, same headline)", file=out)
    if units.skipped:
        print(f"resume: {units.skipped} finished unit(s) found in {run_dir / 'units'}, {len(units.tasks)} to run",
              file=out)
    for path, problem in store.problems.items():
        print(f"resume: {path} is not a valid unit record ({problem}); redoing that unit", file=out)
