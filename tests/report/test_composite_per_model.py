"""The composite's answer per model and per source database (issue 26): every model of the setting gets
its sentence under Full and under each database, and a model without a baseline cell says so instead
of being left out (what megc2019_phases's FMANet was before it had its single-phase cell)."""

from __future__ import annotations

import pandas as pd

from bench.report import ReportOptions, make_report
from tests.helpers.fabricate import fabricate_run
from tests.report.test_report_answer import section

SOURCES = ("Full", "SMIC", "CASME II", "SAMM")


def _composite(tmp_path, drop=None):
    run = fabricate_run(tmp_path, reps=("single_phase", "cof[theta1=0.3]"), models=("ststnet", "fmanet"),
                        seeds=(0, 1), dataset="megc2019", sources=("smic", "casme2", "samm"), n_subjects=9,
                        aux=False, examples=False, flows=None)
    if drop:  # leave one (representation, model) cell out of the run, as a model that skips it would
        for name in ("predictions.parquet", "results.parquet"):
            df = pd.read_parquet(run / name)
            df[~((df["representation"] == drop[0]) & (df["model"] == drop[1]))].to_parquet(run / name)
    out = make_report(run, tmp_path / "r", ReportOptions(n_boot=100, pdf=False))
    return section((out / "report.md").read_text(), "MEGC2019 composite: Full / SMIC / CASME II / SAMM")


def test_every_model_has_its_answer_under_every_source_database(tmp_path):
    comp = _composite(tmp_path)
    for source in SOURCES:
        block = comp.split(f"**{source}**:", 1)[1].split("**", 1)[0]
        assert "- With STSTNet, COF[theta1=0.3] is " in block and "- With FMANet, COF[theta1=0.3] is " in block, source


def test_a_model_without_its_baseline_cell_says_so_per_source(tmp_path):
    comp = _composite(tmp_path, drop=("single_phase", "fmanet"))
    for source in SOURCES:
        block = comp.split(f"**{source}**:", 1)[1].split("**", 1)[0]
        assert "- With STSTNet, COF[theta1=0.3] is " in block, source
        assert "- With FMANet, no comparison: it has no single-phase flow cell (the baseline)." in block, (source, block)
