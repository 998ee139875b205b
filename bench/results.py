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
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

# The axes that make a cell: one pooled set of predictions per value of these (the headline unit).
CELL_AXES = ("dataset", "flow", "representation", "model", "seed")

RESULT_COLUMNS = [
    "study", "dataset", "flow", "representation", "representation_name", "model", "model_name", "seed", "fold",
    "cell", "cell_hash", "unit_key", "test_subjects", "n_train", "n_val", "n_test", "fold_uf1", "fold_uar",
    "fold_acc", "epochs_run", "best_epoch", "train_seconds", "predict_seconds", "tune_seconds", "hparams",
    "rep_params", "model_params", "status", "error",
    "config_hash", "git_commit",
]
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


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class UnitStore:
    """Finished units on disk, keyed by unit key (a hash of the cell config, seed and fold)."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir) / "units"

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def load(self, key: str) -> dict | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # a torn file is treated as unfinished and redone

    def is_done(self, key: str) -> bool:
        rec = self.load(key)
        return rec is not None and rec.get("row", {}).get("status") == "ok"

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
    results = pd.DataFrame(rows)
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
        prob_cols = sorted((c for c in predictions.columns if c.startswith("prob_")), key=lambda c: int(c[5:]))
        predictions = predictions[PRED_COLUMNS + prob_cols]
        predictions = predictions.sort_values(order + ["subject", "clip"], kind="stable").reset_index(drop=True)
    return results, predictions


def write_tables(run_dir: str | Path, results: pd.DataFrame, predictions: pd.DataFrame) -> None:
    run_dir = Path(run_dir)
    for name, df in (("results", results), ("predictions", predictions)):
        tmp = run_dir / f".{name}.parquet.tmp"
        df.to_parquet(tmp, index=False)
        os.replace(tmp, run_dir / f"{name}.parquet")
        atomic_write_text(run_dir / f"{name}.csv", df.to_csv(index=False))


def read_tables(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    run_dir = Path(run_dir)
    return pd.read_parquet(run_dir / "results.parquet"), pd.read_parquet(run_dir / "predictions.parquet")
