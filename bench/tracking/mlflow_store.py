"""MLflow tracking written from the results table (the source of truth).

Runs are nested study -> cell -> fold. Everything is logged after the units finished, from the
persisted tables, so a tracking server that goes away mid-study loses nothing: re-log with
``python -m bench.tracking backfill RUN_DIR [--uri URI]``. Logging is idempotent per results
content: a study run whose results hash is already in the experiment is not logged twice. A study
run is marked complete (tag ``dualflow.complete=true``) only after all its cell and fold runs are
logged; an interrupted logging is completed by the next ``log_run`` / ``backfill`` (complete cell
runs kept, incomplete ones deleted and logged again, missing ones logged), which says what it did.
``backfill`` holds the run directory's lock (``bench.runtime.rundir``): it refuses to run while a study or
another backfill writes the same run directory.

What the UI shows. The experiment is tagged ``mlflow.experimentKind=custom_model_development`` and
every link printed or reported opens its runs table (``#/experiments/<id>/runs?workflowType=machine_learning``).
The bare ``#/experiments/<id>`` (or a click on the experiment in MLflow's list) opens what the
*browser's* workflow type says, not the tag, in MLflow 3.17 (the version the suite is tested with):
the ``workflowType`` of the URL, else the GenAI / Model training switch at the top of the UI as last
chosen in that browser (``localStorage["mlflow.workflowType_v1"]``), else GenAI, whose overview it
then shows. Choosing "Model training" once makes every bare experiment link open on the runs; MLflow's
newer UI code syncs that switch to the experiment's ``mlflow.experimentKind`` tag, which this sets
(``tests/tracking/test_tracking_mlflow_ui.py`` checks what the installed version does). The experiment's
description (``mlflow.note.content``) states the study's question and its best cell. Each run
spans the real time of the work it stands for: a fold run the unit's recorded ``started_at`` /
``finished_at``, a cell run its folds, the study run the whole study. Cell runs carry the pooled
UF1/UAR/accuracy (and per source database when a cell pools several) as metrics, and the same three
rounded under names the runs table lists first and in that order (``bench.tracking.cells.DISPLAY_METRICS``),
the cell's axes and ``p_*`` parameter columns, its training recipe (``trainer.<field>``, every
``TrainConfig`` field) and, when tuned, the median over outer folds of each chosen value
(``tuned.<name>``; a fold run carries its own) as params, so the runs table sorts and groups by them.
Cell runs are named ``<representation> × <model> · seed <s>`` (led by dataset / flow when those vary);
fold runs ``fold <fold>``; both carry the tag ``cell`` (the results' cell key). Fold runs carry
the per-epoch curves (``train_loss``, ``val_*``) as metric steps. Every run is tagged
``dualflow.level`` = study | cell | fold (filter: ``tags.`dualflow.level` = 'cell'``). The study run
carries the run manifest (``manifest.json``, ``bench.results.manifest``) as an artifact and its items as
``manifest.*`` tags when the run has one.

Artifacts live under the run directory: a new experiment in a local store (sqlite, file) gets the
artifact location ``<run_dir>/mlartifacts``, so deleting a run directory takes its artifacts along,
and after moving one, ``python -m bench.tracking backfill NEW_RUN_DIR`` (or the study's next run
there) re-roots the store's artifact URIs onto the new place (``bench.tracking.relocate``). An
existing experiment keeps the location it was created with (MLflow cannot change
it); logging says so and where its artifacts go. For a tracking server (``http://...``) the server's
own artifact store is used, since the server, not this process, serves them.

Open a finished study:  ``mlflow ui --backend-store-uri sqlite:///runs/<study>/mlflow.db --host 127.0.0.1``,
then the link ``ui_link`` prints (``http://127.0.0.1:5000/#/experiments/<id>/runs?workflowType=machine_learning``
and ``&viewStateShareKey=dualflow-cells``: the runs sorted by UF1, see ``VIEW_STATE``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.config import ConfigError
from bench.tracking.cells import (DISPLAY_METRICS, cell_run_name, display_scores, fold_run_name, recipe, tuned_per_fold,
                                  unit_hparams, varying_axes)
from bench.tracking.relocate import reroot

log = logging.getLogger(__name__)

# MLflow 3 sends usage telemetry (and fetches its config) over the network unless told not to; the
# suite runs offline. setdefault: a user who wants telemetry can still set it to false.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")  # MLflow 3: open on the runs table
UI_HOST = "http://127.0.0.1:5000"  # where ``mlflow ui --host 127.0.0.1`` listens by default
# A view of the runs table stored with the experiment (MLflow's own "share view": the experiment tag
# ``mlflow.sharedViewState.<key>``, opened by ``viewStateShareKey=<key>``): sorted by pooled UF1,
# which also lists the runs flat (MLflow nests child runs only in its default order), so the cell
# runs lead the table with their UF1/UAR/accuracy and axes as columns.
VIEW_KEY = "dualflow-cells"
VIEW_STATE = {
    "orderByKey": "metrics.`uf1`", "orderByAsc": False,
    "selectedColumns": [*(f"metrics.`{name}`" for _, name in DISPLAY_METRICS), "params.`dataset`", "params.`flow`",
                        "params.`representation`", "params.`model`", "params.`seed`", "tags.`cell`"],
}


def is_remote(uri: str) -> bool:
    """A tracking server (its own artifact store), not a store this process writes directly."""
    return str(uri).split(":", 1)[0].lower() in ("http", "https", "databricks")


def ui_link(experiment_id, uri: str | None = None, view: bool = True) -> str:
    """The experiment's runs table in the MLflow UI (served by ``uri`` when it is a server);
    ``view``: in the stored view that leads with the cell runs and their scores (``VIEW_STATE``)."""
    host = str(uri).rstrip("/") if uri and is_remote(uri) else UI_HOST
    if experiment_id is None:
        return host
    link = f"{host}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return f"{link}&viewStateShareKey={VIEW_KEY}" if view else link


def ui_command(uri: str) -> str | None:
    """The command that serves a local store's UI (None for a server: open its link)."""
    return None if is_remote(uri) else f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1"


