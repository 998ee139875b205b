"""One unit of work: train on a fold's training subjects, score its test subject(s) once.

``run_unit`` is a pure function of a ``UnitTask`` (arrays + plain config dicts), so the local
process pool and Ray run exactly the same code. The test fold's tensors never reach ``fit`` or the
tuner: they are sliced out only for the single ``predict`` at the end.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.results import CELL_AXES


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
    extras: dict = field(default_factory=dict)

    @property
    def cell(self) -> str:
        """The cell label ``dataset|flow|representation|model|seed`` (as in the results table)."""
        return "|".join([*(self.labels[k] for k in CELL_AXES[:-1]), str(self.seed)])


def split_params(cfg: dict) -> tuple[str, dict]:
    params = dict(cfg)
    return str(params.pop("name")), params


def build_trainer(trainer_cfg: dict, seed: int, channels: tuple):
    """TrainConfig + the flow-respecting augmentation from the ``trainer`` config node."""
    from bench.engine import TrainConfig
    from representations.augment import FlowAugment

    params = dict(trainer_cfg)
    aug_cfg = params.pop("augment", None) or {}
    params["seed"] = seed
    augment = FlowAugment(channels, **aug_cfg) if aug_cfg and any(aug_cfg.values()) else None
    return TrainConfig.from_mapping(params), augment


def train_and_predict(task: UnitTask, fit_idx, eval_idx, model_cfg: dict, trainer_cfg: dict, *,
                      val_idx=None, want_aux: bool = False) -> dict:
    """Fit on ``fit_idx`` (early-stopping on ``val_idx`` if given), predict ``eval_idx``."""
    import torch

    from bench.engine import fit, predict_aux, predict_proba
    from models import create_model

    name, params = split_params(model_cfg)
    tcfg, augment = build_trainer(trainer_cfg, task.seed, task.channels)
    torch.manual_seed(task.seed)  # model init is part of the seeded, reproducible unit
    model = create_model(name, in_chans=task.x.shape[1], num_classes=task.n_classes, **params)
    xt = torch.from_numpy(task.x[fit_idx])
    yt = torch.from_numpy(task.y[fit_idx])
    val = None
    if val_idx is not None and len(val_idx):
        val = (torch.from_numpy(task.x[val_idx]), torch.from_numpy(task.y[val_idx]))
    res = fit(model, xt, yt, tcfg, val=val, augment=augment)
    xe = torch.from_numpy(task.x[eval_idx])
    t0 = time.perf_counter()
    aux = None
    if want_aux and getattr(model, "supports_aux", False):
        probs, aux = predict_aux(model, xe)
    else:
        probs = predict_proba(model, xe)
    return {"fit": res, "probs": np.asarray(probs), "aux": aux, "predict_seconds": time.perf_counter() - t0}


def _base_row(task: UnitTask) -> dict[str, Any]:
    import json

    return {
        "study": task.study, **{k: task.labels[k] for k in CELL_AXES[:-1]},
        "representation_name": task.names["representation"], "model_name": task.names["model"],
        "seed": task.seed, "fold": task.fold,
        "cell": task.cell,
        "cell_hash": task.cell_hash, "unit_key": task.unit_key, "config_hash": task.cell_hash,
        "git_commit": task.git_commit,
        "test_subjects": ";".join(sorted(set(task.subjects[task.test_idx].tolist()))),
        "n_train": int(len(task.train_idx)), "n_test": int(len(task.test_idx)), "n_val": 0,
        "rep_params": json.dumps(task.cell_cfg["representation"], sort_keys=True, default=str),
        "model_params": json.dumps(task.cell_cfg["model"], sort_keys=True, default=str),
        "status": "ok", "error": "", "tune_seconds": 0.0,
        "fusion_weight_phase1": -1.0, "fusion_weight_phase2": -1.0,
    }


def failure_record(task: UnitTask, error: str, row: dict | None = None) -> dict:
    """A unit record with status 'failed' (same columns as a finished one, zeros for its figures)."""
    row = dict(row or _base_row(task))
    row.update(status="failed", error=error)
    for k in ("fold_uf1", "fold_uar", "fold_acc", "train_seconds", "predict_seconds"):
        row.setdefault(k, 0.0)
    row.setdefault("epochs_run", 0)
    row.setdefault("best_epoch", -1)
    row.setdefault("hparams", "{}")
    return {"row": row, "predictions": [], "history": [], "aux": None}


def run_unit(task: UnitTask) -> dict:
    """Run one unit; never raises (a failure is a record with status 'failed' and its traceback)."""
    row = _base_row(task)
    try:
        import torch

        torch.set_num_threads(max(1, int(task.threads)))
        return _run(task, row)
    except Exception:  # noqa: BLE001 - the study goes on; the record keeps the traceback
        return failure_record(task, traceback.format_exc(limit=20), row)


def _run(task: UnitTask, row: dict) -> dict:
    import json

    from bench.metrics import pooled_scores
    from bench.protocol import assert_disjoint, inner_split

    tr, te = np.asarray(task.train_idx), np.asarray(task.test_idx)
    assert_disjoint(set(task.subjects[tr]), set(task.subjects[te]), what=f"outer fold {task.fold}")
    model_cfg = dict(task.cell_cfg["model"])
    trainer_cfg = dict(task.cell_cfg["trainer"])
    tuning = task.cell_cfg.get("tuning") or {}
    chosen: dict = {}
    if int(tuning.get("n_trials") or 0) > 0:
        from bench.tuning import tune_unit

        t0 = time.perf_counter()
        chosen, model_cfg, trainer_cfg, x = tune_unit(task, tr, model_cfg, trainer_cfg, tuning)
        task = dataclasses.replace(task, x=x)
        row["tune_seconds"] = time.perf_counter() - t0

    from bench.protocol import ProtocolSpec

    spec = ProtocolSpec.from_mapping(task.cell_cfg["protocol"])
    v = spec.validation
    fit_idx, val_idx = tr, None
    if v.mode == "subjects":
        import pandas as pd

        df = pd.DataFrame({"subject": task.subjects, "label": task.y})
        fit_idx, val_idx = inner_split(df, tr, val_fraction=v.val_fraction, n_val_subjects=v.n_val_subjects,
                                       seed=task.seed if v.seed is None else v.seed, stratify=v.stratify, test_idx=te)
        assert_disjoint(set(task.subjects[fit_idx]), set(task.subjects[val_idx]), what=f"inner validation of fold {task.fold}")
        assert_disjoint(set(task.subjects[val_idx]), set(task.subjects[te]), what=f"validation vs test of fold {task.fold}")
        row["n_val"] = int(len(val_idx))
        if v.selection == "best_epoch" and not trainer_cfg.get("early_stopping_patience"):
            # Keep the epoch with the best validation score (on training subjects) over the whole budget.
            trainer_cfg["early_stopping_patience"] = int(trainer_cfg["epochs"])

    out = train_and_predict(task, fit_idx, te, model_cfg, trainer_cfg, val_idx=val_idx, want_aux=True)
    res, probs = out["fit"], out["probs"]
    y_pred = probs.argmax(1)
    y_true = task.y[te]
    s = pooled_scores(y_true, y_pred, task.n_classes)
    hparams = {"trainer": {k: v for k, v in trainer_cfg.items() if k != "augment"}, "model": model_cfg, "tuned": chosen}
    row.update(fold_uf1=float(s["uf1"]), fold_uar=float(s["uar"]), fold_acc=float(s["acc"]),
               epochs_run=int(res.epochs_run), best_epoch=int(res.best_epoch), train_seconds=float(res.seconds),
               predict_seconds=float(out["predict_seconds"]), hparams=json.dumps(hparams, sort_keys=True, default=str))
    aux = out["aux"]
    aux_out = None
    if aux:
        fw = aux.get("fusion_weights")
        if fw is not None:
            fw = np.asarray(fw, dtype=float)
            row["fusion_weight_phase1"], row["fusion_weight_phase2"] = (float(v) for v in fw.mean(0)[:2])
        aux_out = {k: np.asarray(v, dtype=np.float32).tolist() for k, v in aux.items()
                   if v is not None and k in ("fusion_weights", "attention")}
    preds = []
    for j, i in enumerate(te):
        rec = {"study": task.study, **{k: task.labels[k] for k in CELL_AXES[:-1]},
               "seed": task.seed, "fold": task.fold, "subject": str(task.subjects[i]), "clip": str(task.clips[i]),
               "source_dataset": str(task.source_datasets[i]), "y_true": int(y_true[j]), "y_pred": int(y_pred[j])}
        rec.update({f"prob_{k}": float(probs[j, k]) for k in range(probs.shape[1])})
        preds.append(rec)
    return {"row": row, "predictions": preds, "history": list(res.history), "aux": aux_out}
