"""Every option of every config group composes, and builds with exactly the keys its consumer takes.

Groups are the folders of ``bench/conf`` and options come from ``bench.core.config.group_options``, so a new
file is covered without editing this test. The compose part covers every group; the build part has one
entry per group in ``BUILDERS`` (``PENDING`` groups get theirs with the rewrite of their code). Also:
the schemas (``bench/core/schemas.py``) refuse a wrong type or an unknown key at compose time, clearly.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bench.core.config import CONF_DIR, PENDING_GROUPS, ConfigError, compose, group_options

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
CASES = [(g, o) for g in GROUPS for o in group_options(g)]
PENDING = {"model", "representation"}  # their code is being rewritten; add their builders to BUILDERS


def _choose(group: str, option: str) -> str:
    """The override choosing an option (``+`` for a group the root config does not select yet)."""
    return f"{'+' if group in PENDING_GROUPS else ''}{group}={option}"


def _filled(group: str, option: str, tmp: Path) -> dict:
    """The option's resolved node, with every mandatory (``???``) value set to a path under ``tmp``."""
    cfg = compose([_choose(group, option)])
    missing = sorted(OmegaConf.missing_keys(cfg[group]))  # full keys, e.g. dataset.casme2.root
    cfg = compose([_choose(group, option), *(f"{k}={tmp / 'absent'}" for k in missing)])
    return OmegaConf.to_container(cfg[group], resolve=True, throw_on_missing=True)


def _read_keys(*modules: str) -> set[str]:
    """String keys the modules read from mappings (``x.get("k")``, ``x["k"]``): what a node may hold."""
    keys: set[str] = set()
    for name in modules:
        try:
            mod = __import__(name, fromlist=["_"])
        except ImportError:  # a module being renamed by another change: the others still read the node
            continue
        src = inspect.getsource(mod)
        keys |= set(re.findall(r"""\.get\(\s*["'](\w+)["']""", src))
        keys |= set(re.findall(r"""\[\s*["'](\w+)["']\s*\]""", src))
    return keys


# -------------------------------------------------------------------------------------- builders

def build_trainer(node: dict, tmp: Path) -> None:
    from bench.training.engine import TrainConfig
    from bench.core.schemas import AugmentConfig, TrainerNode
    from representations.augment import FlowAugment

    # augment is the runner's, not an engine field: FlowAugment(channels, **augment) builds it;
    # inputs is the planner's: it moves into the cell's representation (tests/plan/test_recipe_inputs.py)
    assert set(node) == {f.name for f in dataclasses.fields(TrainConfig)} | {"augment", "inputs"}
    from bench.core.config import group_options

    assert set(node["inputs"]) <= set(group_options("representation"))
    assert set(node["augment"]) == {f.name for f in dataclasses.fields(AugmentConfig)}
    aug_params = set(inspect.signature(FlowAugment).parameters) - {"channels"}
    assert set(node["augment"]) <= aug_params
    params = {k: v for k, v in node.items() if k not in ("augment", "inputs")}
    cfg = TrainConfig.from_mapping(params, seed=3)  # the seed is replaced per unit
    assert cfg.seed == 3
    FlowAugment(("u", "v", "m"), **node["augment"])
    # one definition: the composed node is the schema's defaults plus one trainer file's own values
    # (default.yaml, or a recipe preset such as ststnet_paper.yaml)
    owns = []
    for p in sorted((CONF_DIR / "trainer").glob("[!_]*.yaml")):
        raw = OmegaConf.to_container(OmegaConf.load(p))
        owns.append({k: v for k, v in raw.items() if k != "defaults"})
    assert any(node == {**dataclasses.asdict(TrainerNode()), **own} for own in owns)


def build_protocol(node: dict, tmp: Path) -> None:
    from bench.protocols.folds import ProtocolSpec, ValidationSpec

    assert set(node) <= {f.name for f in dataclasses.fields(ProtocolSpec)}
    assert set(node["validation"]) == {f.name for f in dataclasses.fields(ValidationSpec)}
    spec = ProtocolSpec.from_mapping(node)
    assert spec.name == node["name"]


