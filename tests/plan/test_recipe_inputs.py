"""A published recipe is the whole recipe: ``trainer=ststnet_paper`` feeds ``stored`` unscaled (issue 29).

STSTNet's released code trains on the release PNGs' raw 0..255 pixels (``cv2.imread``, no /255);
``trainer.inputs`` carries that into the cell's representation, where the key and the manifest see it.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.composite_fixture import write_release_fixture
from bench.core.config import ConfigError
from bench.plan.planner import plan_study

# The README's reproduction command, on the HTNet release layout.
REPRODUCE = ["study=megc2019_phases", "dataset=megc2019_htnet", "trainer=ststnet_paper", "study.models=[ststnet]",
             "study.representations=[stored]", "tracking=none", "report=false"]


@pytest.fixture(scope="module")
def htnet(tmp_path_factory):
    return write_release_fixture(tmp_path_factory.mktemp("rel") / "htnet", "htnet", seed=1)


def test_the_reproduction_command_feeds_the_raw_pixels_and_the_manifest_says_so(htnet, tmp_path):
    from bench.results.manifest import build_manifest, manifest_items
    from bench.runner.prepare import Prepared

    plan = plan_study([*REPRODUCE, f"dataset.root={htnet}", f"paths.cache={tmp_path}"])
    assert {c.representation.name for c in plan.cells} == {"stored[rescale=false]"}  # 3 seeds: seeds=auto
    cell = plan.cells[0]
    assert cell.cfg["representation"]["rescale"] is False and "inputs" not in cell.cfg["trainer"]
    prep = Prepared(plan, progress=False)
    x, _, _ = prep.representation(cell)
    assert x.max() > 1 and x.max() <= 255 and np.array_equal(x, np.round(x))  # pixel values reach the model
    items = dict(manifest_items(build_manifest(plan, prep)))
    assert "input scale: the raw pixel values" in items["Representation stored[rescale=false]"]


def test_the_scale_is_in_the_key_and_the_study_item_or_command_line_wins(htnet, tmp_path):
    ovs = [*REPRODUCE, f"dataset.root={htnet}", f"paths.cache={tmp_path}"]
    raw = plan_study(ovs).cells[0]
    item = plan_study([*ovs, "study.representations=[{option: stored, params: {rescale: true}}]"]).cells[0]
    cli = plan_study([*ovs, "representation.rescale=true"]).cells[0]
    default = plan_study([o for o in ovs if not o.startswith("trainer=")]).cells[0]
    assert item.cfg["representation"]["rescale"] is cli.cfg["representation"]["rescale"] is True
    assert default.cfg["representation"]["rescale"] is True  # stored's own default: pixel / 255
    assert raw.cfg_hash != default.cfg_hash  # the scale is part of the unit key
    # the same representation config under another recipe: only the trainer differs
    assert {k: v for k, v in item.cfg.items() if k != "trainer"} == \
        {k: v for k, v in default.cfg.items() if k != "trainer"}


def test_recipes_without_inputs_leave_every_other_representation_alone(htnet, tmp_path):
    plan = plan_study(["study=megc2019_phases", "dataset=megc2019_htnet", f"dataset.root={htnet}",
                       "trainer=ststnet_paper", "study.models=[ststnet]", "study.representations=[single_phase]",
                       f"paths.cache={tmp_path}", "tracking=none", "report=false"])
    assert {c.representation.name for c in plan.cells} == {"single_phase"}


def test_inputs_naming_no_representation_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="trainer.inputs names"):
        plan_study(["study=smoke", "+trainer.inputs={stord: {rescale: false}}"])


def test_the_scale_or_channels_study_plans_both_scales_and_the_recomputed_inputs(htnet, tmp_path):
    plan = plan_study(["study=stored_scale", f"dataset.root={htnet}", f"paths.cache={tmp_path}",
                       "tracking=none", "report=false"])
    reps = {c.representation.name: c.cfg["representation"].get("rescale") for c in plan.cells}
    assert reps == {"stored_raw": False, "stored_unit": True, "strain": None, "single_phase": None}
    assert {c.model.name for c in plan.cells} == {"ststnet", "off_apexnet"}
    assert plan.seed_policy is not None and plan.seed_policy.max_seeds == 6
    assert plan.base.report_options.baseline == "stored_raw"
