"""Plugins declare their own fit: representations say which phases and layout they carry, models say
what they can take (benchopt's ``skip``), and every entry's name is written once (its registry key)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bench.core.registry import Registry, UnknownNameError
from models import MODELS, create_model, model_skip
from models.off_apexnet import resolve_stream_channels
from representations import REPRESENTATIONS, create_representation, exactness_notes, list_representations

CONF = Path(__file__).resolve().parents[2] / "bench" / "conf"


# ------------------------------------------------------------------------------ names, once

def _registries() -> list[tuple[str, Registry]]:
    from bench.data import DATASETS, list_datasets
    from bench.flow.backends import FLOW_BACKENDS
    from bench.protocols.folds import PROTOCOLS

    list_datasets()  # imports every loader module
    return [("representation", REPRESENTATIONS), ("model", MODELS), ("dataset", DATASETS),
            ("protocol", PROTOCOLS), ("flow", FLOW_BACKENDS)]


# flow=precomputed reads a precomputed dataset's flow files (bench.flow.pipeline): an option, no backend
NOT_REGISTERED = {("flow", "precomputed")}


@pytest.mark.parametrize("group,registry", _registries(), ids=lambda x: x if isinstance(x, str) else "")
def test_config_files_are_named_for_their_registry_key(group, registry):
    """A plugin's own YAML is <key>.yaml and does not write its key (``name:``; flows: ``backend:``); a
    preset of another entry names it, or starts from its file (``defaults: [timm_resnet10t, _self_]``)."""
    from bench.core.config import SELECTED_BY, option_node

    key = SELECTED_BY.get(group, "name")
    names = set()
    for path in sorted((CONF / group).glob("[!_]*.yaml")):
        raw = OmegaConf.load(path)
        assert raw.get(key) != path.stem, f"{path}: {key}: repeats the file name"
        name = str(option_node(group, path.stem).get(key, path.stem))  # composed: a parent's name counts
        names.add(name.split(":")[0])
        if (group, path.stem) not in NOT_REGISTERED:
            assert name.split(":")[0] in registry, f"{path}: names an unknown entry {name}"
    assert set(registry.names()) <= names  # every entry has a config


def test_a_registry_prefix_is_dropped_from_function_names():
    reg = Registry("thing", prefix="load_")

    @reg.register
    def load_widget():
        return 1

    @reg.register
    def gadget():
        return 2

    assert reg.names() == ["gadget", "widget"] and reg.get("widget") is load_widget
    assert list(reg) == ["widget", "gadget"]  # iteration: registration order


def test_dataset_loaders_are_named_by_their_function():
    from bench.data import DATASETS, list_datasets

    for name in list_datasets():
        assert DATASETS.get(name).__name__ == f"load_{name}"


def test_representation_classes_are_registered_under_their_own_name():
    for key in list_representations():
        assert REPRESENTATIONS.get(key).name == key


def test_registry_takes_the_name_from_the_entry_and_builds_from_a_node():
    reg = Registry("thing")

    @reg.register
    def widget(size=1, colour="red"):
        return (size, colour)

    class Gadget:
        name = "gadget"

    reg.register(Gadget)
    assert reg.names() == ["gadget", "widget"]
    assert reg.build({"name": "widget", "size": 3}) == (3, "red")
    assert reg.build({"name": "widget"}, colour="blue") == (1, "blue")
    with pytest.raises(KeyError, match="no 'name'"):
        reg.build({"size": 3})
    with pytest.raises(UnknownNameError, match="Did you mean widget"):
        reg.build({"name": "widgit"})
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("widget")(lambda: None)

    class Liar:
        name = "liar"

    with pytest.raises(ValueError, match="disagrees"):
        reg.register("other")(Liar)


# ------------------------------------------------------------------ representations declare

@pytest.mark.parametrize("name,channels,phases,groups", [
    ("single_phase", None, (1,), (("u1", "v1", "m1"),)),
    ("single_phase_offset", None, (2,), (("u2", "v2", "m2"),)),
    ("strain", None, (1,), (("u1", "v1", "strain1"),)),
    ("strain", ["u1", "v1", "strain1", "u2", "v2", "strain2"], (1, 2),
     (("u1", "v1", "strain1"), ("u2", "v2", "strain2"))),
    ("two_phase_stack", None, (1, 2), (("u1", "v1", "m1"), ("u2", "v2", "m2"))),
    ("two_phase_stack", ["u1", "v1", "u2", "v2"], (1, 2), (("u1", "v1"), ("u2", "v2"))),
    ("two_phase_stack", ["u1", "u2", "v1", "v2"], (1, 2), None),  # interleaved: not one block per phase
    ("cof", None, (1, 2), None),  # mc reads both phases
    ("cof", ["u1", "v1", "m1n"], (1,), (("u1", "v1", "m1n"),)),
    ("mm_cof", None, (1, 2), None),  # the gate comes from Mc, so gated u1 reads phase 2 too
])
def test_representations_declare_phases_and_layout(name, channels, phases, groups):
    rep = create_representation(name, channels=channels)
    assert rep.phases == phases
    assert rep.phase_groups == groups


def test_every_representation_declares_each_channel_it_can_produce():
    for key in list_representations():
        cls = REPRESENTATIONS.get(key)
        assert cls.available == tuple(cls.channel_phases) and set(cls.default_channels) <= set(cls.available)
        assert all(set(ph) <= {1, 2} and ph for ph in cls.channel_phases.values()), key


def test_exactness_notes_come_from_each_representation():
    notes = exactness_notes("exact", has_phase2=False, stored_channels=["u", "v", "strain"])
    assert set(notes) == set(list_representations())
    assert notes["single_phase"] == "exact"
    assert notes["strain"] == "exact; the stored strain channel is not used (strain is recomputed from u, v)"
    for two in ("single_phase_offset", "cof", "mm_cof", "two_phase_stack"):
        assert notes[two].startswith("unavailable: no apex->offset flow"), two
    assert exactness_notes("exact", has_phase2=True)["cof"] == "exact"


# ------------------------------------------------------------------------- models declare

def _fmanet(**params):
    return {"name": "fmanet", **params}


@pytest.mark.parametrize("rep,params,skip,why", [
    ("two_phase_stack", {}, False, ""),
    ("single_phase", {}, True, "streams=both needs both phases"),
    ("cof", {}, True, "mix the phases"),
    ("mm_cof", {}, True, "mix the phases"),
    ("single_phase", {"streams": "onset_apex"}, False, ""),
    ("single_phase_offset", {"streams": "onset_apex"}, True, "reads phase 1"),
    ("single_phase_offset", {"streams": "apex_offset"}, False, ""),
    ("two_phase_stack", {"streams": "apex_offset"}, False, ""),
    ("strain", {"phase_channels": 2}, True, "reads 2 channels per phase"),
])
def test_fmanet_skip_rule(rep, params, skip, why):
    got, reason = model_skip(_fmanet(**params), create_representation(rep))
    assert got is skip and why in reason
    if not skip:  # what it accepts, it builds and runs
        r = create_representation(rep)
        create_model("fmanet", len(r.channels), 3, channels=r.channels, **params)


def test_fmanet_spatial_modulation_needs_a_magnitude_where_it_gates():
    rep = create_representation("two_phase_stack", channels=["u1", "m1", "v1", "u2", "m2", "v2"])
    skip, reason = model_skip(_fmanet(), rep)
    assert skip and "has v1 there" in reason
    assert not model_skip(_fmanet(magnitude_index=1), rep)[0]


def test_off_apexnet_reads_the_layout_from_channel_names():
    """Its u/v streams come from the names, and agree with the bare-API layout for the suite's inputs."""
    for name in list_representations():
        rep = create_representation(name)
        c = len(rep.channels)
        by_name = resolve_stream_channels(c, "auto", rep.channels)
        assert by_name == resolve_stream_channels(c, "auto"), name
    five = create_representation("cof", channels=["u1", "v1", "u2", "v2", "mc"])
    assert resolve_stream_channels(5, "auto", five.channels) == [[0, 2, 4], [1, 3, 4]]
    with pytest.raises(ValueError, match="in_chans=5"):
        resolve_stream_channels(5, "auto")  # without names, a 5-channel input cannot be laid out
    m = create_model("off_apexnet", 5, 3, channels=five.channels)
    assert m.stream_channels == [[0, 2, 4], [1, 3, 4]]
    no_uv = create_representation("cof", channels=["m1", "m2", "mc"])
    skip, reason = model_skip({"name": "off_apexnet", "stream_channels": "auto"}, no_uv)
    assert skip and "need u and v channels" in reason
    assert not model_skip({"name": "off_apexnet", "stream_channels": [[0], [1]]}, no_uv)[0]


def test_models_without_a_rule_take_any_input():
    for name in ("ststnet", "timm:resnet10t"):
        assert model_skip({"name": name}, create_representation("cof", channels=["mc"])) == (False, "")