def build_flow(node: dict, tmp: Path) -> None:
    from bench.flow import compute_flows, create_backend, resolve_crop

    # bench/runner/prepare.py Prepared.flowset: backend, params (-> backend_params), crop, size, workers; the
    # rest as compute_flows keywords. The runner passes table, cache_dir and progress itself.
    taken = {p.name for p in inspect.signature(compute_flows).parameters.values() if p.kind == p.KEYWORD_ONLY}
    allowed = {"backend", "params", "crop", "size", "workers"} | taken - {"backend_params", "cache_dir", "progress"}
    assert set(node) <= allowed, sorted(set(node) - allowed)
    if node["backend"] == "precomputed":  # flows read from a precomputed dataset's files: no backend
        assert node["size"] is None or int(node["size"]) >= 8
        return
    backend = create_backend(node["backend"], **node["params"])
    # every flow file spells out its backend's full parameter set (the run log and cache key show them)
    assert set(node["params"]) == set(backend.defaults)
    crop = dict(node["crop"])
    if crop.get("method") == "auto":  # resolved by compute_flows from the table; both outcomes must build
        for method in ("none", "center"):
            resolve_crop({**crop, "method": method})
    else:
        resolve_crop(crop)
    assert int(node["size"]) >= 8 and int(node["workers"]) >= 1


def build_executor(node: dict, tmp: Path) -> None:
    from bench.runtime.executors import make_executor

    read = _read_keys("bench.runtime.executors")
    assert set(node) <= read, f"keys the executor never reads: {sorted(set(node) - read)}"
    if node["name"] == "ray":
        pytest.importorskip("ray", reason="optional extra; its keys were checked above")
    make_executor(node)


def build_tuning(node: dict, tmp: Path) -> None:
    from bench.training.engine import TrainConfig
    from bench.training.tuning import SPACE_ROOTS, apply_params, flatten_space

    read = _read_keys("bench.training.tuning", "bench.training.units", "bench.training.fold", "bench.training.settings", "bench.plan.planner")
    assert set(node) <= read, f"keys tuning never reads: {sorted(set(node) - read)}"
    assert int(node["n_trials"]) >= 0
    if int(node["n_trials"]) > 0:  # what bench.plan.planner.validate_cell checks before any work
        space = flatten_space(node["space"])
        assert space and all(k.split(".")[0] in SPACE_ROOTS for k in space)
        trainer = dataclasses.asdict(TrainConfig())
        apply_params({k: None for k in space if k.startswith("trainer.")}, {"trainer": trainer})
        assert node["pruner"] in ("none", "median") and node["storage"] in ("journal", "sqlite")
        assert int(node["inner_folds"]) >= 2


def build_tracking(node: dict, tmp: Path) -> None:
    read = _read_keys("bench.tracking.mlflow_store", "bench.runner.walk")
    assert set(node) <= read, f"keys tracking never reads: {sorted(set(node) - read)}"
    assert isinstance(node["enabled"], bool)


