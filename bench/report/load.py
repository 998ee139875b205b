"""Read a study's run directory (see notes/results_schema.md) into validated, typed frames.

Cells are told apart by the axis columns (``bench.results.tables.CELL_AXES``) and described by the
parameter columns ``p_<axis>`` / ``p_<axis>_<param>``; labels are for display only and never parsed.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results.tables import decode_param

log = logging.getLogger(__name__)

PRED_REQUIRED = ("dataset", "representation", "model", "seed", "fold", "subject", "y_true", "y_pred")
RESULTS_REQUIRED = ("dataset", "representation", "model", "seed", "fold", "status")
SETTING = "setting"  # derived column: the (dataset, flow) pair within which the report compares cells


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
    # one row per (unit, epoch) from the unit records' "history" (bench.training.engine.fit): unit_key, epoch,
    # train_loss and, with an inner validation split, val_loss / val_uf1 / val_uar; see load_histories
    histories: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the leakage audit's per-epoch test predictions (audit.parquet, bench.evaluation.audit; LEAKY by design,
    # read only by the shortcuts section); empty when the run had no audit=true
    audit: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        # The report's unit of comparison is a setting, one (dataset, flow) pair: a derived ``setting``
        # column, so the axis columns themselves stay as the runner wrote them.
        if not self.flows and "flow" in self.predictions.columns:
            self.flows = ordered(self.predictions["flow"].fillna("").astype(str))
        multi = len(self.flows) > 1
        for name in ("predictions", "results", "audit"):
            df = getattr(self, name)
            if SETTING not in df.columns:
                setattr(self, name, df.assign(**{SETTING: _setting_column(df, multi)}))

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
        msg = f"{run_json.name} is missing; the run-facts section lists only what the tables show"
        log.warning("%s: %s", run_dir, msg)  # the note in the report names no path of this machine
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
    if "flow" in preds.columns:
        preds["flow"] = preds["flow"].fillna("").astype(str)
    if "source_dataset" not in preds.columns:
        preds["source_dataset"] = preds["dataset"]
    else:
        preds["source_dataset"] = preds["source_dataset"].fillna(preds["dataset"]).astype(str)

    results, rpath = _read_table(run_dir, "results", required=False)
    if results is None:
        msg = f"{rpath.stem}.parquet/.csv missing; failures and costs are not reported"
        log.warning("%s: %s", run_dir, msg)
        notes.append(msg)
        results = pd.DataFrame(columns=list(RESULTS_REQUIRED))
    else:
        _check_columns(results, RESULTS_REQUIRED, rpath)
        results = results.copy()
        results["seed"] = _int_column(results, "seed", rpath)
        for c in ("dataset", "representation", "model", "fold", "status"):
            results[c] = results[c].astype(str)
        if "flow" in results.columns:
            results["flow"] = results["flow"].fillna("").astype(str)

    flows = ordered(preds["flow"].fillna("").astype(str)) if "flow" in preds.columns else []
    if len(flows) > 1:
        notes.append(f"the study ran {len(flows)} optical-flow settings ({', '.join(flows)}); every table and "
                     "comparison is made within one dataset · flow setting")
    study = facts.get("study")
    if not study:
        study = results["study"].iloc[0] if "study" in results.columns and len(results) else run_dir.name
    study = str(study)
    aux = _read_npz(run_dir / "aux.npz", notes)
    examples = _read_npz(run_dir / "examples.npz", notes)
    histories = load_histories(run_dir, results)
    audit = load_audit(run_dir, k)
    return RunData(run_dir, study, facts, results, preds, classes, aux, examples, notes, flows, histories, audit)


def load_audit(run_dir: str | Path, n_classes: int) -> pd.DataFrame:
    """``audit.parquet`` validated (``bench.evaluation.audit.AUDIT_COLUMNS``, labels in range), or an empty frame."""
    from bench.evaluation.audit import AUDIT_COLUMNS

    path = Path(run_dir) / "audit.parquet"
    if not path.exists():
        return pd.DataFrame()
    try:
        df = pd.read_parquet(path)
    except Exception as e:
        raise ReportInputError(f"{path}: cannot be read as parquet ({e})") from e
    _check_columns(df, tuple(AUDIT_COLUMNS), path)
    df = df.copy()
    for c, lo, hi in (("y_true", 0, n_classes), ("y_pred", 0, n_classes), ("seed", None, None), ("epoch", 0, None)):
        df[c] = _int_column(df, c, path, lo, hi)
    for c in ("dataset", "flow", "representation", "model", "fold", "subject", "clip"):
        df[c] = df[c].fillna("").astype(str)
    return df


HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_uf1", "val_uar")


def load_histories(run_dir: str | Path, results: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch training histories of the finished units in ``results`` (``units/<unit_key>.json``).

    Long format: ``unit_key`` plus ``HISTORY_COLUMNS`` (NaN where a unit recorded no validation).
    Units whose file is missing or unreadable are skipped (their rows simply have no curve); an empty
    frame when none has a history (e.g. a run directory copied without ``units/``).
    """
    cols = ["unit_key", *HISTORY_COLUMNS]
    if not len(results) or "unit_key" not in results.columns:
        return pd.DataFrame(columns=cols)
    units = Path(run_dir) / "units"
    ok = results[results["status"] == "ok"] if "status" in results.columns else results
    rows = []
    for key in dict.fromkeys(ok["unit_key"].astype(str)):
        path = units / f"{key}.json"
        try:
            hist = json.loads(path.read_bytes()).get("history") or []
        except (OSError, ValueError, AttributeError):
            continue
        for h in hist:
            if isinstance(h, dict) and "epoch" in h:
                rows.append({"unit_key": key, **{c: h.get(c, np.nan) for c in HISTORY_COLUMNS}})
    out = pd.DataFrame(rows, columns=cols)
    for c in HISTORY_COLUMNS:
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out


