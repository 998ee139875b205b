"""Plan a study: cross its axes (benchopt-style) into cells, each with its own resolved config.

A study YAML (``studies/<name>.yaml``) holds::

    name: ablation_phases
    description: ...
    datasets: [synthetic]                 # axis lists; each item is an option of the config group
    flows: [tvl1]                         # or {option: cof, params: {theta1: 0.3}, label: ..., overrides: [...]}
    representations: [single_phase, cof]
    models: [ststnet, {option: timm_resnet10t, overrides: ["trainer.epochs=20"]}]
    seeds: [0]
    exclude:                              # optional, for a scientific reason only: every key must match
      - {model: timm_resnet10t, representation: [mm_cof]}
    overrides: ["trainer.epochs=30"]      # Hydra overrides for every cell (the command line wins)

Each model's training recipe travels with it: ``bench/conf/trainer/<model>.yaml`` (a trainer preset
named for the model option, typed by the trainer schema) is where every cell of that model starts.
Precedence, lowest first: the trainer schema's defaults < the model's recipe < the study's
``overrides`` < a study item's ``overrides`` < the command line. A trainer preset chosen on purpose
anywhere (``trainer=ststnet_paper``; ``trainer=default`` for none) is a whole recipe and replaces the
model's. Each cell records where its values came from (``Cell.recipe``, ``CellSettings.recipe``).

Cells a model cannot take are left out by the model itself (its registry ``skip``, benchopt-style:
FMANet reads one block of channels per phase, so it skips COF), each with its reason in
``Plan.excluded`` (``--cfg job`` and ``--plan`` print them); a study lists its axes and nothing else.

An axis the study leaves out (or ``null``) uses the group option chosen in the composed config. A
group chosen on the command line (``dataset=casme2``, ``model=fmanet``) replaces the study's list
for that axis; any list can also be replaced directly (``study.models=[ststnet]``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import itertools
import typing
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from bench.core.config import ConfigError, compose, group_options
from bench.core.hashing import stable_hash
from bench.core.schemas import conforms, describe
from bench.training.settings import CellSettings, RecipeSource

AXES = {"datasets": "dataset", "flows": "flow", "representations": "representation", "models": "model"}
CELL_KEYS = ("dataset", "flow", "representation", "model", "trainer", "protocol", "tuning", "input_size")


@dataclass(frozen=True)
class AxisItem:
    group: str
    option: str
    params: tuple[tuple[str, Any], ...] = ()
    label: str = ""
    overrides: tuple[str, ...] = ()  # Hydra overrides for the cells of this item (e.g. its own epochs)

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        if not self.params:
            return self.option
        return f"{self.option}[{','.join(f'{k}={_fmt(v)}' for k, v in self.params)}]"


@dataclass
class Cell:
    dataset: AxisItem
    flow: AxisItem
    representation: AxisItem
    model: AxisItem
    seed: int
    cfg: dict  # resolved config of the cell (CELL_KEYS)
    cfg_hash: str = ""
    settings: CellSettings | None = None  # its protocol, trainer and tuning, typed (set by the planner)
    recipe: RecipeSource = field(default_factory=RecipeSource)  # where its trainer recipe came from

    @property
    def label(self) -> str:
        return "|".join([self.dataset.name, self.flow.name, self.representation.name, self.model.name, str(self.seed)])


@dataclass(frozen=True)
class SeedPolicy:
    """``study.seeds: auto``: every cell starts with ``start`` seeds (0 .. start-1) and the walk adds
    one per round to the cells of comparisons still undecided, up to ``max_seeds`` (bench.runner.seeds)."""

    start: int = 3
    max_seeds: int = 10


@dataclass
class Plan:
    study: dict
    base: DictConfig
    cells: list[Cell]
    excluded: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    seed_policy: SeedPolicy | None = None  # set by study.seeds=auto


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _override_key(ov: str) -> str:
    return ov.split("=", 1)[0].lstrip("+~") if "=" in ov or ov.startswith("~") else ""


def _parse_items(raw: Any, group: str, where: str) -> list[AxisItem]:
    if isinstance(raw, (str, int, float)):
        raw = [raw]
    items = []
    known = group_options(group)
    for i, it in enumerate(raw):
        if isinstance(it, (DictConfig, dict)):
            it = OmegaConf.to_container(it, resolve=True) if isinstance(it, DictConfig) else it
            unknown = set(it) - {"option", "params", "label", "overrides"}
            if "option" not in it or unknown:
                raise ConfigError(f"{where}[{i}]: an item is an option name or a mapping with keys "
                                  f"option, params, label, overrides (got {sorted(it)})")
            opt, params, label = str(it["option"]), dict(it.get("params") or {}), str(it.get("label") or "")
            ovs = tuple(str(o) for o in (it.get("overrides") or []))
        else:
            opt, params, label, ovs = str(it), {}, "", ()
        if opt not in known:
            raise ConfigError(f"{where}[{i}]: unknown {group} {opt!r}. Available: {', '.join(known)}")
        items.append(AxisItem(group, opt, tuple(sorted(params.items())), label, ovs))
    if not items:
        raise ConfigError(f"{where} is empty")
    return items


def _matches(rule: dict, cell_items: dict[str, AxisItem]) -> bool:
    for axis, want in rule.items():
        if axis not in cell_items:
            raise ConfigError(f"study.exclude: unknown axis {axis!r} (use {', '.join(cell_items)})")
        wants = [str(w) for w in (want if isinstance(want, (list, tuple)) else [want])]
        item = cell_items[axis]
        if item.option not in wants and item.name not in wants:
            return False
    return True


def _refuse_duplicates(items: list[AxisItem], group: str) -> None:
    """Two items of one axis with the same label, or the same option and params, would pool twice."""
    seen_labels: dict[str, int] = {}
    seen_items: dict[tuple, int] = {}
    for i, it in enumerate(items):
        what = (it.option, repr(it.params), repr(it.overrides))  # repr: a list-valued param is unhashable
        if what in seen_items:
            raise ConfigError(f"study {group} items {seen_items[what]} and {i} are the same ({it.name}): "
                              "list each item once")
        if it.name in seen_labels:
            raise ConfigError(f"study {group} items {seen_labels[it.name]} and {i} share the label {it.name!r}: "
                              "every item of an axis needs its own label (give one with label: ...)")
        seen_labels[it.name], seen_items[what] = i, i


def _refuse_duplicate_cells(cells: list[Cell]) -> None:
    """Differently labelled items that resolve to one config would train and pool the same cell twice."""
    seen: dict[str, str] = {}
    for c in cells:
        if c.cfg_hash in seen:
            raise ConfigError(f"cells {seen[c.cfg_hash]} and {c.label} have the same config (and seed): "
                              "two items of the study differ only by label")
        seen[c.cfg_hash] = c.label


# Config keys that say where data lives, not what it is. They are left out of the cell hash, so
# moving a dataset or the cache does not rerun anything; what the data *is* enters each unit's key
# instead (bench.run: a digest of the sample table and the flows' content-hash cache keys).
LOCATION_KEYS = ("root", "cache_dir", "clone")  # clone: where a public release is fetched from


def without_locations(cfg: Any) -> Any:
    """``cfg`` without its location keys (``LOCATION_KEYS`` and ``*_dir``), at any depth."""
    if isinstance(cfg, dict):
        return {k: without_locations(v) for k, v in cfg.items()
                if not (isinstance(k, str) and (k in LOCATION_KEYS or k.endswith("_dir")))}
    if isinstance(cfg, list):
        return [without_locations(v) for v in cfg]
    return cfg


def validate_cell(cell: Cell) -> CellSettings:
    """Build every piece of a cell once (no data, no training) so a bad value fails before any work;
    returns the cell's typed settings.

    Config values are untyped YAML; the code that consumes them is the schema. Models are built
    with the representation's channels, so a bad pairing the model's ``skip`` did not catch fails
    here, naming the cell.
    """
    from bench.training.fold import build_trainer
    from bench.training.tuning import apply_params, flatten_space
    from models import build_model
    from representations import build_representation

    where = f"cell {cell.label}"
    try:
        rep = build_representation(cell.cfg["representation"])
        build_model(cell.cfg["model"], in_chans=len(rep.channels), num_classes=3, channels=rep.channels)
        build_trainer(cell.cfg["trainer"], cell.seed, rep.channels)
        settings = CellSettings.from_cell_config(cell.cfg)
        if settings.tuning.enabled:
            space = flatten_space(settings.tuning.space)
            if not space:
                raise ValueError("tuning.n_trials > 0 but tuning.space is empty")
            apply_params({k: None for k in space}, {"trainer": dict(cell.cfg["trainer"]), "model": dict(cell.cfg["model"]),
                                                    "representation": dict(cell.cfg["representation"])})
    except (TypeError, ValueError, KeyError) as e:
        msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        raise ConfigError(f"{where}: {msg}") from None
    return settings


def _has_key(cfg: DictConfig, key: str) -> bool:
    """Whether a dotted key exists, even when its value is still missing (``???``, e.g. a dataset's root:
    ``OmegaConf.select`` returns its default for those, so ``dataset.root=...`` would look unknown)."""
    parent, _, last = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
    return isinstance(node, DictConfig) and last in node.keys()  # `in node` is False for ???


def _reads_flows(node: Any, item: AxisItem) -> bool:
    """Whether a dataset item's loader reads flow files (its own declaration), its params applied."""
    from bench.data import dataset_reads_flows

    name = OmegaConf.select(node, "name", default="")
    for k, v in item.params:
        if k == "name":
            name = v
    return dataset_reads_flows(str(name))