def build_dataset(node: dict, tmp: Path) -> None:
    from bench.data import DATASETS, DataError, list_datasets, load_dataset
    from bench.data.validate import OPTION_NAMES

    assert node["name"] in list_datasets()  # (imports every loader module)
    params = {k: v for k, v in node.items() if k != "name"}
    loader = DATASETS.get(node["name"])
    mod = sys.modules[loader.__module__]
    sig = inspect.signature(loader).parameters
    named = {n for n, p in sig.items() if p.kind != p.VAR_KEYWORD}
    if hasattr(mod, "_ACCEPTED"):  # the loader's own list (its **options are validation options)
        assert set(mod._ACCEPTED) <= named
        accepted = set(mod._ACCEPTED) | set(OPTION_NAMES)
    elif hasattr(mod, "_CFG_FIELDS"):  # synthetic: generator fields + validation options
        accepted = named | set(mod._CFG_FIELDS) | set(OPTION_NAMES)
    else:
        assert not any(p.kind == p.VAR_KEYWORD for p in sig.values()), f"{loader.__name__}: no key list"
        accepted = named
    assert set(params) <= accepted, sorted(set(params) - accepted)
    if "cache_dir" in params:  # generated data: build a tiny copy (same keys) in tmp
        table = load_dataset({**node, "cache_dir": str(tmp / "synthetic"), "n_subjects": 2, "clips_per_class": 1,
                              "size": 32})
        assert len(table.df)
        return
    # Roots point at a missing folder: a loader that accepted every key gets as far as the files.
    with pytest.raises(DataError):
        load_dataset(node)


def build_report_options(node: dict, tmp: Path) -> None:
    from bench.report.tables import ReportOptions

    # the reporter's own settings, field for field, and the file holds their defaults
    assert list(node) == [f.name for f in dataclasses.fields(ReportOptions)]
    assert ReportOptions.from_mapping(node) == ReportOptions()


BUILDERS = {
    "trainer": build_trainer,
    "protocol": build_protocol,
    "flow": build_flow,
    "executor": build_executor,
    "tuning": build_tuning,
    "tracking": build_tracking,
    "dataset": build_dataset,
    "report_options": build_report_options,
}


def test_every_group_has_a_builder_or_is_pending():
    assert set(GROUPS) == set(BUILDERS) | PENDING, (sorted(set(GROUPS) - set(BUILDERS) - PENDING),
                                                    sorted(set(BUILDERS) - set(GROUPS)))
    assert not set(BUILDERS) & PENDING


@pytest.mark.parametrize("group, option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_option_composes_and_builds(group, option, tmp_path):
    node = _filled(group, option, tmp_path)
    assert isinstance(node, dict) and node
    assert OmegaConf.missing_keys(OmegaConf.create(node)) == set()
    if group in BUILDERS:
        BUILDERS[group](node, tmp_path)


# ---------------------------------------------------------------------------- option hygiene

@pytest.mark.parametrize("group", GROUPS)
def test_underscore_files_are_building_blocks_not_options(group):
    options = group_options(group)
    assert options and not any(o.startswith("_") for o in options)
    for block in sorted(p.stem for p in (CONF_DIR / group).glob("_*.yaml")):
        with pytest.raises(ConfigError, match="not an option"):
            compose([_choose(group, block)])
    with pytest.raises(ConfigError) as e:
        compose([_choose(group, "no_such_option")])
    assert options[0] in str(e.value) and "\t_" not in str(e.value)


def test_dataset_files_share_the_validation_block():
    shared = {}
    for block in ("_validation_rows", "_validation"):
        raw = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "dataset" / f"{block}.yaml"))
        shared.update({k: v for k, v in raw.items() if k != "defaults"})
    for option in group_options("dataset"):
        raw = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "dataset" / f"{option}.yaml"))
        assert set(raw["defaults"]) & {"_validation", "_validation_rows"}, option
        copied = {k for k in shared if k in raw and raw[k] == shared[k]}
        assert not copied, f"{option} repeats shared validation values {sorted(copied)}"


def test_selection_keys_come_from_the_file_name():
    """A dataset, flow, protocol or executor file does not write its name; the composed node has it, in
    the place a first line of the file would have put it, and an override of it still works."""
    from bench.core.config import SELECTED_BY

    for group, key in SELECTED_BY.items():
        for option in group_options(group):
            raw = OmegaConf.load(CONF_DIR / group / f"{option}.yaml")
            node = compose([f"{group}={option}"])[group]
            assert node[key] == raw.get(key, option), (group, option)
    keys = list(compose(["dataset=casme2"]).dataset)
    assert keys[keys.index("overrides") + 1] == "name"  # after the shared validation block, before root
    assert compose(["dataset=casme2", "dataset.name=generic"]).dataset.name == "generic"
    assert compose(["protocol=group_kfold", "protocol.name=loso"]).protocol.name == "loso"
    assert list(compose(["protocol=megc2019"]).protocol)[0] == "name"  # the schema's place