def default_uri(run_dir: str | Path) -> str:
    # As given (relative stays relative, to the working directory): the URI is printed in the report
    # and on stdout as a command to copy, and a committed report must not carry this machine's paths.
    return f"sqlite:///{Path(run_dir) / 'mlflow.db'}"


def _client(uri: str, timeout: float = 10):
    # Fail fast on an unreachable server instead of mlflow's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(timeout)))
    from mlflow.tracking import MlflowClient

    quiet_mlflow()
    return MlflowClient(tracking_uri=uri)


QUIET_LOGGERS = ("mlflow.store.db.utils", "alembic")  # "Creating initial MLflow database tables...", migrations


def quiet_mlflow() -> None:
    """Keep MLflow's store set-up chatter (INFO) off the console; its warnings and errors still show."""
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def first_line(e: BaseException, limit: int = 300) -> str:
    """An exception's first line, whole up to ``limit`` characters, else cut at a word with an ellipsis."""
    text = str(e).strip()
    line = text.splitlines()[0].strip() if text else type(e).__name__
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0] if " " in line[:limit] else line[:limit]
    return cut.rstrip(" ,;:") + " …"


def check_tracking(cfg: dict) -> None:
    """Raise ConfigError when the tracking store cannot be reached or written."""
    uri = cfg["uri"]
    try:
        _client(uri, cfg.get("check_timeout_s", 10)).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - any failure here means: do not start training
        raise ConfigError(f"MLflow tracking URI {uri!r} is not reachable ({type(e).__name__}: {first_line(e)}). "
                          f"Start the server, fix tracking.uri, or run with tracking=none.") from None