def _cell_representation(cfg: dict, label: str, reps: dict):
    """The cell's representation, built once per distinct config (``reps`` caches it by config hash)."""
    from representations import build_representation

    key = stable_hash(cfg["representation"])
    if key not in reps:
        try:
            reps[key] = build_representation(cfg["representation"])
        except (TypeError, ValueError, KeyError) as e:
            raise ConfigError(f"cell {label}: {e}") from None
    return reps[key]


def _dataset_reason(cfg: dict, label: str, dataset: AxisItem, reps: dict) -> str:
    """Why the cell's data cannot feed its representation ('' if it can), by the dataset's own ``skip``."""
    from bench.data import dataset_skip

    skip, reason = dataset_skip(cfg["dataset"], _cell_representation(cfg, label, reps), dataset.name)
    return (reason or "the dataset skips this input") if skip else ""


def _skip_reason(cfg: dict, label: str, reps: dict) -> str:
    """Why the cell's model cannot take its representation ('' if it can), by the model's own ``skip``."""
    from models import model_skip

    try:
        skip, reason = model_skip(cfg["model"], _cell_representation(cfg, label, reps))
    except KeyError as e:
        raise ConfigError(f"cell {label}: {e}") from None
    return (reason or "the model skips this input") if skip else ""


STUDY_KEYS = {"name", "description", "datasets", "flows", "representations", "models", "seeds",
              "max_seeds", "exclude", "overrides", "notes", "expect"}


