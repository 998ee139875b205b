"""The results table: the single source of truth of a study run.

Each finished unit of work (cell x seed x fold) is persisted at once as ``units/<unit_key>.json``
(atomic write), so a killed study loses nothing finished and a rerun skips it. ``collect`` turns the
unit files into the tidy tables (``results.parquet`` one row per fold, ``predictions.parquet`` one
row per test sample) that MLflow and the reporter read; nothing else computes metrics from scratch.

Columns beyond the fixed ones (benchopt's convention): ``p_<axis>`` is the config-group option of
each cell axis (dataset, flow, representation, model) and ``p_<axis>_<param>`` each of its resolved
parameters (nested keys joined by ``.``), so a reader groups and filters by parameter values instead
of parsing labels; the axis columns themselves (``dataset``, ``representation``, ...) are the
display labels. Parameter values are text, as the config writes them (``0.3``, ``cnn``, ``null``,
``[16, 32, 64]``; ``decode_param`` reads them back), and ``n/a`` where the cell's option has no such
parameter: the table holds no NaN, so an empty cell always means an error, never "not applicable".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from bench.core.files import atomic_write_text  # noqa: F401 - re-exported: callers write tables beside it

log = logging.getLogger(__name__)

# The axes that make a cell: one pooled set of predictions per value of these (the headline unit).
CELL_AXES = ("dataset", "flow", "representation", "model", "seed")

RESULT_COLUMNS = [
    "study", "dataset", "flow", "representation", "representation_name", "model", "model_name", "seed", "fold",
    "cell", "cell_hash", "unit_key", "test_subjects", "n_train", "n_val", "n_test", "fold_uf1", "fold_uar",
    "fold_acc", "epochs_run", "best_epoch", "train_seconds", "predict_seconds", "tune_seconds",
    "n_params", "flops_per_sample",  # the trained model's size (bench.training.costs); absent for a failed unit
    "hparams", "rep_params", "model_params", "status", "error",
    "git_commit", "started_at", "finished_at",  # wall clock, epoch seconds
]
# Columns older unit records carry that the table no longer holds (config_hash: a copy of cell_hash).
DROPPED_COLUMNS = ("config_hash",)
PRED_COLUMNS = ["study", "dataset", "flow", "representation", "model", "seed", "fold", "subject", "clip",
                "source_dataset", "y_true", "y_pred"]


AXIS_COLUMNS = CELL_AXES[:-1]  # the axes with an option and parameters (seed is a plain column)


PARAM_ABSENT = "n/a"  # a p_<axis>_<param> cell whose option has no such parameter


def encode_param(v: Any) -> str:
    """A parameter value as text: strings as they are, anything else as JSON."""
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)


def decode_param(v: Any) -> tuple[bool, Any]:
    """``(present, value)`` of a p_ cell: ``n/a`` / missing -> absent; JSON text -> its value."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v == PARAM_ABSENT:
        return False, None
    if not isinstance(v, str):
        return True, v.item() if isinstance(v, np.generic) else v
    try:
        return True, json.loads(v)
    except json.JSONDecodeError:
        return True, v