def _experiment(client, name: str, artifact_location: str | None) -> tuple[str, str, str]:
    """(id, its artifact location, a note or "") of the experiment, created when missing.

    The kind tag is set on old experiments too, so a store logged by an earlier version also opens
    on its runs. An experiment's artifact location is fixed at creation (MLflow has no call to change
    it): an existing one elsewhere keeps it, and the note says so and how to get a fresh one.
    """
    exp = client.get_experiment_by_name(name)
    if exp is None:
        exp_id = client.create_experiment(name, artifact_location=artifact_location,
                                          tags={EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1]})
        exp = client.get_experiment(exp_id)
    elif exp.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
        client.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
    view = json.dumps(VIEW_STATE, sort_keys=True)
    if exp.tags.get(f"mlflow.sharedViewState.{VIEW_KEY}") != view:
        client.set_experiment_tag(exp.experiment_id, f"mlflow.sharedViewState.{VIEW_KEY}", view)
    note = ""
    if artifact_location and exp.artifact_location.rstrip("/") != artifact_location.rstrip("/"):
        note = (f"MLflow experiment {name!r} was created earlier with artifact location {exp.artifact_location}; "
                f"MLflow cannot move it, so this run's artifacts go there, not to {artifact_location}. "
                f"For artifacts under the run directory, log to a new store or experiment "
                f"(python -m bench.tracking backfill RUN_DIR --uri NEW_URI, or --experiment NEW_NAME).")
    return exp.experiment_id, exp.artifact_location, note


def _ms(t) -> int | None:
    """Epoch seconds (float) or an ISO timestamp -> epoch milliseconds; None when unknown."""
    if t is None or (isinstance(t, float) and not np.isfinite(t)):
        return None
    if isinstance(t, str):
        from datetime import datetime, timezone

        try:
            d = datetime.fromisoformat(t)
        except ValueError:
            return None
        return int((d if d.tzinfo else d.replace(tzinfo=timezone.utc)).timestamp() * 1000)
    try:
        v = float(t)
    except (TypeError, ValueError):
        return None
    return int(v * 1000) if np.isfinite(v) else None


def _span(rows: pd.DataFrame) -> tuple[int | None, int | None]:
    """(first start, last end) in ms of the units in ``rows``; None where no unit recorded one
    (unit records from before ``started_at`` / ``finished_at``)."""
    starts = [m for m in map(_ms, rows["started_at"] if "started_at" in rows else []) if m is not None]
    ends = [m for m in map(_ms, rows["finished_at"] if "finished_at" in rows else []) if m is not None]
    return (min(starts) if starts else None), (max(ends) if ends else None)


def _tag_key(label: str) -> str:
    """A manifest label as an MLflow tag key (letters, digits, ``_-./ ``)."""
    import re

    return "manifest." + (re.sub(r"[^A-Za-z0-9_\-. /]+", "_", str(label)).strip("_ ") or "item")[:200]


def _manifest(run_dir: Path) -> tuple[Path | None, list[tuple[str, str]]]:
    """``manifest.json`` and its display items when the run has them (bench.results.manifest may be absent)."""
    path = run_dir / "manifest.json"
    if not path.exists():
        return None, []
    try:
        from bench.results.manifest import load_manifest, manifest_items

        m = load_manifest(run_dir)
        return path, (list(manifest_items(m)) if m else [])
    except Exception as e:  # noqa: BLE001 - the manifest is extra; logging goes on without its tags
        log.warning("%s: manifest items not read (%s); logging the file only", path, e)
        return path, []


def _confusion_png(cm: np.ndarray, classes: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2 + 0.4 * len(classes), 3 + 0.4 * len(classes)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="black")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


COMPLETE = "dualflow.complete"  # "true" on a run once it and everything below it is logged


def _is_complete(run) -> bool:
    """Whether a study, cell or fold run was logged to the end.

    Runs this version logs carry ``dualflow.complete`` ("false" when created, "true" once done).
    Runs from before the tag are complete when terminated: the old logger terminated each run after
    its last child, the study run last of all.
    """
    tag = run.data.tags.get(COMPLETE)
    if tag is not None:
        return tag == "true"
    return run.info.status in ("FINISHED", "FAILED")