@dataclass
class _Overrides:
    """The command line's overrides, sorted by where they apply."""

    study: list[str]  # the study's own ``overrides`` (every cell)
    groups: dict[str, str]  # axis groups chosen on the command line (dataset=casme2): they replace the axis
    axis: list[str]  # keys of an axis group (model.dropout=...): applied to the cells whose option has them
    rest: list[str]  # everything else, for every cell
    base: list[str]  # what the base config is composed with
    cli_keys: set[str]  # keys the command line set: they win over a study item's params


def plan_study(overrides: list[str]) -> Plan:
    """Compose the config and cross the study's axes into cells (validated, nothing run)."""
    study = _read_study(overrides)
    ovs = _sort_overrides(overrides, study)
    choices = compose(ovs.base, with_choices=True).hydra.runtime.choices
    base = compose(ovs.base)
    axes = _axes(study, ovs, choices)
    policy = _seed_policy(study)
    seeds = list(range(policy.start)) if policy else _seeds(study)
    cells, excluded, used = _cross(study, axes, seeds, ovs)
    _refuse_duplicate_cells(cells)
    if not cells:
        why = "".join(f"\n  {e}" for e in excluded[:10]) + (f"\n  ... and {len(excluded) - 10} more" if len(excluded) > 10 else "")
        raise ConfigError(f"study {study['name']!r}: every cell is excluded:{why}")
    _refuse_unused_axis_overrides(ovs.axis, used, cells)
    _settle(cells)
    return Plan(study=study, base=base, cells=cells, excluded=excluded, overrides=list(overrides), seed_policy=policy)