def test_a_preset_starts_from_its_parent():
    """``defaults: [timm_resnet10t, _self_]``: the parent's keys (its name included), then the preset's,
    and the preset repeats none of the parent's values."""
    parent = OmegaConf.to_container(compose(["model=timm_resnet10t"]).model)
    child = OmegaConf.to_container(compose(["model=timm_resnet10t_half"]).model)
    assert child == {**parent, "stem_width": 16, "stage_widths": [32, 64, 128, 256]}
    assert list(child)[: len(parent)] == list(parent)
    for group in ("model", "dataset", "flow", "representation"):
        for option in group_options(group):
            raw = OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{option}.yaml"))
            for base in [e for e in raw.get("defaults", []) if isinstance(e, str) and not e.startswith("_")]:
                inherited = OmegaConf.to_container(compose([f"{group}={base}"])[group])
                repeated = {k for k, v in raw.items() if k != "defaults" and inherited.get(k) == v}
                assert not repeated, f"{group}/{option} repeats {base}'s values {sorted(repeated)}"


def test_report_options_are_in_the_root_config_and_report_false_still_switches_it_off():
    """The report's settings are a group of the root config (typed by its schema); report=true|false
    stays the documented switch."""
    from bench.report import ReportOptions

    cfg = compose([])
    assert ReportOptions.from_mapping(OmegaConf.to_container(cfg.report_options)) == ReportOptions()
    assert compose(["report=false"]).report is False
    assert compose(["report_options.n_boot=500"]).report_options.n_boot == 500
    with pytest.raises(ConfigError):
        compose(["report_options.n_boots=500"])  # an unknown key fails at compose time
    with pytest.raises(ConfigError):
        compose(["report_options.n_boot=many"])  # so does a wrong type


def test_config_files_do_not_repeat_schema_defaults():
    from bench.protocols.folds import ProtocolBase
    from bench.core.schemas import TrainerNode

    schema = {("trainer", "default"): TrainerNode(), **{("protocol", o): ProtocolBase() for o in group_options("protocol")}}
    for (group, option), defaults in schema.items():
        raw = OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{option}.yaml"))
        defaults = dataclasses.asdict(defaults)
        repeated = {k for k, v in raw.items() if k not in ("defaults", "name") and defaults.get(k) == v}
        assert not repeated, f"{group}/{option} repeats its schema's defaults {sorted(repeated)}"


# ------------------------------------------------------------------------- schema refusals

@pytest.mark.parametrize("override, fragments", [
    ("trainer.epochs=abc", ["trainer.epochs", "abc", "Integer", "40"]),
    ("trainer.lr=fast", ["trainer.lr", "fast", "Float"]),
    ("trainer.fused=maybe", ["trainer.fused", "maybe", "bool"]),
    ("trainer.augment.hflip=x", ["trainer.augment.hflip", "'x'", "Float"]),
    ("protocol.seed=abc", ["protocol.seed", "abc", "Integer"]),
    ("protocol.validation.n_val_subjects=some", ["protocol.validation.n_val_subjects", "some", "Integer"]),
    ("executor.workers=two", ["executor.workers", "two", "Integer", "2"]),
    ("executor.threads_per_worker=many", ["executor.threads_per_worker", "many", "Integer"]),
    ("tracking.enabled=perhaps", ["tracking.enabled", "perhaps", "bool", "True"]),
    ("tracking.log_epochs=often", ["tracking.log_epochs", "often", "bool"]),
    ("tuning.n_trials=many", ["tuning.n_trials", "many", "Integer", "0"]),
    (["tuning=optuna", "tuning.inner_folds=x"], ["tuning.inner_folds", "'x'", "Integer", "3"]),
    (["tuning=optuna", "tuning.timeout_s=soon"], ["tuning.timeout_s", "soon", "Float"]),
    (["executor=ray", "executor.num_cpus=all"], ["executor.num_cpus", "all", "Integer"]),
    (["+report_options=default", "report_options.n_boot=lots"], ["report_options.n_boot", "lots", "Integer", "2000"]),
    (["+report_options=default", "report_options.pdf=sometimes"], ["report_options.pdf", "sometimes", "bool"]),
])
def test_wrong_type_is_refused_at_compose_time(override, fragments):
    with pytest.raises(ConfigError) as e:
        compose(override if isinstance(override, list) else [override])
    msg = str(e.value)
    assert msg.startswith("bad value for config key"), msg
    for frag in fragments:
        assert frag in msg, (frag, msg)


