"""FMANet's default on synthetic_release: the classes differ only apex->offset, so the dual-stream
network must be clearly above chance, and its single-stream (onset->apex) variant at chance.
A real study run (TV-L1 flow, LOSO, pooled metrics), with the main study's FMANet recipe."""

from __future__ import annotations

import pytest

from bench.results.tables import read_tables
from bench.run import run_study, summary_table

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_fmanet_default_sees_the_release_phase(run_overrides):
    # streams=auto: dual-stream on the stack, single-stream on single_phase (as in ablation_phases)
    run_dir = run_study(["study=release_phase", "study.models=[fmanet]", "model.streams=auto",
                         "study.representations=[single_phase,two_phase_stack]", "trainer.epochs=30",
                         "trainer.lr=3e-3", "tracking=none", "report=false", *run_overrides])
    _, preds = read_tables(run_dir)
    tab = summary_table(preds, 3).set_index("representation")
    n = int(tab.loc["single_phase", "n"])
    # chance: accuracy 1/3 with sd sqrt(2/9/n) ~ 0.039 at n = 144
    assert tab.loc["single_phase", "ACC"] < 1 / 3 + 3 * (2 / 9 / n) ** 0.5
    assert tab.loc["two_phase_stack", "UAR"] > 0.6
    assert tab.loc["two_phase_stack", "UF1"] > tab.loc["single_phase", "UF1"] + 0.2