def _read_study(overrides: list[str]) -> dict:
    """The study node, read before everything else is composed."""
    # The study's own overrides (e.g. tuning=optuna) must apply before the command line's keys are
    # checked (tuning.inner_folds exists only then): read the study first, then compose everything.
    first = compose([o for o in overrides if _override_key(o).split(".")[0] == "study"], with_choices=True)
    study = OmegaConf.to_container(first.study, resolve=False)
    if not isinstance(study, dict) or "name" not in study:
        raise ConfigError(f"study {first.hydra.runtime.choices.get('study')!r} has no 'name'")
    unknown = set(study) - STUDY_KEYS
    if unknown:
        raise ConfigError(f"study {study['name']!r}: unknown keys {sorted(unknown)}")
    return study


def _sort_overrides(overrides: list[str], study: dict) -> _Overrides:
    study_ovs = [str(o) for o in (study.get("overrides") or [])]
    groups = {}
    for ov in overrides:
        k = _override_key(ov)
        if k in AXES.values():
            groups[k] = ov.split("=", 1)[1]
    rest = [ov for ov in overrides if _override_key(ov) not in AXES.values()]
    # A key of an axis group (model.dropout) applies to the cells whose option has that key: with
    # study.models=[ststnet, fmanet], model.fusion=sum reaches FMANet only. It must fit at least one
    # cell (a typo still fails). Unless the group itself was chosen on the command line, it is left
    # out of the base config, whose default option may not have the key.
    axis = [ov for ov in rest if _override_key(ov).split(".")[0] in AXES.values()
            and _override_key(ov).split(".")[0] not in groups]
    rest = [ov for ov in rest if ov not in axis]
    return _Overrides(study=study_ovs, groups=groups, axis=axis, rest=rest,
                      base=study_ovs + [ov for ov in overrides if ov not in axis],
                      cli_keys={_override_key(ov) for ov in overrides if _override_key(ov)})


def _axes(study: dict, ovs: _Overrides, choices) -> dict[str, list[AxisItem]]:
    """Each axis's items: the command line's group, else the study's list, else the config's choice."""
    axes: dict[str, list[AxisItem]] = {}
    for key, group in AXES.items():
        if group in ovs.groups:
            axes[group] = _parse_items([ovs.groups[group]], group, f"command line {group}=")
        elif study.get(key) is not None:
            axes[group] = _parse_items(study[key], group, f"study.{key}")
        else:
            axes[group] = [AxisItem(group, str(choices[group]))]
    for group, its in axes.items():
        _refuse_duplicates(its, group)
    return axes


MAX_SEED = 2**32 - 1  # numpy and torch seeds


def _seed_policy(study: dict) -> SeedPolicy | None:
    """``seeds: auto`` (with ``max_seeds``, default 10) -> the policy; a seed list -> None."""
    cap = study.get("max_seeds")
    if study.get("seeds") != "auto":
        if cap is not None:
            raise ConfigError(f"study {study['name']!r}: study.max_seeds applies to study.seeds=auto only "
                              f"(study.seeds is {study.get('seeds')!r})")
        return None
    policy = SeedPolicy() if cap is None else SeedPolicy(max_seeds=cap)
    if isinstance(cap, bool) or not isinstance(policy.max_seeds, int) or policy.max_seeds < policy.start:
        raise ConfigError(f"bad value for config key 'study.max_seeds' ({cap!r}): an integer >= {policy.start}, "
                          "the most seeds study.seeds=auto gives a cell")
    return policy


def _seeds(study: dict) -> list:
    seeds = study.get("seeds")
    seeds = [0] if seeds is None else ([seeds] if isinstance(seeds, (int, str)) else list(seeds))
    if not seeds:
        raise ConfigError(f"study {study['name']!r}: study.seeds is empty (give at least one seed, e.g. study.seeds=[0])")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED]
    if bad:
        raise ConfigError(f"bad value for config key 'study.seeds' ({list(seeds)}): {bad[0]!r} is not a seed "
                          f"(seeds are integers 0..{MAX_SEED}, e.g. study.seeds=[0,1,2])")
    if len(set(map(int, seeds))) != len(seeds):
        raise ConfigError(f"study {study['name']!r}: study.seeds lists a seed twice ({list(seeds)})")
    return seeds


