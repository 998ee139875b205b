"""A tuned study's Optuna storage opens in ``optuna-dashboard`` (issue 17): the README's command,
started on 127.0.0.1, lists one study per outer fold, named ``<cell> / fold <subject>``."""

from __future__ import annotations

import json
import shutil
import sys
import urllib.request
from pathlib import Path

import pytest

from bench.results.tables import read_tables
from bench.run import run_study

from tests.helpers.local_servers import free_port, served

DASHBOARD = shutil.which("optuna-dashboard") or (
    str(Path(sys.executable).parent / "optuna-dashboard") if (Path(sys.executable).parent / "optuna-dashboard").exists()
    else None)


@pytest.mark.slow
@pytest.mark.ci
@pytest.mark.skipif(DASHBOARD is None, reason="optuna-dashboard not installed (pip install -e '.[dashboard]'; "
                                              "the dev extra has it)")
def test_dashboard_lists_one_study_per_outer_fold(tmp_path):
    run_dir = run_study([
        "study=smoke",
        "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
        "study.representations=[single_phase]", "trainer.epochs=1", "flow.size=32", "tuning=optuna",
        "tuning.n_trials=2", "tuning.inner_folds=2", "~tuning.space.trainer.epochs", "tracking=none",
        "report=false", "progress=false", f"paths.runs={tmp_path / 'runs'}", f"paths.reports={tmp_path / 'reports'}",
        f"paths.cache={tmp_path / 'cache'}"])
    results, _ = read_tables(run_dir)
    assert (results["status"] == "ok").all(), results["error"].tolist()
    want = {f"{r.cell} / fold {r.fold}" for r in results.itertuples()}
    assert len(want) == 3 and (results["fold"] == results["test_subjects"]).all()  # LOSO: fold = test subject

    port = free_port()
    # The README's command, as a user types it (the journal file path is the storage).
    cmd = [DASHBOARD, str(run_dir / "optuna.journal"), "--host", "127.0.0.1", "--port", str(port), "--quiet"]
    with served(cmd, f"http://127.0.0.1:{port}/api/studies", tmp_path / "dashboard.log", what="optuna-dashboard") as page:
        studies = json.loads(page.decode())["study_summaries"]
        names = {s["study_name"] for s in studies}
        assert names == want
        for s in studies:
            attrs = {a["key"]: a["value"] for a in s.get("user_attrs", [])}
            unit = results[results["unit_key"] == attrs["unit_key"]].iloc[0]  # the study's unit
            assert s["study_name"] == f"{unit['cell']} / fold {unit['fold']}"
        # each study holds the two trials of its fold's inner tuning
        sid = studies[0]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{sid}?after=0", timeout=10) as r:
            detail = json.loads(r.read().decode())
        assert len(detail["trials"]) == 2
