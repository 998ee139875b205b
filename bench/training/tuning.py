"""Nested hyper-parameter tuning with Optuna, on the training subjects of one outer fold only.

For each outer fold: a TPE study (seeded) samples the configured space; each trial is scored by
subject-grouped inner cross-validation over the fold's training subjects (predictions pooled over
the inner folds, then UF1/UAR/acc); the best parameters retrain on all training subjects and the
test subject is scored once, by the caller. The test indices are never passed in here. The storage is
a real Optuna storage under the run directory (``optuna.journal`` by default, safe for several worker
processes; ``optuna-dashboard runs/<study>/optuna.journal`` opens it, or
``optuna-dashboard sqlite:///runs/<study>/optuna.db`` with ``tuning.storage=sqlite``), one Optuna
study per unit, so a killed run resumes its tuning where it stopped.

Study names read ``<cell> / fold <fold>`` (the cell label ``dataset|flow|representation|model|seed``;
under LOSO the fold is the test subject), so the dashboard's list names each outer fold. The unit key
(config and data digest) is a user attribute: a study of that name left by another config or data is
stale, and is deleted and tuned again rather than resumed.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SPACE_ROOTS = ("trainer", "model", "representation")


def make_storage(run_dir: str | Path, kind: str):
    import optuna

    run_dir = Path(run_dir)
    if kind == "sqlite":
        return optuna.storages.RDBStorage(f"sqlite:///{run_dir / 'optuna.db'}",
                                          engine_kwargs={"connect_args": {"timeout": 60}})
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(run_dir / "optuna.journal")))
    raise ValueError(f"unknown tuning.storage {kind!r}: use journal or sqlite")


def flatten_space(space: dict, prefix: str = "") -> dict:
    """``{trainer: {lr: {type: ...}}}`` -> ``{"trainer.lr": {type: ...}}`` (a leaf is a mapping with ``type``)."""
    out = {}
    for k, v in (space or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and "type" not in v:
            out.update(flatten_space(v, key + "."))
        elif isinstance(v, dict):
            out[key] = v
        else:
            raise ValueError(f"tuning.space.{key}: expected a mapping with 'type' (float, int, categorical), got {v!r}")
    return out


def suggest(trial, space: dict) -> dict:
    out = {}
    for key, spec in space.items():
        kind = spec.get("type", "float")
        if kind == "float":
            out[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False)),
                                           step=spec.get("step"))
        elif kind == "int":
            out[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), step=int(spec.get("step", 1)),
                                         log=bool(spec.get("log", False)))
        elif kind == "categorical":
            out[key] = trial.suggest_categorical(key, list(spec["choices"]))
        else:
            raise ValueError(f"tuning.space.{key}: unknown type {kind!r} (float, int, categorical)")
    return out


def apply_params(params: dict, cfgs: dict) -> dict:
    """Dotted keys (``trainer.lr``, ``model.dropout``, ``representation.theta1``) onto config dicts."""
    cfgs = copy.deepcopy(cfgs)
    for key, value in params.items():
        root, *path = key.split(".")
        if root not in SPACE_ROOTS or not path:
            raise ValueError(f"tuning.space key {key!r} must start with one of {', '.join(SPACE_ROOTS)}")
        node = cfgs[root]
        for p in path[:-1]:
            node = node.setdefault(p, {})
        if path[-1] not in node and root != "model":
            raise ValueError(f"tuning.space key {key!r}: {root} has no parameter {path[-1]!r}")
        node[path[-1]] = value
    return cfgs


def study_name(task) -> str:
    """The Optuna study of one unit, as the dashboard lists it: ``<cell> / fold <fold>``."""
    return f"{task.cell} / fold {task.fold}"


def tune_unit(task, train_idx, model_cfg: dict, trainer_cfg: dict, tuning: dict):
    """Returns (chosen params, model cfg, trainer cfg, x) for the final retrain on ``train_idx``."""
    import optuna
    import pandas as pd

    from bench.training.fold import represent, train_and_predict
    from bench.evaluation.metrics import pooled_scores
    from bench.protocols.folds import assert_disjoint, inner_folds

    space = flatten_space(tuning.get("space") or {})
    if not space:
        raise ValueError("tuning.n_trials > 0 but tuning.space is empty")
    tunes_rep = any(k.startswith("representation.") for k in space)
    if tunes_rep and task.flows is None:
        raise ValueError("tuning a representation parameter needs the flows in the unit (runner bug)")
    train_idx = np.asarray(train_idx)
    train_subjects = set(task.subjects[train_idx])
    df = pd.DataFrame({"subject": task.subjects, "label": task.y})
    folds = inner_folds(df, train_idx, k=int(tuning.get("inner_folds", 3)), seed=task.seed)
    for i, (fit_idx, val_idx) in enumerate(folds):
        # Belt and braces: the inner folds live inside the outer training set and split it by subject.
        if not set(task.subjects[fit_idx]) | set(task.subjects[val_idx]) <= train_subjects:
            raise AssertionError(f"inner fold {i} of outer fold {task.fold} uses subjects outside its training set")
        assert_disjoint(set(task.subjects[fit_idx]), set(task.subjects[val_idx]), what=f"inner fold {i} of {task.fold}")
    metric = tuning.get("metric", "uf1")
    base = {"trainer": dict(trainer_cfg), "model": dict(model_cfg), "representation": dict(task.cell_cfg["representation"])}

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=int(tuning.get("sampler_seed", 0)) + int(task.seed))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2) if tuning.get("pruner") == "median" else optuna.pruners.NopPruner()
    storage = make_storage(task.run_dir, tuning.get("storage", "journal"))
    name = study_name(task)
    try:
        old = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        old = None
    if old is not None and old.user_attrs.get("unit_key") != task.unit_key:
        log.info("tuning: study %r was tuned for another config or data (unit %s); tuning it again",
                 name, old.user_attrs.get("unit_key"))
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(study_name=name, storage=storage,
                                direction="maximize", sampler=sampler, pruner=pruner, load_if_exists=True)
    study.set_user_attr("unit_key", task.unit_key)
    study.set_user_attr("fold", task.fold)
    study.set_user_attr("cell", task.cell)

    def objective(trial):
        cfgs = apply_params(suggest(trial, space), base)
        t = dataclasses.replace(task, x=represent(cfgs["representation"], task.flows)[0]) if tunes_rep else task
        yt, yp = [], []
        for step, (fit_idx, val_idx) in enumerate(folds):
            out = train_and_predict(t, fit_idx, val_idx, cfgs["model"], cfgs["trainer"])
            yt.append(task.y[val_idx])
            yp.append(out["probs"].argmax(1))
            score = pooled_scores(np.concatenate(yt), np.concatenate(yp), task.n_classes)[metric]
            trial.report(score, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return score

    done = sum(t.state.is_finished() for t in study.trials)
    remaining = max(0, int(tuning["n_trials"]) - done)
    if remaining:
        study.optimize(objective, n_trials=remaining, timeout=tuning.get("timeout_s"), gc_after_trial=False)
    best = dict(study.best_params)
    cfgs = apply_params(best, base)
    x = represent(cfgs["representation"], task.flows)[0] if tunes_rep else task.x
    chosen = {**best, "inner_score": float(study.best_value), "n_trials": len(study.trials)}
    return chosen, cfgs["model"], cfgs["trainer"], x
