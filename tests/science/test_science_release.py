"""The suite's own proof that it can see what the FMANet paper claims.

On ``synthetic_release`` every class shares the onset->apex motion and differs only in the
apex->offset phase: a single-phase (onset->apex) representation must come out at chance, and a
two-phase one clearly above it. A real study run (TV-L1 flow, STSTNet, LOSO, pooled metrics).
"""

from __future__ import annotations

import pytest

from bench.results.tables import read_tables
from bench.run import summary_table, run_study

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.mark.ci
def test_release_phase_single_phase_at_chance_two_phase_above(run_overrides):
    run_dir = run_study(["study=release_phase", "study.models=[ststnet]",
                         "study.representations=[single_phase,two_phase_stack]", "tracking=none", "report=false",
                         *run_overrides])
    _, preds = read_tables(run_dir)
    tab = summary_table(preds, 3).set_index("representation")
    n = int(tab.loc["single_phase", "n"])
    # 3 balanced classes, n = 144: chance accuracy 1/3 with sd sqrt(2/9/n) ~ 0.039; 0.45 is 3 sd above.
    assert tab.loc["single_phase", "ACC"] < 1 / 3 + 3 * (2 / 9 / n) ** 0.5
    assert tab.loc["single_phase", "UAR"] < 0.45
    # the apex->offset phase carries the class: far above chance
    assert tab.loc["two_phase_stack", "UAR"] > 0.6
    assert tab.loc["two_phase_stack", "UF1"] > tab.loc["single_phase", "UF1"] + 0.2