def _search_all(client, exp_id: str, filter_string: str) -> list:
    out, token = [], None
    while True:
        page = client.search_runs([exp_id], filter_string=filter_string, max_results=1000, page_token=token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def _children(client, exp_id: str, run_id: str) -> list:
    return _search_all(client, exp_id, f"tags.`mlflow.parentRunId` = '{run_id}'")


def _delete_tree(client, exp_id: str, run_id: str) -> int:
    """Delete a run and every run below it (MLflow's soft delete); returns how many."""
    n = sum(_delete_tree(client, exp_id, c.info.run_id) for c in _children(client, exp_id, run_id))
    client.delete_run(run_id)
    return n + 1


def log_run(run_dir: str | Path, cfg: dict, *, facts: dict | None = None, records: list[dict] | None = None) -> dict:
    """Log a finished run directory to MLflow; returns the ids for run.json.

    Idempotent per results content: the study run carries the results hash, and is marked complete
    (tag ``dualflow.complete=true``) only after every cell and fold run below it is logged. When an
    earlier logging of the same results was interrupted, this completes it: the partial study run is
    kept, its complete cell runs (each with all its fold runs) are kept, incomplete ones are deleted
    and logged again, and missing ones are logged, so every cell and fold is in the store once.
    Other partial study runs of the same results (several interrupted attempts) are deleted.
    """
    import mlflow.entities  # noqa: F401 - without mlflow, fail before anything is read

    from bench.results.tables import read_tables

    run_dir = Path(run_dir)
    results, predictions = read_tables(run_dir)
    if facts is None:
        facts = json.loads((run_dir / "run.json").read_text())
    classes = list(facts["classes"])
    histories = _histories(run_dir, results, records)
    uri = cfg.get("uri") or default_uri(run_dir)
    client = _client(uri, cfg.get("check_timeout_s", 10))
    moved = reroot(run_dir, uri)  # a moved run directory: its store's artifact URIs follow it
    exp_id, info = _open_experiment(client, cfg, facts, uri, run_dir)
    if moved:
        info["rerooted"] = [f"{old} -> {new}" for old, new in moved]
    _describe(client, exp_id, facts, results, predictions, classes)
    results_hash = str(pd.util.hash_pandas_object(results[["unit_key", "status", "fold_uf1"]], index=False).sum())
    found = _search_all(client, exp_id, f"tags.`dualflow.results_hash` = '{results_hash}'")
    studies = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    done = [r for r in studies if _is_complete(r)]
    if done:
        return {**info, "study_run_id": done[0].info.run_id, "logged": False}
    partial = sorted(studies, key=lambda r: r.info.start_time or 0, reverse=True)
    deleted = sum(_delete_tree(client, exp_id, r.info.run_id) for r in partial[1:])
    s_start, s_end = _study_span(results, facts)
    base_tags = _base_tags(facts)
    params = _study_params(facts, results)
    kept: dict[str, str] = {}  # cell -> its complete cell run
    if partial:
        pid = partial[0].info.run_id
        params = [p for p in params if p.key not in partial[0].data.params]
        deleted += _keep_complete_cells(client, exp_id, pid, set(results["cell"]), kept)
    else:
        pid = client.create_run(exp_id, run_name=facts["study"], start_time=s_start, tags={
            "dualflow.results_hash": results_hash, "dualflow.run_dir": str(run_dir.resolve()),
            "dualflow.level": "study", COMPLETE: "false"}).info.run_id
    _log_study_batch(client, pid, run_dir, params, base_tags)
    logged = _log_study_contents(client, cfg, exp_id, pid, run_dir, facts, classes, results, predictions, kept,
                                 histories, base_tags)
    client.set_terminated(pid, end_time=s_end)
    client.set_tag(pid, COMPLETE, "true")  # last: only now is the study run complete
    out = {**info, "study_run_id": pid, "logged": True}
    if partial:
        out.update(completed=True, cells_kept=len(kept), cells_logged=logged, runs_deleted=deleted)
    return out


NOTE = "mlflow.note.content"  # the experiment's description in the MLflow UI (Markdown)


def _describe(client, exp_id: str, facts: dict, results: pd.DataFrame, predictions: pd.DataFrame,
              classes: list[str]) -> None:
    """The experiment's description: the study's question (its ``description``) and its best cell."""
    lines = [f"**{facts['study']}**: {facts.get('description') or '(no description)'}"]
    best = _best_cell(results, predictions, len(classes))
    if best:
        name, s = best
        lines.append(f"Best cell (pooled UF1 over its folds, of {results['cell'].nunique()}): **{name}**, "
                     f"UF1 {s['uf1']:.3f}, UAR {s['uar']:.3f}, accuracy {s['acc']:.3f}.")
    text = "\n\n".join(lines)
    if client.get_experiment(exp_id).tags.get(NOTE) != text:
        client.set_experiment_tag(exp_id, NOTE, text)


def _best_cell(results: pd.DataFrame, predictions: pd.DataFrame, n_classes: int) -> tuple[str, dict] | None:
    """(run name, pooled scores) of the cell with the highest pooled UF1; None without predictions."""
    from bench.evaluation.metrics import pooled_scores
    from bench.results.tables import CELL_AXES

    if not len(predictions):
        return None
    varying = varying_axes(results)
    scored = []
    for keys, g in predictions.groupby(list(CELL_AXES), sort=True):
        s = pooled_scores(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), n_classes)
        scored.append((float(s["uf1"]), cell_run_name(pd.Series(dict(zip(CELL_AXES, keys))), varying), s))
    _, name, s = max(scored, key=lambda t: t[0])
    return name, s


