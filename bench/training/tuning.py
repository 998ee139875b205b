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

What the dashboard shows (issue 28): the objective is named ``inner_cv_<metric>`` (``inner_cv_uf1``,
``study.set_metric_names``); each trial's user attributes hold each inner fold's own score
(``inner_fold_<metric>``), its epochs run and the trial's seconds; each study's user attributes name
its cell, outer fold and outer test subject(s), and its note (``optuna_dashboard.save_note`` when the
dashboard is installed, else the user attribute ``note``) says the objective never sees that subject.
One journal per run, not one per cell: one command opens every study, resume and the journal check
keep one file, and a cell's folds are grouped by name (the dashboard's search box keeps the studies
whose name holds every typed word, e.g. the cell label); units run cell by cell, so the list's order
(creation) groups them too. Whether the folds agreed is the report's "Selected hyper-parameters".
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from bench.core.config import ConfigError

log = logging.getLogger(__name__)

SPACE_ROOTS = ("trainer", "model", "representation")
JOURNAL = "optuna.journal"


def make_storage(run_dir: str | Path, kind: str):
    import optuna

    run_dir = Path(run_dir)
    if kind == "sqlite":
        return optuna.storages.RDBStorage(f"sqlite:///{run_dir / 'optuna.db'}",
                                          engine_kwargs={"connect_args": {"timeout": 60}})
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        path = run_dir / JOURNAL
        try:  # opening replays the journal: a damaged one is named here, not as optuna's bare error
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        except (ValueError, KeyError, AssertionError, TypeError) as e:
            raise ConfigError(_damaged(path, f"its records do not replay ({type(e).__name__}: {e})")) from None
    raise ValueError(f"unknown tuning.storage {kind!r}: use journal or sqlite")


def check_tuning_storage(run_dir: str | Path, cells, out=None) -> None:
    """Before any training: the journal of a study whose cells tune (``tuning.storage=journal``) is
    checked (``check_journal``); a repair is printed as a ``warning:`` line on ``out``."""
    tuned = [c.settings.tuning for c in cells if c.settings is not None and c.settings.tuning.enabled]
    if any(t.node.get("storage", "journal") == "journal" for t in tuned):
        note = check_journal(Path(run_dir) / JOURNAL)
        if note:
            print(f"warning: {note}", file=out or sys.stdout)


def check_journal(path: str | Path) -> str | None:
    """Refuse a damaged Optuna journal, or cut off a torn last line; returns the warning of a repair.

    Called by the runner before any unit starts, with the run directory locked, so no other writer
    can be appending. The judgement: a last line without its newline is an append that was
    interrupted (a kill, a full disk): optuna writes each record with its newline in one write, and
    its reader already skips such a line, but its next append is glued onto the torn bytes and lost
    (``AssertionError: Should not reach.`` in every tuned unit). Cutting it keeps exactly what optuna
    reads, so it is repaired with a warning naming the file. Anything else (a complete line that is
    not a JSON record, damage before the last line, records that do not replay) is not an interrupted
    write: it is refused (``ConfigError``) naming the file and line, and the fix is the user's choice:
    move the journal away to tune afresh (finished units are kept; unfinished ones tune again).
    """
    path = Path(path)
    if not path.is_file():
        return None
    good, note = 0, None  # good: bytes up to the end of the last complete line
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                note = (f"{path}: its last line was torn (an interrupted write, {len(line)} bytes without a "
                        f"newline); cut it off, the {n - 1} complete record(s) before it are kept")
                break
            why = _journal_line_problem(line)
            if why:
                raise ConfigError(_damaged(path, f"line {n} {why}"))
            good += len(line)
    if note:
        with open(path, "r+b") as f:
            f.truncate(good)
            os.fsync(f.fileno())
        log.warning(note)
    make_storage(path.parent, "journal")  # replay every record: one that does not apply is refused, named
    return note


def _journal_line_problem(line: bytes) -> str | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return "is not JSON"
    if not isinstance(rec, dict) or not isinstance(rec.get("op_code"), int):
        return "is not an Optuna journal record (no op_code)"
    try:
        from optuna.storages.journal._storage import JournalOperation  # private: checked when present
    except ImportError:
        return None
    return None if rec["op_code"] in {int(o) for o in JournalOperation} else f"has an unknown op_code {rec['op_code']}"


def _damaged(path: Path, why: str) -> str:
    return (f"{path}: the Optuna journal is damaged ({why}), so every tuned unit would fail. Move it away "
            f"to start tuning afresh (mv {path} {path}.damaged); finished units are kept, unfinished ones "
            f"tune again")


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


def objective_name(metric: str) -> str:
    """The study's metric name (``study.set_metric_names``): ``inner_cv_uf1`` for ``tuning.metric=uf1``."""
    return f"inner_cv_{metric}"


# Keys of a unit's chosen dict (``hparams["tuned"]``) that are not tuned hyper-parameters.
CHOSEN_META = ("inner_score", "n_trials", "objective")