def _combos(axes: dict[str, list[AxisItem]], ovs: _Overrides):
    """Every (dataset, flow, representation, model) combination of the axes."""
    # A precomputed dataset's flows come from its files: its flow axis is the one item `precomputed`
    # (bench/conf/flow/precomputed.yaml), never a backend that did not run.
    pre = {ds: _reads_flows(compose(ovs.study + [f"dataset={ds.option}", *ds.overrides] + ovs.rest).dataset, ds)
           for ds in axes["dataset"]}
    precomputed_flow = [AxisItem("flow", "precomputed")]
    for ds in axes["dataset"]:
        for rest_items in itertools.product(precomputed_flow if pre[ds] else axes["flow"],
                                            axes["representation"], axes["model"]):
            yield (ds, *rest_items)


def _cross(study: dict, axes: dict, seeds: list, ovs: _Overrides) -> tuple[list[Cell], list[str], set[str]]:
    """The cells (one per combination and seed), what was left out and why, and the axis overrides used."""
    cells, excluded, used = [], [], set()
    rules = study.get("exclude") or []
    reps: dict = {}
    for combo in _combos(axes, ovs):
        items = dict(zip(AXES.values(), combo))
        label = "|".join(i.name for i in combo)
        if any(_matches(dict(r), items) for r in rules):
            excluded.append(f"{label}: excluded by the study's exclude rule")
            continue
        cell_cfg, recipe = _cell_config(items, ovs, used)
        items = _apply_params(cell_cfg, _recipe_inputs(cell_cfg, items, label), ovs.cli_keys)
        combo = tuple(items.values())
        label = "|".join(i.name for i in combo)
        resolved = _resolve(cell_cfg, label)
        resolved["trainer"].pop("inputs", None)  # moved into the representation's params
        _check_plugin_nodes(resolved, items)
        reason = _dataset_reason(resolved, label, items["dataset"], reps) or _skip_reason(resolved, label, reps)
        if reason:
            excluded.append(f"{label}: {reason}")
            continue
        for seed in seeds:
            cell = Cell(*combo, seed=int(seed), cfg=resolved, recipe=recipe)
            cell.cfg_hash = stable_hash({"cfg": without_locations(resolved), "seed": int(seed)})
            cells.append(cell)
    return cells, excluded, used


def _cell_config(items: dict[str, AxisItem], ovs: _Overrides, used: set[str]) -> tuple[DictConfig, RecipeSource]:
    """Compose one combination's config: its model's recipe, the study's, its items' and the command
    line's overrides (in that order of precedence); with where its trainer recipe came from."""
    item_ovs = [o for it in items.values() for o in it.overrides]
    recipe = recipe_source(items["model"].option, [("study", ovs.study), ("study item", item_ovs),
                                                   ("command line", ovs.rest)])
    model_recipe = [f"trainer={recipe.preset}"] if recipe.chosen_by == MODEL_RECIPE else []
    cell_ovs = model_recipe + ovs.study + [f"{g}={it.option}" for g, it in items.items()] + item_ovs + ovs.rest
    if ovs.axis:
        probe = compose(cell_ovs)
        fits = [ov for ov in ovs.axis if ov.startswith("+") or _has_key(probe, _override_key(ov))]
        used.update(fits)
        cell_ovs += fits
    cell_cfg = compose(cell_ovs)
    for g in ("representation", "model"):  # a plugin's config file is named for its registry key
        if "name" not in cell_cfg[g]:
            OmegaConf.update(cell_cfg[g], "name", items[g].option, force_add=True)
    return cell_cfg, recipe


# ------------------------------------------------------------------ a model's own recipe

MODEL_RECIPE = "model recipe"


def model_recipes() -> list[str]:
    """The models that carry their own recipe: a trainer file named for the model option
    (``bench/conf/trainer/<model>.yaml``, typed by the trainer schema when composed)."""
    models = set(group_options("model"))
    return [t for t in group_options("trainer") if t in models]