def _histories(run_dir: Path, results: pd.DataFrame, records: list[dict] | None) -> dict[str, list]:
    """unit_key -> its per-epoch history, from ``records`` or else the run directory's unit store."""
    from bench.results.tables import UnitStore

    histories = {}
    store = UnitStore(run_dir)
    for rec in records if records is not None else (store.load(u) for u in results["unit_key"]):
        if rec:
            histories[rec["row"]["unit_key"]] = rec.get("history") or []
    return histories


def _open_experiment(client, cfg: dict, facts: dict, uri: str, run_dir: Path) -> tuple[str, dict]:
    """The experiment's id (created when missing) and the tracking info for run.json; warns its note."""
    exp_name = cfg.get("experiment") or facts["study"]
    own_artifacts = None if is_remote(uri) else (run_dir / "mlartifacts").resolve().as_uri()
    exp_id, artifact_location, note = _experiment(client, exp_name, own_artifacts)
    if note:
        log.warning("%s", note)
    info = {"tracking_uri": uri, "experiment_id": exp_id, "experiment_name": exp_name,
            "artifact_location": artifact_location, "ui_link": ui_link(exp_id, uri), **({"note": note} if note else {})}
    return exp_id, info


def _study_span(results: pd.DataFrame, facts: dict) -> tuple[int, int]:
    """(start, end) in ms of the study run."""
    now = int(time.time() * 1000)
    # The study run spans the whole study: from its start (or its earliest unit, for a resumed
    # study) to its end (or its latest unit); backfill logs later, so never "now" when recorded.
    u_start, u_end = _span(results)
    s_start = min([x for x in (_ms(facts.get("started")), u_start) if x is not None] or [now])
    s_end = max([x for x in (_ms(facts.get("finished")), u_end) if x is not None] or [now])
    return s_start, max(s_end, s_start)


def _base_tags(facts: dict) -> list:
    """The tags every study and cell run carries: git commit, study name, package versions."""
    from mlflow.entities import RunTag

    versions = facts.get("versions", {})
    base_tags = [RunTag("git_commit", str(facts.get("git_commit", ""))), RunTag("dualflow.study", facts["study"])]
    base_tags += [RunTag(f"version.{p}", str(v)) for p, v in versions.items()]
    return base_tags


def _study_params(facts: dict, results: pd.DataFrame) -> list:
    """The study run's params: study, number of cells, protocol and tuning (JSON, capped)."""
    from mlflow.entities import Param

    return [Param("study", facts["study"]), Param("n_cells", str(results["cell"].nunique())),
            Param("protocol", json.dumps(facts.get("protocol"))[:6000]),
            Param("tuning", json.dumps(facts.get("tuning"))[:6000])]