def _flat(node: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in node.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = encode_param(v)
    return out


def cell_columns(options: dict[str, str], cfg: dict) -> dict:
    """``p_<axis>`` (the option) and ``p_<axis>_<param>`` (each resolved parameter, as text) of a cell.

    ``options``: axis -> config-group option; ``cfg``: the cell's resolved config. The registry name
    (``name``) stays in ``representation_name`` / ``model_name``.
    """
    out: dict = {}
    for axis in AXIS_COLUMNS:
        out[f"p_{axis}"] = str(options[axis])
        out.update({f"p_{axis}_{k}": v for k, v in _flat({k: v for k, v in dict(cfg[axis]).items()
                                                          if k != "name"}).items()})
    return out


class UnitRecordError(RuntimeError):
    """A run directory's unit records cannot make a whole table (the message names the file)."""


def record_problem(rec, key: str | None = None) -> str | None:
    """Why a unit record cannot be trusted, or None. A record is trusted only when it is whole: its
    row names its unit, a finished unit has exactly ``n_test`` predictions, each with labels in
    range and finite probabilities that sum to 1, and finite fold scores."""
    if not isinstance(rec, dict) or not isinstance(rec.get("row"), dict):
        return "not a unit record (no 'row' mapping)"
    row, preds = rec["row"], rec.get("predictions")
    missing = [k for k in ("unit_key", "cell", "status", "seed", "fold", "n_test", *CELL_AXES) if k not in row]
    if missing:
        return f"its row lacks {', '.join(missing)}"
    if key is not None and row["unit_key"] != key:
        return f"it holds unit {row['unit_key']!r}, not {key!r}"
    if not isinstance(preds, list):
        return "'predictions' is not a list"
    if row["status"] == "failed":
        return None if not preds else "a failed unit with predictions"
    if row["status"] != "ok":
        return f"unknown status {row['status']!r}"
    n = row["n_test"]
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0 or len(preds) != n:
        return f"n_test={n!r} but {len(preds)} prediction(s)"
    for k in ("fold_uf1", "fold_uar", "fold_acc"):
        v = row.get(k)
        if not isinstance(v, (int, float)) or not np.isfinite(v):
            return f"{k}={v!r} is not a finite number"
    for j, pr in enumerate(preds):
        if not isinstance(pr, dict):
            return f"prediction {j} is not a mapping"
        probs = [v for c, v in pr.items() if c.startswith("prob_")]
        labels = (pr.get("y_true"), pr.get("y_pred"))
        if not probs or not all(isinstance(v, (int, float)) and np.isfinite(v) and 0 <= v <= 1 for v in probs):
            return f"prediction {j} ({pr.get('clip')!r}) has missing or non-finite probabilities"
        if abs(sum(probs) - 1) > 1e-4:
            return f"prediction {j} ({pr.get('clip')!r}): probabilities sum to {sum(probs):.6g}, not 1"
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(probs) for v in labels):
            return f"prediction {j} ({pr.get('clip')!r}): labels {labels} are not class indices below {len(probs)}"
        if any(pr.get(c) != row[c] for c in CELL_AXES):
            return f"prediction {j} ({pr.get('clip')!r}) belongs to another cell"
    if rec.get("audit") is not None:
        return audit_problem(rec["audit"], n, len([c for c in preds[0] if c.startswith("prob_")]))
    return None


def audit_problem(audit, n_test: int, n_classes: int) -> str | None:
    """Why a record's leakage-audit entry (``{"epochs": [...], "y_pred": [[...], ...]}``, one row of
    ``n_test`` class indices per epoch, see ``bench.evaluation.audit``) cannot be trusted, or None."""
    if not isinstance(audit, dict) or not all(isinstance(audit.get(k), list) for k in ("epochs", "y_pred")):
        return "its 'audit' entry is not {epochs: [...], y_pred: [[...]]}"
    epochs, rows = audit["epochs"], audit["y_pred"]
    if not epochs or not all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in epochs) \
            or any(b <= a for a, b in zip(epochs, epochs[1:])):
        return f"audit epochs {epochs[:5]!r}... are not increasing epoch indices"
    if len(rows) != len(epochs):
        return f"audit: {len(epochs)} epoch(s) but {len(rows)} row(s) of predictions"
    for e, r in zip(epochs, rows):
        if not isinstance(r, list) or len(r) != n_test or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n_classes for v in r):
            return f"audit: epoch {e}'s predictions are not {n_test} class indices below {n_classes}"
    return None


@dataclass(frozen=True)
class FoldExpectation:
    """What a unit's record must hold, from the run's own sample table: its test clips, exactly,
    each with the table's label, and one probability per class."""

    subjects: tuple[str, ...]
    clips: tuple[str, ...]
    y_true: tuple[int, ...]
    n_classes: int


def fold_problem(rec: dict, expect: FoldExpectation) -> str | None:
    """Why a (well-formed) record does not belong to the fold the run's sample table gives it, or None."""
    row, preds = rec["row"], rec["predictions"]
    if row["status"] != "ok":
        return None
    if row["n_test"] != len(expect.clips):
        return f"n_test={row['n_test']} but the fold tests {len(expect.clips)} clip(s)"
    want = {(s, c): y for s, c, y in zip(expect.subjects, expect.clips, expect.y_true)}
    got = [(str(pr.get("subject")), str(pr.get("clip"))) for pr in preds]
    if set(got) != set(want) or len(set(got)) != len(got):
        extra = sorted(set(got) - set(want)) or sorted(k for k in got if got.count(k) > 1)
        missing = sorted(set(want) - set(got))
        what = f"clip {'/'.join(extra[0])} is not in this fold" if extra else f"clip {'/'.join(missing[0])} is missing"
        return f"its predictions are not the fold's test clips ({what})"
    for pr, key in zip(preds, got):
        if pr["y_true"] != want[key]:
            return f"clip {'/'.join(key)}: y_true={pr['y_true']} but the sample table's label is {want[key]}"
        if sum(1 for c in pr if c.startswith("prob_")) != expect.n_classes:
            return f"clip {'/'.join(key)}: not one probability per class ({expect.n_classes})"
    return None