def tuned_params(chosen: dict) -> dict:
    """The tuned hyper-parameters of a unit's chosen dict (dotted keys under ``SPACE_ROOTS``)."""
    return {k: v for k, v in (chosen or {}).items() if k not in CHOSEN_META and k.split(".")[0] in SPACE_ROOTS}


def study_note(task, train_subjects: set, n_inner: int, metric: str) -> str:
    """The study's note (Markdown, shown by optuna-dashboard): the cell, the outer test subject(s)
    and what the objective is, so a reader of the dashboard knows the test subject is never in it."""
    test = ", ".join(sorted(map(str, set(task.subjects[np.asarray(task.test_idx)]))))
    return (f"**Cell** `{task.cell}`, **outer fold** `{task.fold}`: outer test subject(s) {test}.\n\n"
            f"**Objective** `{objective_name(metric)}`: {metric.upper()} of the predictions pooled over "
            f"{n_inner} subject-grouped inner folds of this fold's {len(train_subjects)} training subjects only. "
            f"The objective never sees the outer test subject(s) {test}: no trial trains, validates or scores "
            f"on them. The best trial's parameters retrain on all training subjects, and the test subject is "
            f"scored once, after tuning (the unit's fold_uf1 in results.parquet).\n\n"
            f"The other outer folds of this cell are the studies named `{task.cell} / fold ...` "
            f"(type the cell in the study list's search box); the report's \"Selected hyper-parameters\" "
            f"section shows the values every fold chose.")


def _check_inner_folds(task, folds, train_subjects: set) -> None:
    from bench.protocols.folds import assert_disjoint

    for i, (fit_idx, val_idx) in enumerate(folds):
        # Belt and braces: the inner folds live inside the outer training set and split it by subject.
        if not set(task.subjects[fit_idx]) | set(task.subjects[val_idx]) <= train_subjects:
            raise AssertionError(f"inner fold {i} of outer fold {task.fold} uses subjects outside its training set")
        assert_disjoint(set(task.subjects[fit_idx]), set(task.subjects[val_idx]), what=f"inner fold {i} of {task.fold}")


