"""A model's recipe travels with the model (issue 26): ``bench/conf/trainer/<model>.yaml`` is where
every study's cells of that model start, below the study's, its items' and the command line's
overrides; a trainer preset chosen on purpose (``trainer=ststnet_paper``, ``trainer=default``)
replaces it; the cell's settings and the manifest say where each value came from."""

from __future__ import annotations

import pytest

from bench.core.config import ConfigError, compose
from bench.core.schemas import TrainConfig
from bench.plan.planner import MODEL_RECIPE, model_recipes, plan_study
from bench.results.manifest import cell_recipes, manifest_items

QUIET = ["tracking=none", "report=false"]
STSTNET = "model recipe (bench/conf/trainer/ststnet.yaml)"


def _by_model(plan) -> dict:
    return {c.model.name: c for c in plan.cells}


def test_every_model_recipe_is_a_typed_trainer_node_named_for_a_model():
    assert {"ststnet", "fmanet", "timm_resnet10t_half", "off_apexnet"} <= set(model_recipes())
    for model in model_recipes():
        node = compose([f"trainer={model}"]).trainer  # composed through the trainer schema
        cfg = TrainConfig.from_mapping({k: v for k, v in node.items() if k not in ("augment", "inputs")})
        assert cfg.seed == 0 and cfg.epochs >= 1, model
    assert compose(["trainer=ststnet"]).trainer.scheduler == "onecycle"


def test_a_study_that_does_not_override_gets_the_model_recipe():
    plan = plan_study(["study=flow_backends", "study.flows=[tvl1]", *QUIET])
    cell = plan.cells[0]
    assert (cell.cfg["trainer"]["epochs"], cell.cfg["trainer"]["lr"], cell.cfg["trainer"]["scheduler"]) == \
        (20, 5e-3, "onecycle")
    assert cell.recipe.preset == "ststnet" and cell.recipe.chosen_by == MODEL_RECIPE
    assert cell.recipe.source_of("lr") == STSTNET and cell.recipe.source_of("batch_size") == "trainer default"
    assert cell.settings.recipe == cell.recipe and cell.settings.trainer.scheduler == "onecycle"
    assert cell.settings.recipe.params()["recipe_source.epochs"] == STSTNET  # what MLflow gets
    # a model without a recipe file trains on the trainer defaults
    plain = plan_study(["study=flow_backends", "study.flows=[tvl1]", "study.models=[timm_resnet10t]", *QUIET]).cells[0]
    assert plain.recipe.preset == "default" and plain.cfg["trainer"]["epochs"] == TrainConfig().epochs


def test_study_item_and_command_line_overrides_win_over_the_recipe():
    base = ["study=flow_backends", "study.flows=[tvl1]", *QUIET]
    item = plan_study([*base, 'study.models=[{option: ststnet, overrides: ["trainer.lr=1e-2"]}]']).cells[0]
    assert item.cfg["trainer"]["lr"] == 1e-2 and item.cfg["trainer"]["epochs"] == 20
    assert item.recipe.source_of("lr") == "study item" and item.recipe.source_of("epochs") == STSTNET
    cli = plan_study([*base, "trainer.epochs=7"]).cells[0]
    assert cli.cfg["trainer"]["epochs"] == 7 and cli.cfg["trainer"]["scheduler"] == "onecycle"
    assert cli.recipe.source_of("epochs") == "command line"
    both = plan_study([*base, 'study.models=[{option: ststnet, overrides: ["trainer.epochs=9"]}]',
                       "trainer.epochs=7"]).cells[0]
    assert both.cfg["trainer"]["epochs"] == 7  # the command line over the item
    # the study's own overrides: smoke names trainer=default and sets epochs
    smoke = plan_study(["study=smoke", *QUIET]).cells[0]
    assert smoke.recipe.preset == "default" and smoke.recipe.chosen_by == "study"
    assert (smoke.cfg["trainer"]["epochs"], smoke.cfg["trainer"]["lr"], smoke.cfg["trainer"]["scheduler"]) == \
        (3, TrainConfig().lr, "none")
    assert smoke.recipe.source_of("epochs") == "study"


def test_a_named_trainer_preset_replaces_every_model_recipe():
    plan = plan_study(["study=ablation_phases", "study.representations=[single_phase]", "trainer=ststnet_paper",
                       *QUIET])
    for cell in plan.cells:
        tr = cell.cfg["trainer"]
        assert (tr["epochs"], tr["lr"], tr["batch_size"], tr["scheduler"]) == (500, 5e-5, 256, "none"), cell.label
        assert cell.recipe.preset == "ststnet_paper" and cell.recipe.chosen_by == "command line"
        assert cell.recipe.source_of("lr") == "trainer preset ststnet_paper (command line)"
    off = plan_study(["study=ablation_phases", "study.representations=[single_phase]", "trainer=default", *QUIET])
    assert {c.cfg["trainer"]["epochs"] for c in off.cells} == {TrainConfig().epochs}  # no model recipe


