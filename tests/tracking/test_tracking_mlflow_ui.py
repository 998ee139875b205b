"""MLflow as a user meets it (issue 17), through the real tools: a study's store served by a real
``mlflow server`` on 127.0.0.1, read through its REST API, and the printed UI link opened in headless
Chromium after the JavaScript app has run.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.tracking import mlflow_store as tracking
from bench.results.tables import read_tables
from bench.run import run_study

from tests.helpers.local_servers import free_port, served

TINY = [
    "study=smoke",
    "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
    "study.representations=[single_phase, two_phase_stack]",
    "trainer.epochs=2", "flow.size=32", "report=false", "progress=false",
]


def get(url: str, body: dict | None = None, timeout: float = 10) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


def hand_scores(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict:
    """UF1 / UAR / accuracy by their definitions, class by class (classes with 0/0 terms left out)."""
    f1s, recs = [], []
    for c in range(k):
        tp = int(((y_true == c) & (y_pred == c)).sum())
        fp = int(((y_true != c) & (y_pred == c)).sum())
        fn = int(((y_true == c) & (y_pred != c)).sum())
        if 2 * tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
        if tp + fn:
            recs.append(tp / (tp + fn))
    return {"uf1": float(np.mean(f1s)), "uar": float(np.mean(recs)), "acc": float((y_true == y_pred).mean())}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A finished tiny study logged to its default store, and what it printed."""
    import io

    root = tmp_path_factory.mktemp("mlflow_ui")
    out = io.StringIO()
    run_dir = run_study([*TINY, f"paths.runs={root / 'runs'}", f"paths.reports={root / 'reports'}",
                         f"paths.cache={root / 'cache'}"], out=out)
    return run_dir, out.getvalue()


@pytest.fixture(scope="module")
def server(logged):
    """``mlflow server`` on 127.0.0.1 serving the run's store; its base URL."""
    run_dir, _ = logged
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking.default_uri(run_dir),
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with served(cmd, f"{base}/health", run_dir.parent / "mlflow-server.log", what="mlflow server", timeout=120,
                env={**os.environ, "MLFLOW_TRACKING_URI": ""}):
        yield base