def _keep_complete_cells(client, exp_id: str, pid: str, wanted: set, kept: dict[str, str]) -> int:
    """Fill ``kept`` with the partial study run's complete cell runs; delete its other children (returns how many)."""
    for c in sorted(_children(client, exp_id, pid), key=lambda r: r.info.start_time or 0):
        # the cell key: the tag ``cell``, or, on runs logged before it, the run name
        name = c.data.tags.get("cell") or c.data.tags.get("mlflow.runName", c.info.run_name)
        if name in wanted and name not in kept and _is_complete(c):
            kept[name] = c.info.run_id
    deleted = 0
    for c in _children(client, exp_id, pid):
        if c.info.run_id not in kept.values():
            deleted += _delete_tree(client, exp_id, c.info.run_id)
    return deleted


def _log_study_batch(client, pid: str, run_dir: Path, params: list, base_tags: list) -> None:
    """The study run's params and tags, the manifest's items among them."""
    from mlflow.entities import RunTag

    _, manifest_items = _manifest(run_dir)
    study_tags = base_tags + [RunTag(_tag_key(k), str(v)[:5000]) for k, v in manifest_items]
    client.log_batch(pid, params=params, tags=study_tags)


def _log_study_contents(client, cfg: dict, exp_id: str, pid: str, run_dir: Path, facts: dict, classes: list[str],
                        results: pd.DataFrame, predictions: pd.DataFrame, kept: dict[str, str], histories: dict,
                        base_tags: list) -> int:
    """The study run's artifacts and every cell run not in ``kept``; returns how many cells were logged."""
    from bench.results.tables import CELL_AXES

    logged = 0
    # Confusion PNGs and prediction CSVs are staged here for log_artifact, then removed.
    with tempfile.TemporaryDirectory(prefix="dualflow-mlflow-") as tmp_dir:
        tmp = Path(tmp_dir)
        if cfg.get("log_artifacts", True):
            _log_study_artifacts(client, pid, run_dir, facts, tmp)
        # keyed like the results' "cell" column (dataset|flow|representation|model|seed)
        preds_by_cell = {"|".join(map(str, keys)): g for keys, g in predictions.groupby(list(CELL_AXES))} \
            if len(predictions) else {}
        varying = varying_axes(results)
        for cell, rows in results.groupby("cell", sort=True):
            if cell in kept:
                continue
            _log_cell(client, cfg, exp_id, pid, (cell, cell_run_name(rows.iloc[0], varying)), rows,
                      preds_by_cell.get(cell, predictions.iloc[:0]), classes, histories, base_tags, tmp)
            logged += 1
    return logged


def _log_study_artifacts(client, pid: str, run_dir: Path, facts: dict, tmp: Path) -> None:
    """config.yaml, results.csv, run.json and manifest.json on the study run (those that exist)."""
    # run.json as the facts passed in: at the end of a study it is written after logging.
    (tmp / "run.json").write_text(json.dumps(facts, indent=2, default=str))
    for path in (run_dir / "config.yaml", run_dir / "results.csv", tmp / "run.json", run_dir / "manifest.json"):
        if path.exists():
            client.log_artifact(pid, str(path))  # same name: replaced, never doubled


def _log_cell(client, cfg: dict, exp_id: str, pid: str, cell_name: tuple[str, str], rows: pd.DataFrame,
              preds: pd.DataFrame, classes: list[str], histories: dict, base_tags: list, tmp: Path) -> str:
    """One cell run (``cell_name``: its cell key and run name) and its fold runs; tagged complete after the last fold."""
    cell, name = cell_name
    now = int(time.time() * 1000)
    start, end = _span(rows)  # from its first fold's start to its last fold's end
    start, end = start or now, end or now
    cid = client.create_run(exp_id, run_name=name, start_time=start, tags={
        "mlflow.parentRunId": pid, "dualflow.level": "cell", "cell": cell, COMPLETE: "false"}).info.run_id
    params = _cell_params(rows)
    metrics = _cell_metrics(client, cfg, cid, cell, rows, preds, classes, end, tmp)
    for i in range(0, len(params), 90):  # MLflow caps a batch at 100 params
        client.log_batch(cid, metrics=metrics if i == 0 else [], params=params[i:i + 90],
                         tags=base_tags if i == 0 else [])
    for _, r in rows.iterrows():
        _log_fold(client, cfg, exp_id, cid, r, histories.get(r["unit_key"], []), now)
    client.set_terminated(cid, "FINISHED" if (rows["status"] == "ok").all() else "FAILED", end_time=end)
    client.set_tag(cid, COMPLETE, "true")
    return cid


