"""MLflow tracking written from the results table (the source of truth).

Runs are nested study -> cell -> fold. Everything is logged after the units finished, from the
persisted tables, so a tracking server that goes away mid-study loses nothing: re-log with
``python -m bench.tracking backfill RUN_DIR [--uri URI]``. Logging is idempotent per results
content: a study run whose results hash is already in the experiment is not logged twice.

Open a finished study:  ``mlflow ui --backend-store-uri sqlite:///runs/<study>/mlflow.db --host 127.0.0.1``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.config import ConfigError


def default_uri(run_dir: str | Path) -> str:
    # As given (relative stays relative, to the working directory): the URI is printed in the report
    # and on stdout as a command to copy, and a committed report must not carry this machine's paths.
    return f"sqlite:///{Path(run_dir) / 'mlflow.db'}"


def _client(uri: str, timeout: float = 10):
    # Fail fast on an unreachable server instead of mlflow's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(timeout)))
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def check_tracking(cfg: dict) -> None:
    """Raise ConfigError when the tracking store cannot be reached or written."""
    uri = cfg["uri"]
    try:
        _client(uri, cfg.get("check_timeout_s", 10)).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - any failure here means: do not start training
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"MLflow tracking URI {uri!r} is not reachable: {first[:300]}. "
                          f"Start the server, fix tracking.uri, or run with tracking=none.") from None


def _experiment(client, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp else client.create_experiment(name)


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


def log_run(run_dir: str | Path, cfg: dict, *, facts: dict | None = None, records: list[dict] | None = None) -> dict:
    """Log a finished run directory to MLflow; returns the ids for run.json."""
    from mlflow.entities import Metric, Param, RunTag

    from bench.metrics import confusion_matrix, scores_from_confusion
    from bench.results import CELL_AXES, UnitStore, read_tables

    run_dir = Path(run_dir)
    results, predictions = read_tables(run_dir)
    if facts is None:
        facts = json.loads((run_dir / "run.json").read_text())
    classes = list(facts["classes"])
    k = len(classes)
    histories = {}
    store = UnitStore(run_dir)
    for rec in records if records is not None else (store.load(u) for u in results["unit_key"]):
        if rec:
            histories[rec["row"]["unit_key"]] = rec.get("history") or []
    uri = cfg.get("uri") or default_uri(run_dir)
    client = _client(uri, cfg.get("check_timeout_s", 10))
    exp_id = _experiment(client, cfg.get("experiment") or facts["study"])
    results_hash = str(pd.util.hash_pandas_object(results[["unit_key", "status", "fold_uf1"]], index=False).sum())
    existing = client.search_runs([exp_id], filter_string=f"tags.`dualflow.results_hash` = '{results_hash}'",
                                  max_results=1)
    if existing:
        return {"tracking_uri": uri, "experiment_id": exp_id, "experiment_name": cfg.get("experiment"),
                "study_run_id": existing[0].info.run_id, "logged": False}
    now = int(time.time() * 1000)
    versions = facts.get("versions", {})
    base_tags = [RunTag("git_commit", str(facts.get("git_commit", ""))), RunTag("dualflow.study", facts["study"])]
    base_tags += [RunTag(f"version.{p}", str(v)) for p, v in versions.items()]
    parent = client.create_run(exp_id, run_name=facts["study"], tags={
        "dualflow.results_hash": results_hash, "dualflow.run_dir": str(run_dir.resolve())})
    pid = parent.info.run_id
    client.log_batch(pid, params=[Param("study", facts["study"]), Param("n_cells", str(results["cell"].nunique())),
                                  Param("protocol", json.dumps(facts.get("protocol"))[:6000]),
                                  Param("tuning", json.dumps(facts.get("tuning"))[:6000])], tags=base_tags)
    # Confusion PNGs and prediction CSVs are staged here for log_artifact, then removed.
    with tempfile.TemporaryDirectory(prefix="dualflow-mlflow-") as tmp_dir:
        tmp = Path(tmp_dir)
        if cfg.get("log_artifacts", True):
            for name in ("config.yaml", "results.csv", "run.json"):
                if (run_dir / name).exists():
                    client.log_artifact(pid, str(run_dir / name))
        # keyed like the results' "cell" column (dataset|flow|representation|model|seed)
        preds_by_cell = {"|".join(map(str, keys)): g for keys, g in predictions.groupby(list(CELL_AXES))} \
            if len(predictions) else {}
        for cell, rows in results.groupby("cell", sort=True):
            r0 = rows.iloc[0]
            cell_run = client.create_run(exp_id, run_name=cell, tags={"mlflow.parentRunId": pid})
            cid = cell_run.info.run_id
            preds = preds_by_cell.get(cell, predictions.iloc[:0])
            params = [Param(a, str(r0[a])) for a in (*CELL_AXES, "cell_hash")]
            params += [Param("rep_params", str(r0["rep_params"])[:6000]), Param("model_params", str(r0["model_params"])[:6000])]
            metrics = [Metric("n_failed_folds", float((rows["status"] != "ok").sum()), now, 0)]
            if len(preds):
                cm = confusion_matrix(preds["y_true"].to_numpy(), preds["y_pred"].to_numpy(), k)
                s = scores_from_confusion(cm)
                metrics += [Metric(m, float(s[m]), now, 0) for m in ("uf1", "uar", "acc")]
                if cfg.get("log_artifacts", True):
                    safe = cell.replace("|", "__").replace("/", "_").replace("[", "(").replace("]", ")")
                    png = tmp / f"confusion_{safe}.png"
                    _confusion_png(cm, classes, cell, png)
                    csv = tmp / f"predictions_{safe}.csv"
                    preds.to_csv(csv, index=False)
                    client.log_artifact(cid, str(png))
                    client.log_artifact(cid, str(csv))
            client.log_batch(cid, metrics=metrics, params=params, tags=base_tags)
            for _, r in rows.iterrows():
                fr = client.create_run(exp_id, run_name=f"fold {r['fold']}", tags={"mlflow.parentRunId": cid})
                fid = fr.info.run_id
                fm = [Metric(f"fold_{m}", float(r[f"fold_{m}"]), now, 0) for m in ("uf1", "uar", "acc")]
                fm += [Metric(m, float(r[m]), now, 0) for m in ("train_seconds", "predict_seconds", "tune_seconds", "epochs_run")]
                if cfg.get("log_epochs", True):
                    for step, h in enumerate(histories.get(r["unit_key"], [])):
                        fm += [Metric(key, float(v), now, step) for key, v in h.items()
                               if key != "epoch" and isinstance(v, (int, float)) and np.isfinite(v)]
                fp = [Param("fold", str(r["fold"])), Param("test_subjects", str(r["test_subjects"])[:6000]),
                      Param("n_train", str(r["n_train"])), Param("n_test", str(r["n_test"])),
                      Param("hparams", str(r["hparams"])[:6000])]
                for i in range(0, len(fm), 900):  # MLflow caps a batch at 1000 metrics
                    client.log_batch(fid, metrics=fm[i:i + 900], params=fp if i == 0 else [],
                                     tags=[RunTag("status", str(r["status"]))] if i == 0 else [])
                client.set_terminated(fid, "FINISHED" if r["status"] == "ok" else "FAILED")
            client.set_terminated(cid, "FINISHED" if (rows["status"] == "ok").all() else "FAILED")
    client.set_terminated(pid)
    return {"tracking_uri": uri, "experiment_id": exp_id, "experiment_name": cfg.get("experiment") or facts["study"],
            "study_run_id": pid, "logged": True}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tracking", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("backfill", help="log a finished run directory's results table to MLflow")
    b.add_argument("run_dir")
    b.add_argument("--uri", default=None, help="tracking URI (default: sqlite:///RUN_DIR/mlflow.db)")
    b.add_argument("--experiment", default=None)
    a = ap.parse_args(argv)
    run_dir = Path(a.run_dir)
    if not (run_dir / "results.parquet").exists():
        print(f"error: {run_dir} has no results.parquet (is it a finished run directory?)", file=sys.stderr)
        return 2
    facts = json.loads((run_dir / "run.json").read_text())
    cfg = {"uri": a.uri or default_uri(run_dir), "experiment": a.experiment or facts["study"], "log_epochs": True,
           "log_artifacts": True}
    try:
        check_tracking(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    info = log_run(run_dir, cfg, facts=facts)
    print(("logged" if info["logged"] else "already logged") + f": experiment {info['experiment_name']} "
          f"run {info['study_run_id']} at {info['tracking_uri']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