class UnitStore:
    """Finished units on disk, keyed by unit key (a digest of the cell config, seed, fold and data).

    A unit file that cannot be read or fails ``record_problem`` is never used: it is reported (in
    ``problems``, and logged naming the file) and the unit is redone, which loses nothing, since
    the record is derived from the config and the data.
    """

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir) / "units"
        self.problems: dict[str, str] = {}  # unit file -> why it was not trusted
        self.expected: dict[str, FoldExpectation] = {}  # unit key -> what its record must hold

    def expect(self, key: str, expectation: FoldExpectation) -> None:
        """Check the record of ``key`` against the run's own sample table whenever it is loaded."""
        self.expected[key] = expectation

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def load(self, key: str) -> dict | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            rec = json.loads(p.read_bytes())
        except (OSError, ValueError) as e:  # torn or foreign bytes (JSON and UTF-8 errors are ValueErrors)
            problem = f"unreadable ({type(e).__name__}: {str(e)[:120]})"
        else:
            problem = record_problem(rec, key)
            if problem is None and key in self.expected:
                problem = fold_problem(rec, self.expected[key])
        if problem:
            if str(p) not in self.problems:
                log.warning("unit file %s: %s; the unit is redone", p, problem)
            self.problems[str(p)] = problem
            return None
        return rec

    def is_done(self, key: str, audit: bool = False) -> bool:
        """A finished unit; with ``audit``, only one that also holds its leakage-audit predictions
        (a unit run without the audit has none, so it is run again, with the same result)."""
        rec = self.load(key)
        return rec is not None and rec["row"]["status"] == "ok" and (not audit or rec.get("audit") is not None)

    def save(self, result: dict) -> None:
        atomic_write_text(self.path(result["row"]["unit_key"]), json.dumps(result, default=_json_default))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def collect(records: Iterable[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Unit records -> (results, predictions) DataFrames in a stable order."""
    rows, preds = [], []
    for rec in records:
        rows.append(rec["row"])
        preds.extend(rec.get("predictions", []))
    results = pd.DataFrame(rows).drop(columns=list(DROPPED_COLUMNS), errors="ignore")
    for c in RESULT_COLUMNS:
        if c not in results.columns:
            results[c] = pd.Series(dtype="object")
    extra = sorted(c for c in results.columns if c not in RESULT_COLUMNS)
    for c in extra:
        if c.startswith("p_"):  # rows of other options lack the parameter: say so, never NaN
            results[c] = [PARAM_ABSENT if not isinstance(v, str) else v for v in results[c]]
    results = results[RESULT_COLUMNS + extra]
    order = [*CELL_AXES, "fold"]
    results = results.sort_values(order, kind="stable").reset_index(drop=True)
    predictions = pd.DataFrame(preds)
    if len(predictions):
        dup = predictions.duplicated([*CELL_AXES, "subject", "clip"], keep=False)
        if dup.any():  # two units tested one clip of one cell: pooling would count it twice
            first = predictions[dup].iloc[0]
            raise UnitRecordError(f"{int(dup.sum())} predictions repeat a (cell, subject, clip), e.g. "
                             f"{'|'.join(str(first[c]) for c in CELL_AXES)} {first['subject']}/{first['clip']}")
        prob_cols = sorted((c for c in predictions.columns if c.startswith("prob_")), key=lambda c: int(c[5:]))
        predictions = predictions[PRED_COLUMNS + prob_cols]
        predictions = predictions.sort_values(order + ["subject", "clip"], kind="stable").reset_index(drop=True)
    return results, predictions


def write_tables(run_dir: str | Path, results: pd.DataFrame, predictions: pd.DataFrame) -> None:
    run_dir = Path(run_dir)
    for name, df in (("results", results), ("predictions", predictions)):
        # a temporary name of this write only (never a fixed one two writers would share)
        fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=f".{name}.parquet.", suffix=".tmp")
        os.close(fd)
        try:
            df.to_parquet(tmp, index=False)
            os.replace(tmp, run_dir / f"{name}.parquet")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        atomic_write_text(run_dir / f"{name}.csv", df.to_csv(index=False))


def read_tables(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    run_dir = Path(run_dir)
    return pd.read_parquet(run_dir / "results.parquet"), pd.read_parquet(run_dir / "predictions.parquet")
