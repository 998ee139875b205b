"""Config composition and study planning: crossing, exclusion, overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.core.config import ConfigError, compose, group_options
from bench.run import main
from bench.plan.planner import plan_study
from studies import list_studies

README = Path(__file__).resolve().parents[2] / "README.md"


# studies of real data (the MEGC2019 flow-release presets) need their folder; planning reads no file,
# so any path does
DATA_ROOTS = {"megc2019_phases": ["dataset.root=/nonexistent/HTNet"],
              "leakage_audit_megc2019": ["dataset.root=/nonexistent/HTNet"],
              "stored_scale": ["dataset.root=/nonexistent/HTNet"]}


@pytest.mark.parametrize("name", list_studies())
def test_every_study_plans(name):
    plan = plan_study([f"study={name}", *DATA_ROOTS.get(name, [])])
    assert plan.cells, name
    assert len({c.cfg_hash for c in plan.cells}) == len(plan.cells), f"{name}: two cells share a config"


def test_every_study_is_in_the_readme_table_and_back():
    """The README's study table and studies/ name the same studies (the table is what users read)."""
    text = README.read_text()
    table = text[text.index("## Studies"):text.index("## Configuration")]
    named = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    assert named == set(list_studies())
    assert {"ablation_phases", "release_phase", "smoke"} <= named


def test_groups_exist():
    """Every config group of the root config is a folder of options, and its default is one of them."""
    from bench.core.config import CONF_DIR, GROUPS, PENDING_GROUPS

    folders = {d.name for d in CONF_DIR.iterdir() if d.is_dir()}
    assert folders == (set(GROUPS) | set(PENDING_GROUPS)) - {"study"}
    choices = compose([], with_choices=True).hydra.runtime.choices
    for g in GROUPS:
        assert choices[g] in group_options(g), g


def test_ablation_phases_grid_and_exclusion():
    plan = plan_study(["study=ablation_phases"])
    reps = {c.representation.name for c in plan.cells}
    models = {c.model.name for c in plan.cells}
    assert reps == {"single_phase", "cof", "mm_cof", "two_phase_stack"}
    assert {"ststnet", "fmanet"} <= models and any(m.startswith("timm") for m in models)
    seeds = sorted({c.seed for c in plan.cells})
    assert len(seeds) >= 3  # issue 15: several seeds per cell by default
    fman = [c for c in plan.cells if c.model.option == "fmanet"]
    # streams=auto (issue 16): single-stream on single_phase, dual-stream on the two-phase stack, per seed
    assert sorted(c.representation.name for c in fman) == sorted(["single_phase", "two_phase_stack"] * len(seeds))
    assert len(plan.excluded) == 2  # cof and mm_cof mix the phases in every channel
    # the study writes no exclusion: FMANet's own skip rule leaves these out, each with its reason
    assert "exclude" not in plan.study
    for e in plan.excluded:
        assert "|fmanet: fmanet " in e and ("phase" in e), e
    assert any(e.startswith("synthetic|tvl1|cof|fmanet: ") and "mix the phases" in e for e in plan.excluded)


def test_cfg_job_prints_each_exclusion_with_its_reason(capsys):
    assert main(["study=ablation_phases", "--cfg", "job"]) == 0
    out = capsys.readouterr().out
    excluded = [line for line in out.splitlines() if line.startswith("#   excluded: ")]
    assert len(excluded) == 2 and all("fmanet" in line and ": fmanet " in line for line in excluded)


def test_study_exclude_rule_still_works_and_says_so():
    plan = plan_study(["study=smoke", "+study.exclude=[{representation: two_phase_stack}]"])
    assert [c.representation.name for c in plan.cells] == ["single_phase"]
    assert plan.excluded == ["synthetic|tvl1|two_phase_stack|ststnet: excluded by the study's exclude rule"]


def test_every_cell_skipped_names_the_reasons():
    with pytest.raises(ConfigError, match=r"(?s)every cell is excluded:.*single_phase\|fmanet: fmanet with streams=both"):
        plan_study(["study=smoke", "study.models=[fmanet]", "study.representations=[single_phase]",
                    "model.streams=both"])  # FMANet's default, streams=auto, takes single_phase


def test_group_override_replaces_axis_and_lists_override():
    plan = plan_study(["study=ablation_phases", "representation=cof", "study.models=[ststnet]"])
    seeds = plan.study["seeds"]
    assert [(c.representation.name, c.model.name, c.seed) for c in plan.cells] == [("cof", "ststnet", s) for s in seeds]


def test_item_params_reach_the_cell_config():
    plan = plan_study(["study=ablation_theta"])
    thetas = sorted(c.cfg["representation"]["theta1"] for c in plan.cells if c.representation.option == "cof")
    assert thetas == [0.0, 0.25, 0.5, 0.75, 1.0]
    labels = {c.representation.name for c in plan.cells}
    assert "cof[theta1=0.25,theta2=0.75]" in labels


def test_study_overrides_apply_and_command_line_wins():
    plan = plan_study(["study=smoke"])
    assert all(c.cfg["trainer"]["epochs"] == 3 for c in plan.cells)
    plan = plan_study(["study=smoke", "trainer.epochs=7"])
    assert all(c.cfg["trainer"]["epochs"] == 7 for c in plan.cells)


def test_unknown_study_lists_the_existing_ones():
    with pytest.raises(ConfigError) as e:
        compose(["study=nope"])
    for s in ("ablation_phases", "smoke"):
        assert s in str(e.value)


def test_unknown_representation_and_model_list_what_exists():
    with pytest.raises(ConfigError) as e:
        plan_study(["study=smoke", "study.representations=[single_phase,nope]"])
    assert "nope" in str(e.value) and "cof" in str(e.value)
    with pytest.raises(ConfigError) as e:
        compose(["model=nope"])
    assert "ststnet" in str(e.value)


def test_unknown_key_lists_the_keys_that_exist():
    with pytest.raises(ConfigError) as e:
        compose(["trainer.epochz=3"])
    msg = str(e.value)
    assert "trainer.epochz" in msg and "epochs" in msg


def test_unknown_item_param_is_an_error():
    with pytest.raises(ConfigError) as e:
        plan_study(["study=smoke", "study.representations=[{option: cof, params: {thetaX: 1}}]"])
    assert "thetaX" in str(e.value)


def test_cli_cfg_job_prints_config(capsys):
    assert main(["study=ablation_phases", "--cfg", "job"]) == 0
    out = capsys.readouterr().out
    assert "name: ablation_phases" in out and "planned cells" in out


def test_cli_bad_override_exit_code(capsys):
    assert main(["study=nope"]) == 2
    assert "ablation_phases" in capsys.readouterr().err
    assert main(["notanoverride"]) == 2


def test_missing_dataset_root_is_a_clear_error():
    with pytest.raises(ConfigError) as e:
        plan_study(["study=smoke", "dataset=casme2"])
    assert "dataset.root" in str(e.value)


def test_axis_key_override_reaches_only_the_options_that_have_it():
    plan = plan_study(["study=ablation_phases", "model.fusion=sum"])
    fman = [c for c in plan.cells if c.model.option == "fmanet"]
    assert fman and all(c.cfg["model"]["fusion"] == "sum" for c in fman)
    assert all("fusion" not in c.cfg["model"] for c in plan.cells if c.model.option != "fmanet")
    with pytest.raises(ConfigError) as e:
        plan_study(["study=ablation_phases", "model.fusoin=sum"])
    assert "model.fusoin" in str(e.value) and "fusion" in str(e.value)