def recipe_source(model: str, layers: list[tuple[str, list[str]]]) -> RecipeSource:
    """Which trainer file a cell of ``model`` starts from, and who set each trainer key after it.

    Precedence, lowest first: the trainer schema's defaults (``trainer=default``), the model's recipe
    (``trainer/<model>.yaml``), then ``layers`` in order (the study's overrides, the study item's, the
    command line's). A trainer group chosen in any layer (``trainer=ststnet_paper``, or ``trainer=default``
    for none) is a whole recipe named on purpose: it replaces the model's recipe, and its own keys are
    then set by that preset."""
    chosen = [(where, ov.split("=", 1)[1]) for where, ovs in layers for ov in ovs if _override_key(ov) == "trainer"]
    if chosen:
        where, preset = chosen[-1]
        by, label = where, f"trainer preset {preset} ({where})"
    elif model in model_recipes():
        preset, by, label = model, MODEL_RECIPE, f"{MODEL_RECIPE} (bench/conf/trainer/{model}.yaml)"
    else:
        preset, by, label = "default", "trainer default", ""
    sources = {k: label for k in _preset_keys(preset)} if label else {}
    for where, ovs in layers:
        for ov in ovs:
            key = _override_key(ov)
            if key.startswith("trainer."):
                sources[key[len("trainer."):]] = where
    return RecipeSource(preset=preset, chosen_by=by, sources=tuple(sources.items()))


@functools.lru_cache(maxsize=None)
def _preset_keys(option: str) -> tuple[str, ...]:
    """The trainer keys a trainer file sets itself (dotted below ``augment``; its ``inputs`` move into the
    representation), read from the file: the rest are the schema's defaults."""
    from bench.core.config import CONF_DIR

    path = CONF_DIR / "trainer" / f"{option}.yaml"
    if not path.is_file():  # an unknown preset: composing the cell names it, with the ones that exist
        return ()
    raw = OmegaConf.to_container(OmegaConf.load(path)) or {}
    keys = []
    for k, v in raw.items():
        if k in ("defaults", "inputs", "name"):
            continue
        keys += [f"{k}.{sub}" for sub in v] if isinstance(v, dict) else [str(k)]
    return tuple(keys)


def _recipe_inputs(cell_cfg: DictConfig, items: dict[str, AxisItem], label: str) -> dict[str, AxisItem]:
    """The representation item with the parameters its trainer recipe fixes (``trainer.inputs``) under
    its own: e.g. ``trainer=ststnet_paper`` feeds ``stored`` unscaled, as STSTNet's released code did."""
    node = cell_cfg.trainer.get("inputs")
    inputs = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
    unknown = sorted(set(inputs) - set(group_options("representation")))
    if unknown:
        raise ConfigError(f"{label}: trainer.inputs names {unknown}, not representation options "
                          f"(known: {', '.join(group_options('representation'))})")
    rep = items["representation"]
    fixed = dict(inputs.get(rep.option) or {})
    if not fixed:
        return items
    merged = {**fixed, **dict(rep.params)}  # the study item's own params win
    return {**items, "representation": dataclasses.replace(rep, params=tuple(merged.items()))}


def _apply_params(cell_cfg: DictConfig, items: dict[str, AxisItem], cli_keys: set[str]) -> dict[str, AxisItem]:
    """Set each item's params in the cell's config (the command line wins); the items with their effective params."""
    items = dict(items)
    for g, it in items.items():
        effective = []
        for k, v in it.params:
            current = OmegaConf.select(cell_cfg[g], k, default="__absent__")
            if current == "__absent__":
                keys = ", ".join(sorted(str(x) for x in cell_cfg[g].keys()))
                raise ConfigError(f"{g} {it.option!r} has no parameter {k!r} (item {it.name}). Its keys: {keys}")
            if f"{g}.{k}" in cli_keys or any(c.startswith(f"{g}.{k}.") for c in cli_keys):
                # the command line set it: keep its value, and let an unlabelled item say so
                v = OmegaConf.to_container(current, resolve=True) if isinstance(current, (DictConfig, ListConfig)) \
                    else current
            else:
                OmegaConf.update(cell_cfg[g], k, v, merge=True)
            effective.append((k, v))
        if tuple(effective) != it.params:
            items[g] = dataclasses.replace(it, params=tuple(effective))
    return items