def _open_study(task, tuning: dict):
    """The unit's study, resumed (same unit key) or made afresh (none, or left by another config/data)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=int(tuning.get("sampler_seed", 0)) + int(task.seed))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2) if tuning.get("pruner") == "median" else optuna.pruners.NopPruner()
    storage = make_storage(task.run_dir, tuning.get("storage", "journal"))
    name = study_name(task)
    try:
        old = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        old = None
    if old is not None and old.user_attrs.get("unit_key") == task.unit_key:
        return old  # resumed as it stands (create_study would append a record to the journal)
    if old is not None:
        log.info("tuning: study %r was tuned for another config or data (unit %s); tuning it again",
                 name, old.user_attrs.get("unit_key"))
        optuna.delete_study(study_name=name, storage=storage)
    return optuna.create_study(study_name=name, storage=storage,
                               direction="maximize", sampler=sampler, pruner=pruner, load_if_exists=True)


def _describe_study(study, task, train_subjects: set, n_inner: int, metric: str) -> None:
    """What optuna-dashboard shows of the study: its metric name, user attributes naming the cell and
    the outer fold, and the note (``optuna_dashboard.save_note`` when installed, else user attr ``note``)."""
    import warnings

    import optuna

    test = sorted(map(str, set(task.subjects[np.asarray(task.test_idx)])))
    attrs = {"unit_key": task.unit_key, "fold": task.fold, "cell": task.cell, "cell_hash": task.cell_hash,
             "outer_test_subjects": test, "n_train_subjects": len(train_subjects), "inner_folds": n_inner,
             "objective": f"{objective_name(metric)}: inner CV on the training subjects only"}
    for k, v in attrs.items():
        if study.user_attrs.get(k) != v:
            study.set_user_attr(k, v)
    if study.metric_names != [objective_name(metric)]:
        with warnings.catch_warnings():  # experimental since optuna 3.2; the name is all we set
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([objective_name(metric)])
    note = study_note(task, train_subjects, n_inner, metric)
    try:
        from optuna_dashboard import get_note, save_note
    except ImportError:  # the dashboard is an optional extra: its note as a plain user attribute
        if study.user_attrs.get("note") != note:
            study.set_user_attr("note", note)
        return
    if get_note(study) != note:
        save_note(study, note)


def _objective(task, folds, space: dict, base: dict, metric: str, tunes_rep: bool):
    """A trial: the inner folds in turn, pooled score reported after each (the median pruner's step);
    the trial's user attributes say each inner fold's own score, its epochs run and the seconds."""
    import time

    import optuna

    from bench.evaluation.metrics import pooled_scores
    from bench.training.fold import represent, train_and_predict

    def objective(trial):
        t0 = time.perf_counter()
        cfgs = apply_params(suggest(trial, space), base)
        t = dataclasses.replace(task, x=represent(cfgs["representation"], task.flows)[0]) if tunes_rep else task
        yt, yp, each, epochs = [], [], [], []
        for step, (fit_idx, val_idx) in enumerate(folds):
            out = train_and_predict(t, fit_idx, val_idx, cfgs["model"], cfgs["trainer"])
            yt.append(task.y[val_idx])
            yp.append(out["probs"].argmax(1))
            each.append(round(float(pooled_scores(yt[-1], yp[-1], task.n_classes)[metric]), 4))
            epochs.append(int(out["fit"].epochs_run))
            score = pooled_scores(np.concatenate(yt), np.concatenate(yp), task.n_classes)[metric]
            for k, v in ((f"inner_fold_{metric}", each), ("epochs_run", epochs),
                         ("seconds", round(time.perf_counter() - t0, 3))):
                trial.set_user_attr(k, v)
            trial.report(score, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return score

    return objective


def tune_unit(task, train_idx, model_cfg: dict, trainer_cfg: dict, tuning: dict):
    """Returns (chosen params, model cfg, trainer cfg, x) for the final retrain on ``train_idx``."""
    import pandas as pd

    from bench.training.fold import represent
    from bench.protocols.folds import inner_folds

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
    _check_inner_folds(task, folds, train_subjects)
    metric = tuning.get("metric", "uf1")
    base = {"trainer": dict(trainer_cfg), "model": dict(model_cfg), "representation": dict(task.cell_cfg["representation"])}

    study = _open_study(task, tuning)
    _describe_study(study, task, train_subjects, len(folds), metric)
    done = sum(t.state.is_finished() for t in study.trials)
    remaining = max(0, int(tuning["n_trials"]) - done)
    if remaining:
        study.optimize(_objective(task, folds, space, base, metric, tunes_rep), n_trials=remaining,
                       timeout=tuning.get("timeout_s"), gc_after_trial=False)
    best = dict(study.best_params)
    cfgs = apply_params(best, base)
    x = represent(cfgs["representation"], task.flows)[0] if tunes_rep else task.x
    chosen = {**best, "inner_score": float(study.best_value), "n_trials": len(study.trials),
              "objective": objective_name(metric)}
    return chosen, cfgs["model"], cfgs["trainer"], x


def dashboard_commands(run_dir: str | Path, shown: str | Path | None = None) -> list[str]:
    """``optuna-dashboard <storage>`` for each Optuna storage the run directory holds (the journal,
    the sqlite file), naming the run directory as ``shown`` (default: as given; relative stays relative)."""
    import shlex

    run_dir, at = Path(run_dir), Path(shown if shown is not None else run_dir)
    out = []
    if (run_dir / JOURNAL).is_file():
        out.append(f"optuna-dashboard {shlex.quote((at / JOURNAL).as_posix())}")
    if (run_dir / "optuna.db").is_file():
        out.append(f"optuna-dashboard {shlex.quote('sqlite:///' + (at / 'optuna.db').as_posix())}")
    return out


def unit_choices(results) -> list[dict]:
    """Each finished tuned unit's chosen dict (``hparams["tuned"]`` of the results table), in row order."""
    if results is None or not len(results) or "hparams" not in results.columns:
        return []
    ok = results[results["status"] == "ok"] if "status" in results.columns else results
    out = []
    for raw in ok["hparams"]:
        try:
            tuned = json.loads(raw).get("tuned") if isinstance(raw, str) else None
        except (ValueError, AttributeError):
            tuned = None
        if isinstance(tuned, dict) and tuned_params(tuned):
            out.append(tuned)
    return out


def tuning_line(results) -> str | None:
    """The console's one line on a tuned run: how many outer folds were tuned, with what budget and
    objective, how long it took and the spread of the best inner scores; None when nothing was tuned."""
    chosen = unit_choices(results)
    if not chosen:
        return None
    trials = sorted({int(c.get("n_trials", 0)) for c in chosen})
    names = sorted({str(c.get("objective", "inner_cv")) for c in chosen})
    scores = np.array([float(c["inner_score"]) for c in chosen if "inner_score" in c])
    secs = float(np.nansum(results["tune_seconds"])) if "tune_seconds" in results.columns else float("nan")
    ntr = str(trials[0]) if len(trials) == 1 else f"{trials[0]}-{trials[-1]}"
    best = (f"; best {'/'.join(names)} median {np.median(scores):.3f} [{scores.min():.3f}, {scores.max():.3f}]"
            if len(scores) else "")
    return (f"tuning: {len(chosen)} outer fold(s) tuned by Optuna, {ntr} trial(s) each, objective "
            f"{'/'.join(names)} (inner CV on each fold's training subjects only, never its test subject), "
            f"{secs:.1f} s{best}; the chosen values: the report's \"Selected hyper-parameters\"")