def _cell_params(rows: pd.DataFrame) -> list:
    """A cell run's params: its axes, hash, ``p_*`` columns, and representation/model parameters."""
    from mlflow.entities import Param

    from bench.results.tables import CELL_AXES, encode_param

    r0 = rows.iloc[0]
    params = [Param(a, str(r0[a])) for a in (*CELL_AXES, "cell_hash")]
    # The p_<axis>[_<param>] columns (option and each resolved parameter): group and sort by them.
    params += [Param(c, str(r0[c])[:6000]) for c in rows.columns if c.startswith("p_") and pd.notna(r0[c])]
    params += [Param("rep_params", str(r0["rep_params"])[:6000]), Param("model_params", str(r0["model_params"])[:6000])]
    trainer, tuned = recipe(rows)  # the training recipe and, when tuned, the chosen values' medians
    params += [Param(k, encode_param(v)[:6000]) for k, v in {**trainer, **tuned}.items()]
    return params


def _cell_metrics(client, cfg: dict, cid: str, cell: str, rows: pd.DataFrame, preds: pd.DataFrame,
                  classes: list[str], end: int, tmp: Path) -> list:
    """A cell's pooled scores (per source database too) as metrics; logs its confusion PNG and predictions CSV."""
    from mlflow.entities import Metric

    from bench.evaluation.metrics import confusion_matrix, pooled_scores, scores_from_confusion

    metrics = [Metric("n_failed_folds", float((rows["status"] != "ok").sum()), end, 0)]
    if not len(preds):
        return metrics
    cm = confusion_matrix(preds["y_true"].to_numpy(), preds["y_pred"].to_numpy(), len(classes))
    s = scores_from_confusion(cm)
    metrics += [Metric(m, float(s[m]), end, 0) for m in ("uf1", "uar", "acc")]
    metrics += [Metric(name, v, end, 0) for name, v in display_scores(s).items()]  # rounded, listed first
    sources = sorted(preds["source_dataset"].astype(str).unique()) if "source_dataset" in preds else []
    if len(sources) > 1:  # a composite (MEGC2019): each source database's pooled scores too
        for src in sources:
            g = preds[preds["source_dataset"].astype(str) == src]
            ss = pooled_scores(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), len(classes))
            key = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in src)
            metrics += [Metric(f"{m}_{key}", float(ss[m]), end, 0) for m in ("uf1", "uar")]
    if cfg.get("log_artifacts", True):
        _log_cell_artifacts(client, cid, cell, cm, classes, preds, tmp)
    return metrics


def _log_cell_artifacts(client, cid: str, cell: str, cm: np.ndarray, classes: list[str], preds: pd.DataFrame,
                        tmp: Path) -> None:
    """The cell's confusion matrix PNG and its predictions CSV, staged in ``tmp``."""
    safe = cell.replace("|", "__").replace("/", "_").replace("[", "(").replace("]", ")")
    png = tmp / f"confusion_{safe}.png"
    _confusion_png(cm, classes, cell, png)
    csv = tmp / f"predictions_{safe}.csv"
    preds.to_csv(csv, index=False)
    client.log_artifact(cid, str(png))
    client.log_artifact(cid, str(csv))


