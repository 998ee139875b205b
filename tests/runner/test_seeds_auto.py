"""Seeds until decided: which cells get the next seed, from hand-made decisions (bench.runner.seeds)."""

from bench.plan.planner import AxisItem, Cell
from bench.runner.seeds import SeedPolicy, combo, grow, seeds_per_combo, with_seed


def _cell(rep: str, model: str, seed: int) -> Cell:
    cfg = {"representation": {"name": rep}, "model": {"name": model}}
    c = Cell(AxisItem("dataset", "synthetic"), AxisItem("flow", "tvl1"), AxisItem("representation", rep),
             AxisItem("model", model), seed=seed, cfg=cfg)
    return with_seed(c, seed)


def _grid(reps=("single_phase", "cof", "mm_cof"), models=("ststnet",), seeds=(0, 1, 2)):
    return [_cell(r, m, s) for r in reps for m in models for s in seeds]


def test_only_the_cells_of_undecided_comparisons_get_a_seed():
    cells = _grid()
    base, cof, mm = (combo(_cell(r, "ststnet", 0)) for r in ("single_phase", "cof", "mm_cof"))
    new, rnd = grow(cells, [(cof, base)], SeedPolicy(start=3, max_seeds=10), round_no=1)
    assert sorted((c.representation.name, c.seed) for c in new) == [("cof", 3), ("single_phase", 3)]
    assert all(combo(c) != mm for c in new)  # mm_cof was decided: no seed for it
    assert rnd.added == {"synthetic|tvl1|cof|ststnet": 3, "synthetic|tvl1|single_phase|ststnet": 3}
    assert rnd.undecided == ["synthetic|tvl1|cof|ststnet vs single_phase"] and rnd.capped == []


def test_the_shared_baseline_gets_one_seed_per_round():
    cells = _grid()
    base, cof, mm = (combo(_cell(r, "ststnet", 0)) for r in ("single_phase", "cof", "mm_cof"))
    new, _ = grow(cells, [(cof, base), (mm, base)], SeedPolicy(), round_no=1)
    assert sorted((c.representation.name, c.seed) for c in new) == [("cof", 3), ("mm_cof", 3), ("single_phase", 3)]


def test_nothing_undecided_adds_nothing():
    new, rnd = grow(_grid(), [], SeedPolicy(), round_no=1)
    assert new == [] and rnd.added == {}


def test_the_cap_stops_a_comparison_and_says_so():
    cells = _grid(seeds=range(4))
    base, cof = (combo(_cell(r, "ststnet", 0)) for r in ("single_phase", "cof"))
    new, rnd = grow(cells, [(cof, base)], SeedPolicy(start=3, max_seeds=4), round_no=2)
    assert new == [] and rnd.capped == ["synthetic|tvl1|cof|ststnet vs single_phase"]


def test_a_cell_behind_its_baseline_catches_up_on_the_baselines_seeds():
    # The baseline already has 5 seeds (another comparison asked for them); cof has 3: cof gets seed 3,
    # a seed the baseline has, so the pair grows on common seeds; the baseline also gets its next seed.
    cells = _grid(reps=("cof",)) + [_cell("single_phase", "ststnet", s) for s in range(5)]
    base, cof = combo(_cell("single_phase", "ststnet", 0)), combo(_cell("cof", "ststnet", 0))
    new, _ = grow(cells, [(cof, base)], SeedPolicy(), round_no=3)
    assert sorted((c.representation.name, c.seed) for c in new) == [("cof", 3), ("single_phase", 5)]


def test_a_new_seed_is_the_planners_cell_under_that_seed():
    c = _cell("cof", "ststnet", 0)
    d = with_seed(c, 7)
    assert (d.seed, d.cfg, d.settings) == (7, c.cfg, c.settings) and d.cfg_hash != c.cfg_hash
    assert with_seed(d, 0).cfg_hash == c.cfg_hash  # the key depends on the config and the seed only
    assert seeds_per_combo([c, d]) == {combo(c): [0, 7]}


def test_with_seed_gives_the_key_the_planner_gives():
    from bench.plan.planner import plan_study

    plan = plan_study(["study=smoke", "study.seeds=[0,4]"])
    by_seed = {c.seed: c for c in plan.cells if combo(c) == combo(plan.cells[0])}
    assert with_seed(by_seed[0], 4).cfg_hash == by_seed[4].cfg_hash


