"""One unit of work: train on a fold's training subjects, score its test subject(s) once.

``run_unit`` is a pure function of a ``UnitTask`` (arrays + plain config dicts), so the local
process pool and Ray run exactly the same code. The test fold's tensors never reach ``fit`` or the
tuner: they are sliced out only for the single ``predict`` at the end (with ``audit=true``, also
for one read-only prediction per saved epoch after training, kept apart in the record's ``audit``).
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.core.config import ConfigError
from bench.results.tables import CELL_AXES
from bench.training.fold import train_and_predict
from bench.training.settings import CellSettings


@dataclass
class UnitTask:
    study: str
    labels: dict  # axis -> label: dataset, flow, representation, model
    names: dict  # axis -> registry name: representation, model
    seed: int
    fold: str
    train_idx: np.ndarray
    test_idx: np.ndarray
    x: np.ndarray  # (N, C, H, W) float32, the whole dataset's representation
    y: np.ndarray  # (N,) int64
    subjects: np.ndarray  # (N,) str
    clips: np.ndarray  # (N,) str
    source_datasets: np.ndarray  # (N,) str
    channels: tuple
    n_classes: int
    cell_cfg: dict  # resolved cell config (model, trainer, protocol, tuning, representation, ...)
    cell_hash: str
    unit_key: str
    run_dir: str
    threads: int = 1
    timeout_s: float = 0.0  # set by the executor (executor.unit_timeout_s); 0 = none
    git_commit: str = ""
    flows: np.ndarray | None = None  # (N, 2, 2, H, W), only when tuning recomputes the representation
    columns: dict = field(default_factory=dict)  # the cell's parameter columns (bench.results.tables.cell_columns)
    audit: bool = False  # the leakage audit (root key audit): also predict the test fold with every epoch's weights
    audit_grid: bool = False  # audit=grid: also an inner-validation score without the trainer's (one extra fit)
    settings: CellSettings | None = None  # the planner's typed settings; None: parsed from cell_cfg once

    def __post_init__(self):
        if self.settings is None:  # a library caller that built the task by hand
            self.settings = CellSettings.from_cell_config(self.cell_cfg)

    @property
    def cell(self) -> str:
        """The cell label ``dataset|flow|representation|model|seed`` (as in the results table)."""
        return "|".join([*(self.labels[k] for k in CELL_AXES[:-1]), str(self.seed)])

    def run(self) -> dict:
        """Run this unit (what an executor calls): ``run_unit``."""
        return run_unit(self)

    def failed(self, error: str) -> dict:
        """The record of this unit when it could not run (its worker died, its Ray task failed)."""
        return failure_record(self, error)


def _base_row(task: UnitTask) -> dict[str, Any]:
    return {
        "study": task.study, **{k: task.labels[k] for k in CELL_AXES[:-1]},
        "representation_name": task.names["representation"], "model_name": task.names["model"],
        "seed": task.seed, "fold": task.fold,
        "cell": task.cell,
        "cell_hash": task.cell_hash, "unit_key": task.unit_key,
        "git_commit": task.git_commit,
        "test_subjects": ";".join(sorted(set(task.subjects[task.test_idx].tolist()))),
        "n_train": int(len(task.train_idx)), "n_test": int(len(task.test_idx)), "n_val": 0,
        "rep_params": json.dumps(task.cell_cfg["representation"], sort_keys=True, default=str),
        "model_params": json.dumps(task.cell_cfg["model"], sort_keys=True, default=str),
        "status": "ok", "error": "", "tune_seconds": 0.0,
        **task.columns,
    }


def failure_record(task: UnitTask, error: str, row: dict | None = None) -> dict:
    """A unit record with status 'failed' (same columns as a finished one, zeros for its figures)."""
    row = dict(row or _base_row(task))
    row.update(status="failed", error=error)
    # Wall-clock epoch seconds (MLflow's run times). A record made outside the unit (a crashed or
    # timed-out worker) has no start: it spans no time, at the moment it was recorded.
    row.setdefault("finished_at", time.time())
    row.setdefault("started_at", row["finished_at"])
    for k in ("fold_uf1", "fold_uar", "fold_acc", "train_seconds", "predict_seconds"):
        row.setdefault(k, 0.0)
    row.setdefault("epochs_run", 0)
    row.setdefault("best_epoch", -1)
    row.setdefault("hparams", "{}")
    return {"row": row, "predictions": [], "history": [], "aux": None}


def run_unit(task: UnitTask) -> dict:
    """Run one unit; never raises (a failure is a record with status 'failed' and its traceback)."""
    row = _base_row(task)
    row["started_at"] = time.time()  # wall clock (epoch seconds), for MLflow's run start and end
    try:
        import torch

        torch.set_num_threads(max(1, int(task.threads)))
        rec = _run(task, row)
        rec["row"]["finished_at"] = time.time()
        return rec
    except Exception:  # noqa: BLE001 - the study goes on; the record keeps the traceback
        return failure_record(task, traceback.format_exc(limit=20), row)


def _run(task: UnitTask, row: dict) -> dict:
    from bench.evaluation.metrics import pooled_scores
    from bench.protocols.folds import Fold, assert_disjoint

    tr, te = np.asarray(task.train_idx), np.asarray(task.test_idx)
    assert_disjoint(set(task.subjects[tr]), set(task.subjects[te]), what=f"outer fold {task.fold}")
    model_cfg = dict(task.cell_cfg["model"])
    trainer_cfg = dict(task.cell_cfg["trainer"])
    chosen: dict = {}
    if task.settings.tuning.enabled:
        from bench.training.tuning import tune_unit

        t0 = time.perf_counter()
        chosen, model_cfg, trainer_cfg, x = tune_unit(task, tr, model_cfg, trainer_cfg, task.settings.tuning.node)
        task = dataclasses.replace(task, x=x)
        row["tune_seconds"] = time.perf_counter() - t0

    spec = task.settings.protocol
    fit_idx, val_idx = tr, None
    import pandas as pd

    table = pd.DataFrame({"subject": task.subjects, "label": task.y})
    split = spec.inner_split(table, Fold(task.fold, tr, te, (), ()), unit_seed=task.seed)  # checks every side
    if split is not None:
        fit_idx, val_idx = split
        row["n_val"] = int(len(val_idx))
        if spec.validation.selection == "best_epoch" and not trainer_cfg.get("early_stopping_patience"):
            # Keep the epoch with the best validation score (on training subjects) over the whole budget.
            trainer_cfg["early_stopping_patience"] = int(trainer_cfg["epochs"])

    out = train_and_predict(task, fit_idx, te, model_cfg, trainer_cfg, val_idx=val_idx, want_aux=True,
                            audit=task.audit)
    res, probs = out["fit"], out["probs"]
    from bench.training.costs import model_costs  # once trained and predicted: changes no weight, no RNG stream
    row.update(model_costs(out["model"], task.x.shape[1:]))  # n_params, flops_per_sample
    y_pred = probs.argmax(1)
    y_true = task.y[te]
    s = pooled_scores(y_true, y_pred, task.n_classes)
    hparams = {"trainer": {k: v for k, v in trainer_cfg.items() if k != "augment"}, "model": model_cfg, "tuned": chosen}
    row.update(fold_uf1=float(s["uf1"]), fold_uar=float(s["uar"]), fold_acc=float(s["acc"]),
               epochs_run=int(res.epochs_run), best_epoch=int(res.best_epoch), train_seconds=float(res.seconds),
               predict_seconds=float(out["predict_seconds"]), hparams=json.dumps(hparams, sort_keys=True, default=str))
    # Whatever the model explains about its predictions (forward(..., return_aux=True)), one row per
    # test sample, is kept per unit (the runner gathers it into aux.npz for the report).
    aux_out = {k: np.asarray(v, dtype=np.float32).tolist() for k, v in (out["aux"] or {}).items()
               if v is not None and np.ndim(v) >= 1 and len(v) == len(te)} or None
    preds = []
    for j, i in enumerate(te):
        rec = {"study": task.study, **{k: task.labels[k] for k in CELL_AXES[:-1]},
               "seed": task.seed, "fold": task.fold, "subject": str(task.subjects[i]), "clip": str(task.clips[i]),
               "source_dataset": str(task.source_datasets[i]), "y_true": int(y_true[j]), "y_pred": int(y_pred[j])}
        rec.update({f"prob_{k}": float(probs[j, k]) for k in range(probs.shape[1])})
        preds.append(rec)
    rec = {"row": row, "predictions": preds, "history": list(res.history), "aux": aux_out}
    if task.audit:  # leaky by design: kept apart from row and predictions (bench.evaluation.audit reads it)
        rec["audit"] = {"epochs": out["audit"]["epochs"], "y_pred": out["audit"]["y_pred"].tolist(),
                        "seconds": float(out["audit_seconds"])}
        inner = _inner_score(task, res, split, tr, te, model_cfg, trainer_cfg, table)
        if inner is not None:
            rec["audit"]["inner"] = inner
    return rec


def _inner_score(task: UnitTask, res, split, tr, te, model_cfg: dict, trainer_cfg: dict, table) -> dict | None:
    """The leakage audit's inner-validation score of this unit (``bench.evaluation.grid_audit``), made
    after the headline is final: the trainer's own validation subjects when it has them (its history at
    the kept epoch), else, only with ``audit=grid``, one extra fit on the training subjects less 20 % of
    them held out (``bench.protocols.folds.inner_split``), scored on those. The test fold is never read."""
    from bench.evaluation.metrics import pooled_scores

    if split is not None:
        hist = [h for h in res.history if h.get("val_uf1") is not None]
        if not hist:
            return None
        at = [h for h in hist if int(h["epoch"]) == int(res.best_epoch)] or hist[-1:]
        return {"uf1": float(at[0]["val_uf1"]), "uar": float(at[0]["val_uar"]), "n_val": int(len(split[1])),
                "validation": "the trainer's validation subjects (protocol.validation)", "seconds": 0.0}
    if not task.audit_grid or len(set(task.subjects[tr])) < 2:
        return None
    from bench.protocols.folds import inner_split

    t0 = time.perf_counter()
    fit_idx, val_idx = inner_split(table, tr, val_fraction=0.2, seed=task.seed, test_idx=te)
    out = train_and_predict(task, fit_idx, val_idx, model_cfg, dict(trainer_cfg))
    s = pooled_scores(task.y[val_idx], np.asarray(out["probs"]).argmax(1), task.n_classes)
    return {"uf1": float(s["uf1"]), "uar": float(s["uar"]), "n_val": int(len(val_idx)),
            "validation": "an extra fit holding out 20% of the training subjects (audit=grid)",
            "seconds": time.perf_counter() - t0}


def check_tasks(tasks: list[UnitTask]) -> None:
    """Refuse before any unit starts what would fail every unit of a cell and is known only once
    the data is loaded: a ``trainer.class_weights`` list whose length is not the class count."""
    seen = set()
    for t in tasks:
        if t.cell_hash in seen:
            continue
        seen.add(t.cell_hash)
        cw = t.settings.trainer.class_weights
        if isinstance(cw, (list, tuple)) and len(cw) != t.n_classes:
            raise ConfigError(f"cell {t.cell}: trainer.class_weights has {len(cw)} entries {list(cw)} but the "
                              f"dataset has {t.n_classes} classes; give one weight per class (or 'balanced' / 'none')")