def _old_ablation_phases() -> list[str]:
    """ablation_phases as it was written before the recipes moved: every recipe an explicit item override
    over the trainer defaults (trainer=default: no model recipe), FMANet's streams an item param."""
    return ["study=ablation_phases", "trainer=default", *QUIET,
            'study.models=[{option: timm_resnet10t_half, label: timm_resnet10t_half, overrides: ["trainer.epochs=20"]},'
            ' {option: ststnet, label: ststnet, overrides: ["trainer.epochs=20", "trainer.lr=5e-3", '
            '"trainer.scheduler=onecycle"]},'
            ' {option: fmanet, label: fmanet, params: {streams: auto}, overrides: ["trainer.epochs=30", "trainer.lr=3e-3"]}]']


def test_ablation_phases_cells_and_keys_are_unchanged_by_the_move():
    new = plan_study(["study=ablation_phases", *QUIET])
    old = plan_study(_old_ablation_phases())
    assert [c.label for c in new.cells] == [c.label for c in old.cells] and len(new.cells) == 30
    assert [c.cfg_hash for c in new.cells] == [c.cfg_hash for c in old.cells]  # the units' keys derive from it
    assert [c.cfg for c in new.cells] == [c.cfg for c in old.cells]
    fm = next(c for c in new.cells if c.model.name == "fmanet" and c.representation.name == "single_phase")
    assert fm.cfg["model"]["streams"] == "auto" and fm.recipe.source_of("epochs").startswith(MODEL_RECIPE)


def test_the_manifest_states_each_models_recipe_and_where_each_value_came_from():
    plan = plan_study(["study=ablation_phases", "study.representations=[single_phase]", "trainer.epochs=5", *QUIET])
    recipes = cell_recipes(plan.cells)
    st = recipes["ststnet"]
    assert (st["epochs"], st["lr"], st["scheduler"], st["recipe"]) == (5, 5e-3, "onecycle", "ststnet")
    assert st["sources"]["epochs"] == "command line" and st["sources"]["lr"] == STSTNET
    assert st["sources"]["batch_size"] == "trainer default"
    assert recipes["fmanet"]["lr"] == 3e-3 and recipes["fmanet"]["recipe"] == "fmanet"
    items = dict(manifest_items({"trainer": recipes}))
    assert "one-cycle" in items["Training recipe [ststnet]"] or "onecycle" in items["Training recipe [ststnet]"]
    src = items["Recipe source [ststnet]"]
    assert src.startswith(f"{STSTNET}: lr=0.005, scheduler=onecycle; command line: epochs=5"), src
    assert "model recipe (bench/conf/trainer/fmanet.yaml): lr=0.003" in items["Recipe source [fmanet]"]


@pytest.fixture(scope="module")
def htnet(tmp_path_factory):
    from benchmarks.composite_fixture import TINY_ROWS, write_release_fixture

    return write_release_fixture(tmp_path_factory.mktemp("rel") / "htnet", "htnet", rows=TINY_ROWS, seed=1)


def test_the_composite_study_plans_fmanets_single_phase_baseline_and_decides_with_seeds(htnet, tmp_path):
    plan = plan_study(["study=megc2019_phases", f"dataset.root={htnet}", f"paths.cache={tmp_path}", *QUIET])
    combos = {(c.representation.name, c.model.name) for c in plan.cells}
    assert combos == {(r, m) for r in ("single_phase", "stored") for m in ("ststnet", "off_apexnet", "fmanet")}
    fm = next(c for c in plan.cells if c.label.endswith("|single_phase|fmanet|0"))
    assert fm.cfg["model"]["streams"] == "auto" and fm.cfg["trainer"]["epochs"] == 30
    assert plan.seed_policy is not None and plan.seed_policy.start == 3
    assert sorted({c.seed for c in plan.cells}) == [0, 1, 2]
    assert compose(["study=leakage_audit_megc2019"]).study.seeds == "auto"  # the same policy, the same start


def test_every_study_takes_max_seeds_and_a_seed_list_still_overrides_auto(htnet, tmp_path):
    """study.max_seeds is a known key of every study (unset: the policy's default), so a user can cap
    seeds=auto on the composite; a seed list given instead still plans with no policy."""
    base = ["study=megc2019_phases", f"dataset.root={htnet}", f"paths.cache={tmp_path}", *QUIET]
    assert plan_study([*base, "study.max_seeds=5"]).seed_policy.max_seeds == 5
    listed = plan_study([*base, "study.seeds=[0]"])
    assert listed.seed_policy is None and {c.seed for c in listed.cells} == {0}
    assert compose(["study=smoke"]).study.max_seeds is None  # declared, unset: the policy's default
    with pytest.raises(ConfigError, match="applies to study.seeds=auto only"):  # refused before any data work
        plan_study(["study=smoke", "study.max_seeds=5", *QUIET])