# ---------------------------------------------------------------- a real (tiny) study with seeds=auto

import io  # noqa: E402
import json  # noqa: E402

import pytest  # noqa: E402

TINY = [
    "study=smoke", "study.seeds=auto", "study.max_seeds=4",
    "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
    "study.representations=[single_phase, cof, two_phase_stack]", "trainer.epochs=1", "flow.size=32",
    "tracking=none", "report=false", "progress=false", "executor.workers=1",
]


def _seeds(run_dir):
    import pandas as pd

    res = pd.read_parquet(run_dir / "results.parquet")
    return {r: sorted(set(g["seed"])) for r, g in res.groupby("representation")}


def test_seeds_auto_adds_seeds_to_the_undecided_cells_only_and_resumes(tmp_path, session_cache, monkeypatch):
    import bench.runner.seeds as seeds
    from bench.run import run_study

    # The decision is crafted: cof vs single_phase stays undecided for two rounds, two_phase_stack is
    # decided at once. (The rule itself is tested in tests/evaluation/test_verdicts.py.)
    asked = []

    def crafted(predictions, n_classes, baseline, rule):
        asked.append(sorted(set(predictions["seed"])))
        cof, base = ("synthetic", "tvl1", "cof", "ststnet"), ("synthetic", "tvl1", "single_phase", "ststnet")
        return [(cof, base)] if len(asked) <= 2 else []

    monkeypatch.setattr(seeds, "undecided_pairs", crafted)
    ovs = [*(o.replace("max_seeds=4", "max_seeds=5") for o in TINY), f"paths.cache={session_cache}",
           f"paths.runs={tmp_path / 'runs'}"]
    out = io.StringIO()
    run_dir = run_study(ovs, out=out)
    assert _seeds(run_dir) == {"cof": [0, 1, 2, 3, 4], "single_phase": [0, 1, 2, 3, 4], "two_phase_stack": [0, 1, 2]}
    auto = json.loads((run_dir / "run.json").read_text())["seeds_auto"]
    assert [sorted(r["added"].values()) for r in auto["rounds"]] == [[3, 3], [4, 4]]
    assert auto["seeds"]["synthetic|tvl1|two_phase_stack|ststnet"] == 3
    assert "round 1" in out.getvalue() and "round 2" in out.getvalue()

    # Resume: the same command replays the rounds from the finished units and trains nothing.
    asked.clear()
    out = io.StringIO()
    run_study(ovs, out=out)
    assert "round 1" in out.getvalue() and "round 2" in out.getvalue()  # the same rounds, replayed
    assert asked == [[0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4]]
    assert "resume: 27 finished unit(s) found" in out.getvalue() and ", 0 to run" in out.getvalue()
    assert _seeds(run_dir)["cof"] == [0, 1, 2, 3, 4]


def test_seeds_auto_with_the_real_rule_stops_at_the_cap_or_when_decided(tmp_path, session_cache):
    from bench.run import run_study

    ovs = [*TINY, "study.representations=[single_phase, cof]", f"paths.cache={session_cache}",
           f"paths.runs={tmp_path / 'runs'}"]
    run_dir = run_study(ovs, out=io.StringIO())
    auto = json.loads((run_dir / "run.json").read_text())["seeds_auto"]
    n = set(auto["seeds"].values())
    assert n <= {3, 4} and len(n) == 1  # the pair grows together, never past max_seeds=4
    if n == {3}:  # decided on the first three seeds
        assert auto["stopped"] == "every comparison decided" and auto["rounds"] == []
    else:  # undecided: one seed more, then the cap
        assert auto["rounds"][-1]["capped"] and "max_seeds=4" in auto["stopped"]


def test_max_seeds_without_auto_or_below_the_start_is_refused():
    from bench.core.config import ConfigError
    from bench.plan.planner import plan_study

    with pytest.raises(ConfigError, match="applies to study.seeds=auto only"):
        plan_study(["study=smoke", "+study.max_seeds=5"])
    with pytest.raises(ConfigError, match="study.max_seeds"):
        plan_study(["study=smoke", "study.seeds=auto", "+study.max_seeds=2"])