def _log_fold(client, cfg: dict, exp_id: str, cid: str, r: pd.Series, history: list, now: int) -> str:
    from mlflow.entities import Metric, Param, RunTag

    from bench.results.tables import encode_param

    start, end = _span(r.to_frame().T)
    start, end = start or now, end or now
    fid = client.create_run(exp_id, run_name=fold_run_name(r["fold"]), start_time=start, tags={
        "mlflow.parentRunId": cid, "dualflow.level": "fold", "cell": str(r["cell"]), COMPLETE: "false"}).info.run_id
    fm = [Metric(f"fold_{m}", float(r[f"fold_{m}"]), end, 0) for m in ("uf1", "uar", "acc")]
    fm += [Metric(m, float(r[m]), end, 0) for m in ("train_seconds", "predict_seconds", "tune_seconds", "epochs_run")]
    if cfg.get("log_epochs", True):
        # Each epoch stamped when it ended: training starts after tuning; epochs record their seconds.
        tune = r.get("tune_seconds")
        t = start + (float(tune) * 1000 if pd.notna(tune) else 0.0)
        for step, h in enumerate(history):
            sec = h.get("seconds")
            t += float(sec) * 1000 if isinstance(sec, (int, float)) and np.isfinite(sec) else 0.0
            fm += [Metric(key, float(v), int(min(t, end)), step) for key, v in h.items()
                   if key != "epoch" and isinstance(v, (int, float)) and np.isfinite(v)]
    fp = [Param("fold", str(r["fold"])), Param("test_subjects", str(r["test_subjects"])[:6000]),
          Param("n_train", str(r["n_train"])), Param("n_test", str(r["n_test"])),
          Param("hparams", str(r["hparams"])[:6000])]
    fp += [Param(f"tuned.{k}", encode_param(v)[:6000]) for k, v in sorted(tuned_per_fold(unit_hparams(r)).items())]
    for i in range(0, len(fm), 900):  # MLflow caps a batch at 1000 metrics
        client.log_batch(fid, metrics=fm[i:i + 900], params=fp if i == 0 else [],
                         tags=[RunTag("status", str(r["status"]))] if i == 0 else [])
    client.set_terminated(fid, "FINISHED" if r["status"] == "ok" else "FAILED", end_time=end)
    client.set_tag(fid, COMPLETE, "true")
    return fid


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tracking", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("backfill", help="log a finished run directory's results table to MLflow")
    b.add_argument("run_dir")
    b.add_argument("--uri", default=None, help="tracking URI (default: sqlite:///RUN_DIR/mlflow.db)")
    b.add_argument("--experiment", default=None)
    a = ap.parse_args(argv)
    from bench.runtime.executors import sigterm_interrupts

    try:
        with sigterm_interrupts():  # SIGTERM stops a backfill as Ctrl-C does
            return _backfill(Path(a.run_dir), a.uri, a.experiment)
    except KeyboardInterrupt as e:
        signum = int(getattr(e, "signum", signal.SIGINT))
        print(f"interrupted ({signal.Signals(signum).name}): the MLflow logging is incomplete (the results table is "
              f"unchanged); rerun the same command to complete it", file=sys.stderr)
        return 128 + signum


def _backfill(run_dir: Path, uri: str | None, experiment: str | None) -> int:
    """``backfill RUN_DIR``: log the run's table (see ``main``); its exit status."""
    if not (run_dir / "results.parquet").exists():
        print(f"error: {run_dir} has no results.parquet (is it a finished run directory?)", file=sys.stderr)
        return 2
    facts = json.loads((run_dir / "run.json").read_text())
    cfg = {"uri": uri or default_uri(run_dir), "experiment": experiment or facts["study"], "log_epochs": True,
           "log_artifacts": True}
    from bench.runtime.rundir import locked

    try:
        # One writer per run directory: not while a study (or another backfill) writes it, and
        # never two processes creating its default mlflow.db at once.
        with locked(run_dir, purpose="write to", optional=True, command=f"python -m bench.tracking backfill {run_dir}"):
            check_tracking(cfg)
            info = log_run(run_dir, cfg, facts=facts)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    where = f"experiment {info['experiment_name']} run {info['study_run_id']} at {info['tracking_uri']}"
    if info.get("completed"):
        print(f"completed: {where}: an earlier logging of these results was interrupted; kept its "
              f"{info['cells_kept']} complete cell run(s), logged the {info['cells_logged']} missing one(s)"
              + (f", deleted {info['runs_deleted']} incomplete run(s) first" if info["runs_deleted"] else ""))
    else:
        print(("logged" if info["logged"] else "already logged") + f": {where}")
    for line in info.get("rerooted", []):
        print(f"moved run directory: artifact location re-rooted, {line}")
    cmd = ui_command(info["tracking_uri"])
    print((f"open: {cmd}, then " if cmd else "open: ") + info["ui_link"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