@pytest.mark.parametrize("overrides, key, listed", [
    (["trainer.epohcs=3"], "trainer.epohcs", ["Did you mean epochs", "batch_size", "augment"]),
    (["trainer.augment.hflp=0.5"], "trainer.augment.hflp", ["Did you mean hflip", "rotate_deg", "translate_px"]),
    (["protocol.validation.mod=subjects"], "protocol.validation.mod", ["Did you mean mode", "val_fraction"]),
    (["protocol.k=3"], "protocol.k", ["name", "seed", "validation"]),  # only group_kfold has k
    (["executor.wrokers=2"], "executor.wrokers", ["Did you mean workers", "on_error", "unit_timeout_s"]),
    (["tracking.urii=x"], "tracking.urii", ["Did you mean uri", "check_timeout_s"]),
    (["tuning=optuna", "tuning.n_trails=3"], "tuning.n_trails", ["Did you mean n_trials", "inner_folds", "space"]),
    (["+report_options=default", "report_options.nboot=3"], "report_options.nboot", ["Did you mean n_boot", "dpi"]),
])
def test_unknown_key_is_refused_at_compose_time(overrides, key, listed):
    with pytest.raises(ConfigError) as e:
        compose(overrides)
    msg = str(e.value)
    assert f"unknown config key '{key}'" in msg, msg
    for frag in listed:
        assert frag in msg, (frag, msg)


def test_schema_converts_like_the_dataclass_and_keeps_types():
    cfg = OmegaConf.to_container(compose(["trainer.lr=1", "trainer.epochs=7", "protocol=group_kfold",
                                          "protocol.k=3", "trainer.class_weights=[1,2,3]"]), resolve=True)
    assert cfg["trainer"]["lr"] == 1.0 and isinstance(cfg["trainer"]["lr"], float)
    assert cfg["trainer"]["epochs"] == 7 and isinstance(cfg["trainer"]["epochs"], int)
    assert cfg["trainer"]["class_weights"] == [1, 2, 3] and cfg["protocol"]["k"] == 3
    assert "k" not in compose(["protocol=loso"]).protocol  # unit keys of loso cells must not change
    assert compose([]).trainer.class_weights == "none"


def test_plain_mappings_get_the_schema_rules():
    from bench.training.engine import TrainConfig
    from bench.protocols.folds import ProtocolError, ProtocolSpec

    with pytest.raises(ValueError, match=r"trainer\.epochs: .*'abc'.*Integer"):
        TrainConfig.from_mapping({"epochs": "abc"})
    with pytest.raises(ValueError, match=r"trainer\.amp: .*not a valid bool"):
        TrainConfig.from_mapping({"amp": "sometimes"})
    assert TrainConfig.from_mapping({"lr": 1}).lr == 1.0
    with pytest.raises(ProtocolError, match=r"protocol\.validation\.val_fraction: .*'half'"):
        ProtocolSpec.from_mapping({"name": "loso", "validation": {"val_fraction": "half"}})
    assert ProtocolSpec.from_mapping({"name": "group_kfold", "k": 3}).k == 3