def _resolve(cell_cfg: DictConfig, label: str) -> dict:
    """The cell's config as plain values (``CELL_KEYS``); a missing required value names its key."""
    try:
        return {k: OmegaConf.to_container(cell_cfg[k], resolve=True, throw_on_missing=True)
                if isinstance(cell_cfg[k], (DictConfig, ListConfig)) else cell_cfg[k] for k in CELL_KEYS}
    except MissingMandatoryValue as e:
        key = getattr(e, "full_key", "") or str(e)
        raise ConfigError(f"missing required value {key}: pass it on the command line, e.g. {key}=...") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"cannot resolve the config of cell {label}: {e}") from None


def _check_plugin_nodes(resolved: dict, items: dict[str, AxisItem]) -> None:
    """The dataset and flow nodes, which no schema types: a key their option does not know (added
    with ``+``) or a value of the wrong type is refused now, naming the key, not when the data loads."""
    for group in ("dataset", "flow"):
        option = items[group].option
        known = _known_keys(group, option)
        for key, value in resolved[group].items():
            if key not in known:
                close = difflib.get_close_matches(str(key), list(known), n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise ConfigError(f"unknown config key '{group}.{key}': {group} {option!r} does not take it.{hint} "
                                  f"Its keys: {', '.join(sorted(known))}")
            if not conforms(value, known[key]):
                raise ConfigError(f"bad value for config key '{group}.{key}' ({group} {option!r}): expected "
                                  f"{describe(known[key])}, got {value!r} ({type(value).__name__})")


@functools.lru_cache(maxsize=None)
def _known_keys(group: str, option: str) -> dict[str, Any]:
    """Every key an option's node may have -> its type: the keys of its file (typed by their values
    there), and for a dataset its loader's parameters (typed by the loader's signature)."""
    from bench.core.config import option_node

    node = option_node(group, option)
    known = {str(k): _type_of(v) for k, v in node.items()}
    if group == "dataset":
        known.update(_loader_params(str(node.get("name", option))))
    return known


def _type_of(default: Any) -> Any:
    """The type a file's value stands for (``null`` and ``???`` say nothing)."""
    if default is None or default == "???":
        return Any
    for kind, meant in ((bool, bool), (int, int), (float, float), (str, str), (dict, typing.Mapping),
                        (list, typing.Sequence)):
        if isinstance(default, kind):
            return meant
    return Any


def _loader_params(name: str) -> dict[str, Any]:
    """A dataset loader's parameters -> their annotations; with ``**options``, the validation options too."""
    from bench.data import DATASETS, list_datasets
    from bench.data.validate import OPTION_NAMES, Options

    if name not in list_datasets():
        return {}
    fn = DATASETS.get(name)
    params = inspect.signature(fn).parameters
    hints = _hints(fn)
    out = {k: hints.get(k, Any) for k, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        opt_hints = _hints(Options)
        out.update({k: opt_hints.get(k, Any) for k in OPTION_NAMES if k not in out})
    return out


def _hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # noqa: BLE001 - an annotation that cannot be evaluated checks nothing
        return {}


def _refuse_unused_axis_overrides(axis_ovs: list[str], used: set[str], cells: list[Cell]) -> None:
    """An axis key (model.fusion=sum) that no cell of the study has is a typo."""
    for ov in axis_ovs:
        if ov not in used:
            key = _override_key(ov)
            group = key.split(".")[0]
            opts = sorted({c.__dict__[group].option for c in cells})
            keys = sorted({str(k) for c in cells for k in c.cfg[group]})
            raise ConfigError(f"unknown config key '{key}': no {group} of this study ({', '.join(opts)}) has it. "
                              f"Their keys: {', '.join(keys)}. (Use +{key}=... to add a new key.)")


def _settle(cells: list[Cell]) -> None:
    """Validate each distinct cell config once and give every cell its typed settings."""
    settled: dict[str, CellSettings] = {}
    for cell in cells:
        key = stable_hash({k: cell.cfg[k] for k in ("representation", "model", "trainer", "protocol", "tuning")})
        if key not in settled:
            settled[key] = validate_cell(cell)
        tuned = settled[key].tuning.space.get("trainer") if settled[key].tuning.enabled else None
        cell.recipe = cell.recipe.tuned(tuned or {})
        cell.settings = dataclasses.replace(settled[key], recipe=cell.recipe)