def test_tracking_turns_mlflow_telemetry_off_unless_the_user_set_it():
    """The suite runs offline: MLflow 3 would otherwise post usage telemetry from a background thread."""
    import subprocess
    import sys

    code = ("import bench.tracking.mlflow_store, os; from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY; "
            "print(os.environ['MLFLOW_DISABLE_TELEMETRY'], MLFLOW_DISABLE_TELEMETRY.get())")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["true", "True"], out.stderr
    out = subprocess.run([sys.executable, "-c", code], env={**env, "MLFLOW_DISABLE_TELEMETRY": "false"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["false", "False"], out.stderr


def test_ui_link_and_command():
    assert tracking.ui_link("7", "sqlite:///runs/x/mlflow.db", view=False) == \
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert tracking.ui_link("7", "http://host:5001/") == \
        "http://host:5001/#/experiments/7/runs?workflowType=machine_learning&viewStateShareKey=dualflow-cells"
    assert tracking.ui_command("sqlite:///runs/x/mlflow.db") == \
        "mlflow ui --backend-store-uri sqlite:///runs/x/mlflow.db --host 127.0.0.1"
    assert tracking.ui_command("https://mlflow.example.org") is None
    assert tracking._ms(1.5) == 1500 and tracking._ms(float("nan")) is None and tracking._ms(None) is None
    assert tracking._ms("1970-01-01T00:00:10+00:00") == 10_000 and tracking._ms("1970-01-01T00:00:10") == 10_000


@pytest.mark.slow
@pytest.mark.ci
def test_mlflow_server_rest_has_nested_runs_metrics_kind_and_real_times(logged, server):
    run_dir, printed = logged
    results, preds = read_tables(run_dir)
    facts = json.loads((run_dir / "run.json").read_text())
    api = f"{server}/api/2.0/mlflow"
    exp = get(f"{api}/experiments/get-by-name?experiment_name=smoke")["experiment"]
    tags = {t["key"]: t["value"] for t in exp.get("tags", [])}
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert json.loads(tags["mlflow.sharedViewState.dualflow-cells"])["orderByKey"] == "metrics.`uf1`"
    # artifacts under the run directory, not ./mlruns of the working directory
    assert exp["artifact_location"] == (run_dir / "mlartifacts").resolve().as_uri()
    runs = get(f"{api}/runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 1000})["runs"]

    def tag(r, k):
        return {t["key"]: t["value"] for t in r["data"].get("tags", [])}.get(k)

    study = [r for r in runs if tag(r, "mlflow.parentRunId") is None]
    assert len(study) == 1
    study = study[0]
    cells = [r for r in runs if tag(r, "mlflow.parentRunId") == study["info"]["run_id"]]
    assert sorted(r["info"]["run_name"] for r in cells) == sorted(results["cell"].unique())
    ms = lambda v: int(float(v) * 1000)  # noqa: E731
    for c in cells:
        name = c["info"]["run_name"]
        rows = results[results["cell"] == name]
        metrics = {m["key"]: m["value"] for m in c["data"]["metrics"]}
        params = {p["key"]: p["value"] for p in c["data"]["params"]}
        assert params["representation"] == rows["representation"].iloc[0] and params["model"] == "ststnet"
        assert params["p_representation"] == rows["p_representation"].iloc[0]
        g = preds[(preds["representation"] == params["representation"]) & (preds["seed"] == int(params["seed"]))]
        want = hand_scores(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), len(facts["classes"]))
        for m in ("uf1", "uar", "acc"):
            assert metrics[m] == pytest.approx(want[m], abs=1e-12), (name, m)
        assert not any(k.startswith("uf1_") for k in metrics)  # one source database: no per-source split
        # the cell run spans its folds' recorded times, each fold run its unit's own
        assert int(c["info"]["start_time"]) == ms(rows["started_at"].min())
        assert int(c["info"]["end_time"]) == ms(rows["finished_at"].max())
        folds = [r for r in runs if tag(r, "mlflow.parentRunId") == c["info"]["run_id"]]
        assert sorted(r["info"]["run_name"] for r in folds) == sorted(f"fold {f}" for f in rows["fold"])
        for f in folds:
            row = rows[rows["fold"] == f["info"]["run_name"].removeprefix("fold ")].iloc[0]
            assert int(f["info"]["start_time"]) == ms(row["started_at"])
            assert int(f["info"]["end_time"]) == ms(row["finished_at"])
            assert ms(row["finished_at"]) - ms(row["started_at"]) >= int(row["train_seconds"] * 1000) - 1
            hist = get(f"{api}/metrics/get-history?run_id={f['info']['run_id']}&metric_key=train_loss")["metrics"]
            assert [h["step"] for h in sorted(hist, key=lambda h: h["step"])] == [0, 1]  # trainer.epochs=2
    # the study run spans the whole study: from its start to its end, around every unit
    s0, s1 = int(study["info"]["start_time"]), int(study["info"]["end_time"])
    assert s0 <= ms(results["started_at"].min()) and s1 >= ms(results["finished_at"].max())
    assert s1 - s0 >= ms(results["finished_at"].max()) - ms(results["started_at"].min())
    assert s1 - s0 <= (facts["wall_seconds"] + 2) * 1000
    listed = get(f"{api}/artifacts/list?run_id={study['info']['run_id']}")
    assert {"results.csv", "run.json"} <= {f["path"] for f in listed["files"]}
    assert (run_dir / "mlartifacts" / study["info"]["run_id"] / "artifacts" / "results.csv").is_file()
    if (run_dir / "manifest.json").exists():  # the run manifest (bench.results.manifest): an artifact, and its items as tags
        assert "manifest.json" in {f["path"] for f in listed["files"]}
        assert any(k.startswith("manifest.") for k in {t["key"] for t in study["data"]["tags"]})
    # the printed next steps name the UI command and the link of this experiment
    assert f"mlflow ui --backend-store-uri {tracking.default_uri(run_dir)} --host 127.0.0.1" in printed
    assert tracking.ui_link(exp["experiment_id"], tracking.default_uri(run_dir)) in printed


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def dump_dom(url: str, profile: Path, budget_ms: int = 40_000) -> str:
    """The page after its scripts ran (headless Chromium, no network beyond 127.0.0.1 needed)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1920,1080",
           f"--virtual-time-budget={budget_ms}", "--dump-dom", url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=150).stdout


def visible_text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())


@pytest.mark.slow
@pytest.mark.ci
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed; .ci/run installs it "
                                              "(apt-get install -y chromium)")
def test_printed_ui_link_shows_cell_runs_and_uf1_in_chromium(logged, server, tmp_path):
    run_dir, printed = logged
    m = re.search(r"then open (http://127\.0\.0\.1:5000/\S+)", printed)
    assert m, printed
    link = m.group(1).replace("http://127.0.0.1:5000", server)
    results, preds = read_tables(run_dir)
    text = visible_text(dump_dom(link, tmp_path / "profile"))
    assert "Model training" in text and "GenAI overview" not in text  # MLflow's runs view, not traces
    header = text[text.find("Run Name"):]
    for cell in results["cell"].unique():
        assert cell in header, (cell, header[:1500])
    assert re.search(r"\buf1\b", header), header[:1500]
    # the cells' pooled UF1 is in the table as the UI prints it (shortest round-trip repr, like Python)
    run_metrics = {r.data.tags["mlflow.runName"]: r.data.metrics for r in _runs(run_dir)}
    for cell in results["cell"].unique():
        assert repr(run_metrics[cell]["uf1"]) in header or f"{run_metrics[cell]['uf1']:.4g}" in header


def _runs(run_dir: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.default_uri(run_dir))
    exp = client.get_experiment_by_name("smoke")
    return client.search_runs([exp.experiment_id], max_results=1000)


@pytest.mark.slow
def test_per_source_metrics_and_an_old_experiments_artifact_location(tmp_path):
    """A composite's cell runs carry uf1_/uar_<source>; an experiment created elsewhere keeps its
    artifact location (MLflow cannot move it), and logging says so."""
    from mlflow.tracking import MlflowClient

    from tests.helpers.fabricate import fabricate_run

    run = fabricate_run(tmp_path, reps=("single_phase",), models=("ststnet",), seeds=(0,),
                        sources=["casme2", "smic", "samm"], aux=False, examples=False)
    res = pd.read_parquet(run / "results.parquet")  # the report fixture's table, plus the runner's unit keys
    res.assign(unit_key=res["cell"] + "#" + res["fold"]).to_parquet(run / "results.parquet")
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment("toy_study", artifact_location=(tmp_path / "elsewhere").as_uri())
    info = tracking.log_run(run, {"uri": uri, "experiment": "toy_study"})
    assert "cannot move it" in info["note"] and info["artifact_location"] == (tmp_path / "elsewhere").as_uri()
    exp = client.get_experiment_by_name("toy_study")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # set on the old experiment too
    cell = next(r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("dualflow.level") == "cell")
    preds = pd.read_parquet(run / "predictions.parquet")
    for src in ("casme2", "smic", "samm"):
        g = preds[preds["source_dataset"] == src]
        want = hand_scores(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), 3)
        assert cell.data.metrics[f"uf1_{src}"] == pytest.approx(want["uf1"], abs=1e-12)
        assert cell.data.metrics[f"uar_{src}"] == pytest.approx(want["uar"], abs=1e-12)
    # units without recorded times (an older run directory): the runs are still logged, at logging time
    assert cell.info.start_time and cell.info.end_time >= cell.info.start_time
