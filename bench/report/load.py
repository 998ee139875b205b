"""Read a study's run directory (see notes/results_schema.md) into validated, typed frames."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

PRED_REQUIRED = ("dataset", "representation", "model", "seed", "fold", "subject", "y_true", "y_pred")
RESULTS_REQUIRED = ("dataset", "representation", "model", "seed", "fold", "status")


class ReportInputError(ValueError):
    """A run directory the reporter cannot use; the message names the file (and row)."""


@dataclass
class RunData:
    """Everything the reporter reads from one run directory."""

    run_dir: Path
    study: str
    facts: dict
    results: pd.DataFrame  # one row per (cell, seed, fold); may be empty
    predictions: pd.DataFrame  # validated labels; source_dataset filled in
    classes: list[str]
    aux: dict[str, np.ndarray] = field(default_factory=dict)
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # documented fallbacks applied while loading
    flows: list[str] = field(default_factory=list)  # flow-axis labels (empty when the tables have none)

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def resolve_run_dir(target: str | Path, runs_dir: str | Path = "runs") -> Path:
    """A run directory given either its path or a study name under ``runs_dir``."""
    p = Path(target)
    if p.is_dir() and _has_tables(p):
        return p
    cand = Path(runs_dir) / str(target)
    if cand.is_dir() and _has_tables(cand):
        return cand
    known = (
        sorted(d.name for d in Path(runs_dir).iterdir() if d.is_dir() and _has_tables(d))
        if Path(runs_dir).is_dir()
        else []
    )
    hint = f" Studies under {runs_dir}/: {', '.join(known)}." if known else f" No study runs under {runs_dir}/."
    raise ReportInputError(
        f"{target!r} is neither a run directory (with predictions.parquet or predictions.csv) "
        f"nor a study name under {runs_dir}/.{hint}"
    )


def _has_tables(d: Path) -> bool:
    return (d / "predictions.parquet").exists() or (d / "predictions.csv").exists()


def _read_table(run_dir: Path, stem: str, required: bool) -> tuple[pd.DataFrame | None, Path]:
    pq, csv = run_dir / f"{stem}.parquet", run_dir / f"{stem}.csv"
    if pq.exists():
        try:
            return pd.read_parquet(pq), pq
        except Exception as e:  # a truncated file from a killed run: say which file
            raise ReportInputError(f"{pq}: cannot be read as parquet ({e})") from e
    if csv.exists():
        return pd.read_csv(csv, keep_default_na=False, na_values=[""]), csv
    if required:
        raise ReportInputError(f"{run_dir}: neither {stem}.parquet nor {stem}.csv exists")
    return None, pq


def _check_columns(df: pd.DataFrame, required: tuple[str, ...], path: Path) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ReportInputError(f"{path}: missing column(s) {', '.join(missing)}; has {', '.join(map(str, df.columns))}")


def _int_column(df: pd.DataFrame, col: str, path: Path, lo: int | None = None, hi: int | None = None) -> pd.Series:
    num = pd.to_numeric(df[col], errors="coerce")
    bad = num.isna() | (num != np.round(num))
    if lo is not None:
        bad |= num < lo
    if hi is not None:
        bad |= num >= hi
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        rng = f" in [{lo}, {hi})" if lo is not None and hi is not None else ""
        raise ReportInputError(
            f"{path}: row {i}: column {col!r} must be an integer{rng}, got {df[col].iloc[i]!r}"
            f" ({int(bad.sum())} bad row(s) in total)"
        )
    return num.astype(np.int64)


def _classes(facts: dict, preds: pd.DataFrame, run_json: Path) -> tuple[list[str], list[str]]:
    notes: list[str] = []
    classes = facts.get("classes")
    if classes:
        return [str(c) for c in classes], notes
    # Fallback: the probability columns fix K; else the largest label. Logged and shown in the report.
    prob = [c for c in preds.columns if re.fullmatch(r"prob_\d+", str(c))]
    labels = pd.to_numeric(pd.concat([preds["y_true"], preds["y_pred"]]), errors="coerce")
    k = max(len(prob), int(labels.max()) + 1 if len(labels) and labels.notna().any() else 0)
    msg = f"{run_json.name} lists no classes; using {k} numbered classes inferred from predictions"
    log.warning(msg)
    notes.append(msg)
    return [f"class {i}" for i in range(k)], notes


def load_run(run_dir: str | Path) -> RunData:
    """Load and validate a run directory; raise ``ReportInputError`` naming file and row on bad input."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportInputError(f"{run_dir}: not a directory")
    run_json = run_dir / "run.json"
    facts: dict = {}
    notes: list[str] = []
    if run_json.exists():
        try:
            facts = json.loads(run_json.read_text())
        except json.JSONDecodeError as e:
            raise ReportInputError(f"{run_json}: invalid JSON at line {e.lineno}: {e.msg}") from e
        if not isinstance(facts, dict):
            raise ReportInputError(f"{run_json}: expected a JSON object, got {type(facts).__name__}")
    else:
        msg = f"{run_json} is missing; the run-facts section lists only what the tables show"
        log.warning(msg)
        notes.append(msg)

    preds, ppath = _read_table(run_dir, "predictions", required=True)
    assert preds is not None
    _check_columns(preds, PRED_REQUIRED, ppath)
    classes, cnotes = _classes(facts, preds, run_json)
    notes += cnotes
    k = len(classes)
    preds = preds.copy()
    preds["y_true"] = _int_column(preds, "y_true", ppath, 0, k)
    preds["y_pred"] = _int_column(preds, "y_pred", ppath, 0, k)
    preds["seed"] = _int_column(preds, "seed", ppath)
    for c in ("dataset", "representation", "model", "fold", "subject"):
        s = preds[c]
        if s.isna().any():
            i = int(np.flatnonzero(s.isna().to_numpy())[0])
            raise ReportInputError(f"{ppath}: row {i}: column {c!r} is empty")
        preds[c] = s.astype(str)
    if "source_dataset" not in preds.columns:
        preds["source_dataset"] = preds["dataset"]
    else:
        preds["source_dataset"] = preds["source_dataset"].fillna(preds["dataset"]).astype(str)

    results, rpath = _read_table(run_dir, "results", required=False)
    if results is None:
        msg = f"{rpath.with_suffix('')}.parquet/.csv missing; failures and costs are not reported"
        log.warning(msg)
        notes.append(msg)
        results = pd.DataFrame(columns=list(RESULTS_REQUIRED))
    else:
        _check_columns(results, RESULTS_REQUIRED, rpath)
        results = results.copy()
        results["seed"] = _int_column(results, "seed", rpath)
        for c in ("dataset", "representation", "model", "fold", "status"):
            results[c] = results[c].astype(str)

    flows = _fold_flow_axis(preds, results, notes)
    study = facts.get("study")
    if not study:
        study = results["study"].iloc[0] if "study" in results.columns and len(results) else run_dir.name
    study = str(study)
    aux = _read_npz(run_dir / "aux.npz")
    examples = _read_npz(run_dir / "examples.npz")
    return RunData(run_dir, study, facts, results, preds, classes, aux, examples, notes, flows)