def unit_hparams_lenient(raw) -> dict:
    """A results row's ``hparams`` JSON as a dict; ``{}`` for a failed unit's empty value, bad JSON or
    anything not an object. The report reads leniently (a broken row leaves its section shorter);
    the tracking backfill reads strictly, naming the unit (bench.tracking.cells.unit_hparams)."""
    try:
        h = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    return h if isinstance(h, dict) else {}


def ordered(values, first: str | None = None) -> list[str]:
    """Unique values in order of first appearance, ``first`` (if present) moved to the front."""
    seen = list(dict.fromkeys(str(v) for v in values))
    if first is not None and first in seen:
        seen.remove(first)
        seen.insert(0, first)
    return seen


def _setting_column(df: pd.DataFrame, multi_flow: bool) -> pd.Series:
    """``<dataset> · <flow>`` when the study has several flows (comparisons stay within one), else the dataset."""
    ds = df["dataset"].astype(str) if "dataset" in df.columns else pd.Series("", index=df.index)
    if multi_flow and "flow" in df.columns:
        return ds + " · " + df["flow"].fillna("").astype(str)
    return ds


# The most the reporter decompresses from one aux.npz or examples.npz: 256 MiB, the sum of its members'
# uncompressed sizes from the zip headers (a real study's aux and examples take a few MB). Over it the
# file is left out unread, with a note: deflate packs ~1000:1, so a 2 MB file can claim 2 GB.
MAX_NPZ_BYTES = 256 << 20


def _read_npz(path: Path, notes: list[str]) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    size = _npz_uncompressed_size(path)
    if size > MAX_NPZ_BYTES:
        msg = (f"{path.name} is left out unread: it expands to {size / 2**20:,.0f} MiB, over the reporter's bound "
               f"of {MAX_NPZ_BYTES >> 20} MiB (bench.report.load.MAX_NPZ_BYTES), so the sections drawn from it "
               "are missing")
        log.warning("%s: %s", path.parent, msg)
        notes.append(msg)
        return {}
    try:
        # allow_pickle=False: a report must never execute code from a run directory.
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:
        raise ReportInputError(f"{path}: cannot be read as .npz ({e})") from e


def _npz_uncompressed_size(path: Path) -> int:
    """What loading ``path`` would decompress, from the zip's headers and each ``.npy`` header (read
    from the member's first bytes only); a member whose array header claims more bytes than the member
    holds is a damaged file (``ReportInputError``). Nothing is decompressed beyond the headers."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            total = sum(i.file_size for i in infos)
            if total > MAX_NPZ_BYTES:
                return total
            for info in infos:
                if info.filename.endswith(".npy"):
                    with z.open(info) as f:
                        claimed = _npy_nbytes(f)
                    if claimed > info.file_size:
                        raise ReportInputError(f"{path}: member {info.filename} claims an array of {claimed} bytes "
                                               f"but holds {info.file_size}; the file is damaged")
            return total
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        if isinstance(e, ReportInputError):
            raise
        raise ReportInputError(f"{path}: cannot be read as .npz ({e})") from e


def _npy_nbytes(f) -> int:
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(f)
    else:
        shape, _, dtype = fmt._read_array_header(f, version)  # 3.0: no public reader
    return int(np.prod(shape, dtype=object)) * dtype.itemsize


# Pre-``p_*`` run directories: the option and parameters of an axis from its JSON column.
_LEGACY_PARAMS = {"representation": ("rep_params", "representation_name"), "model": ("model_params", "model_name")}


def _present(v) -> bool:
    return not (v is None or (np.isscalar(v) and pd.isna(v)))


def axis_params(results: pd.DataFrame, axis: str = "representation") -> dict[str, tuple[str, dict]]:
    """Axis label -> (option, {parameter: value}), read from ``p_<axis>`` and ``p_<axis>_<param>``.

    A parameter that is absent for a label (``n/a``: it belongs to another option) is left out. Run
    directories written before those columns existed fall back to the JSON column (``rep_params`` /
    ``model_params``: ``name`` is the registry name, the rest the parameters) and ``<axis>_name``.
    Labels with neither are absent.
    """
    out: dict[str, tuple[str, dict]] = {}
    if not len(results) or axis not in results.columns:
        return out
    opt_col, prefix = f"p_{axis}", f"p_{axis}_"
    pcols = [c for c in results.columns if str(c).startswith(prefix)]
    json_col, name_col = _LEGACY_PARAMS.get(axis, (None, None))
    for label, grp in results.groupby(axis, sort=False):
        row = grp.iloc[0]
        if opt_col in grp.columns and _present(row[opt_col]):
            decoded = {c[len(prefix):]: decode_param(row[c]) for c in pcols}  # "n/a": another option's
            out[str(label)] = (str(row[opt_col]), {k: v for k, (present, v) in decoded.items() if present})
            continue
        params: dict = {}
        if json_col in grp.columns and _present(row[json_col]):
            try:
                js = json.loads(str(row[json_col]))
                params = dict(js) if isinstance(js, dict) else {}
            except json.JSONDecodeError:
                log.warning("results: %s of %s is not JSON; its parameters are unknown", json_col, label)
        name = params.pop("name", None)
        if name is None and name_col in grp.columns and _present(row[name_col]):
            name = row[name_col]
        if name is not None:
            out[str(label)] = (str(name), params)
    return out


def axis_options(results: pd.DataFrame, axis: str = "representation") -> dict[str, str]:
    """Axis label -> its config-group option (registry name for old run directories)."""
    return {lab: opt for lab, (opt, _) in axis_params(results, axis).items()}