def _fold_flow_axis(preds: pd.DataFrame, results: pd.DataFrame, notes: list[str]) -> list[str]:
    """The study's flow labels. With several, each (dataset, flow) becomes its own report setting.

    The runner has a flow axis (column ``flow``). Comparisons must stay within one flow (the baseline
    with the same model AND the same flow), which is exactly what grouping by ``dataset`` already does;
    so the dataset column is rewritten to ``<dataset> · <flow>`` (originals kept in ``dataset_name``).
    """
    if "flow" not in preds.columns:
        return []
    preds["flow"] = preds["flow"].fillna("").astype(str)
    flows = list(dict.fromkeys(preds["flow"]))
    if len(flows) > 1:
        for df in (preds, results):
            if "flow" in df.columns and len(df):
                df["dataset_name"] = df["dataset"]
                df["dataset"] = df["dataset"].astype(str) + " · " + df["flow"].fillna("").astype(str)
        notes.append(f"the study ran {len(flows)} optical-flow settings ({', '.join(flows)}); every table and "
                     "comparison is made within one dataset · flow setting")
    return flows


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    try:
        # allow_pickle=False: a report must never execute code from a run directory.
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:
        raise ReportInputError(f"{path}: cannot be read as .npz ({e})") from e


_LABEL = re.compile(r"^(?P<name>[^\[\]]+?)(?:\[(?P<args>.*)\])?$")


def parse_label(label: str) -> tuple[str, dict[str, object]]:
    """``cof[theta1=0.3,eps=1e-3]`` -> ("cof", {"theta1": 0.3, "eps": 0.001}); bare flags map to True."""
    m = _LABEL.match(label.strip())
    if not m:
        return label, {}
    params: dict[str, object] = {}
    args = m.group("args")
    if args:
        for part in args.split(","):
            part = part.strip()
            if not part:
                continue
            if "=" in part:
                key, val = (s.strip() for s in part.split("=", 1))
                params[key] = _coerce(val)
            else:
                params[part] = True
    return m.group("name"), params


def _coerce(val: str) -> object:
    try:
        return json.loads(val)
    except (json.JSONDecodeError, ValueError):
        return val


def representation_params(run: RunData) -> dict[str, tuple[str, dict[str, object]]]:
    """Representation label -> (registry name, params), from ``rep_params`` JSON when present, else the label."""
    out: dict[str, tuple[str, dict[str, object]]] = {}
    for label in run.predictions["representation"].unique():
        out[label] = parse_label(label)
    res = run.results
    if len(res) and "rep_params" in res.columns:
        for label, grp in res.groupby("representation", sort=False):
            name = (
                str(grp["representation_name"].iloc[0])
                if "representation_name" in grp.columns and pd.notna(grp["representation_name"].iloc[0])
                else parse_label(label)[0]
            )
            raw = grp["rep_params"].dropna()
            params = dict(parse_label(label)[1])
            if len(raw):
                try:
                    js = json.loads(str(raw.iloc[0]))
                    if isinstance(js, dict):
                        params = {**js, **params}
                except json.JSONDecodeError:
                    log.warning("results: rep_params of %s is not JSON; using the label's parameters", label)
            out[str(label)] = (name, params)
    return out
