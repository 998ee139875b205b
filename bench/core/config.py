"""Config composition: Hydra's compose API over ``bench/conf`` plus the top-level ``studies/``.

Studies live in ``studies/<name>.yaml`` (the design card's layout), not in a Hydra group folder, so
they are registered into Hydra's ConfigStore under the group ``study``; ``study=NAME`` then works
like any other group and an unknown name lists the ones that exist. The trainer, protocol, executor,
tuning, tracking and report_options groups are typed by dataclass schemas (``bench.core.schemas``, stored
as ``<group>/_schema*``), so a wrong type or an unknown key fails here, at compose time. Files and stored
nodes whose names start with ``_`` are building blocks of a group (schemas, shared blocks such as
``dataset/_validation``), never options.

An option's selection key is its file's name, written once: a dataset, flow, protocol or executor file
has no ``name:`` (flow: ``backend:``) and ``compose`` sets it from the chosen option (``SELECTED_BY``),
where the file's own first key would have put it; only a preset of another entry writes it
(``dataset/megc2019_htnet.yaml``: ``name: precomputed``). Representations and models get theirs from
the planner (``bench.plan.planner``), after composing. A file may start from another option of its
group (``defaults: [timm_resnet10t, _self_]``, a preset that changes a few keys of its parent).

The compose API is used instead of ``@hydra.main`` so that nothing changes the working directory,
hijacks logging or creates ``outputs/`` folders: the run directory is ours (``run_dir``), which is
what resume relies on.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

CONF_DIR = Path(__file__).parents[1] / "conf"
GROUPS = ("dataset", "flow", "representation", "model", "trainer", "protocol", "tuning", "tracking",
          "executor", "report_options", "study")
# Groups with files and a schema that the root config does not select (composed only with +group=option).
# report_options is selected: its node is the report's settings (the group cannot be named ``report``,
# since ``report=false``, the documented switch, would then be read as a choice of that group).
PENDING_GROUPS: tuple[str, ...] = ()
# The key of a group's node that names its entry, filled from the chosen option's file name when the
# file does not write it (or its schema leaves it MISSING).
SELECTED_BY = {"dataset": "name", "flow": "backend", "protocol": "name", "executor": "name"}


class ConfigError(ValueError):
    """A bad command line or config: the message says what exists."""


_registered = False
_schemas_registered = False


def schemas() -> dict[tuple[str, str], type]:
    """(group, name) -> dataclass; a group's YAML lists the name first in its ``defaults``."""
    from bench.core import schemas as sc

    return {
        ("trainer", "_schema"): sc.TrainerNode,
        ("protocol", "_schema"): sc.ProtocolNode,  # loso, megc2019: no `k`
        ("protocol", "_schema_kfold"): sc.KFoldProtocolNode,  # group_kfold: + k
        ("executor", "_schema_local"): sc.LocalExecutorNode,
        ("executor", "_schema_ray"): sc.RayExecutorNode,
        ("tuning", "_schema_none"): sc.NoTuningNode,
        ("tuning", "_schema_optuna"): sc.OptunaTuningNode,
        ("tracking", "_schema"): sc.TrackingNode,
        ("report_options", "_schema"): sc.ReportNode,
    }


def _register_schemas() -> None:
    """Store the dataclass schemas in Hydra's ConfigStore once per process, before the first compose
    (names start with ``_``: building blocks, not selectable options)."""
    global _schemas_registered
    if not _schemas_registered:
        from hydra.core.config_store import ConfigStore

        from bench.core.schemas import schema_node

        cs = ConfigStore.instance()
        for (group, name), cls in schemas().items():
            cs.store(group=group, name=name, node=schema_node(cls))
        _schemas_registered = True


def _register_studies() -> None:
    global _registered
    if _registered:
        return
    from hydra.core.config_store import ConfigStore

    from studies import STUDY_DIR

    cs = ConfigStore.instance()
    for path in sorted(STUDY_DIR.glob("*.yaml")):
        try:
            node = OmegaConf.load(path)
        except Exception as e:  # noqa: BLE001 - a broken study file blocks only itself, naming itself
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            _broken_studies[path.stem] = f"cannot read study file {path}: {first}"
            continue
        if isinstance(node, DictConfig) and "max_seeds" not in node:
            # Declared (unset) in every study, so `study.max_seeds=5` is a known key wherever
            # `study.seeds=auto` may be chosen; unset means the policy's default (bench.plan.planner).
            node.max_seeds = None
        cs.store(group="study", name=path.stem, node=node)
    _registered = True


_broken_studies: dict[str, str] = {}  # study name -> why its file could not be read


def _check_study_readable(overrides: list[str]) -> None:
    """Choosing a study whose file is broken fails naming the file; other studies are unaffected."""
    chosen = [o.split("=", 1)[1].strip() for o in overrides if o.split("=", 1)[0].lstrip("+") == "study" and "=" in o]
    name = chosen[-1] if chosen else "smoke"  # the root config's default study
    if name in _broken_studies:
        raise ConfigError(_broken_studies[name])


def _defaults_entries(group: str, option: str) -> list[str]:
    """The entries of an option file's ``defaults`` that name files (or stored schemas) of its group."""
    raw = OmegaConf.load(CONF_DIR / group / f"{option}.yaml")
    return [e for e in raw.get("defaults") or [] if isinstance(e, str) and e != "_self_"]


def _file_keys(group: str, option: str) -> set[str]:
    return {str(k) for k in OmegaConf.load(CONF_DIR / group / f"{option}.yaml") if k != "defaults"}


def entry_name(group: str, option: str) -> str:
    """The registry entry an option's file configures when it writes no ``name``: its own file name,
    or, for a preset that starts from another option (``defaults: [timm_resnet10t, _self_]``), that
    option's."""
    return _origin(group, option)[0]


@functools.lru_cache(maxsize=None)
def _origin(group: str, option: str) -> tuple[str, frozenset[str], frozenset[str]]:
    """What an option's file builds on: the entry it names (itself, or the option its ``defaults``
    starts from, recursively: a preset's parent), the keys its building blocks give (``_`` files and
    schemas) and the keys some file of the chain writes."""
    origin, blocks, written = option, set(), _file_keys(group, option)
    for entry in _defaults_entries(group, option):
        if not (CONF_DIR / group / f"{entry}.yaml").exists():  # a schema stored as a building block
            cls = schemas().get((group, entry))
            blocks |= {f.name for f in dataclasses.fields(cls)} if cls else set()
            continue
        name, sub_blocks, sub_written = _origin(group, entry)
        written |= sub_written
        if entry.startswith("_"):
            blocks |= sub_blocks | sub_written
        else:
            origin, blocks = name, blocks | sub_blocks
    return origin, frozenset(blocks), frozenset(written)


def _selection_override(ov: str) -> str:
    """``dataset.name=precomputed`` sets a selection key that the option's file may not write (it is
    filled in after composing): Hydra's ``++`` sets it whether or not the file has it."""
    key = ov.split("=", 1)[0]
    group, _, leaf = key.partition(".")
    return f"++{ov}" if "=" in ov and SELECTED_BY.get(group) == leaf else ov


def _fill_selection_keys(cfg: DictConfig, choices: Mapping[str, Any]) -> None:
    """Give each ``SELECTED_BY`` key that no file writes the chosen option's name (a preset's parent's,
    when it builds on another option), or the value an override gave it: in place where a schema
    has the key (MISSING until now), else right after the keys of the file's building blocks, where
    a first line ``name: <option>`` of the file would have put it."""
    for group, key in SELECTED_BY.items():
        node, option = cfg.get(group), choices.get(group)
        if not isinstance(node, DictConfig) or not isinstance(option, str):
            continue
        name, blocks, written = _origin(group, option)
        if key in written:
            continue
        if key in blocks:  # a schema's field
            if OmegaConf.is_missing(node, key):
                node[key] = name
            continue
        written_node = OmegaConf.to_container(node, resolve=False)  # interpolations kept as written
        value = written_node.pop(key, name)
        items = list(written_node.items())
        at = next((i for i, (k, _) in enumerate(items) if k not in blocks), len(items))
        with open_dict(cfg):
            cfg[group] = dict(items[:at] + [(key, value)] + items[at:])


def group_options(group: str) -> list[str]:
    if group == "study":
        from studies import list_studies

        return list_studies()
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """' Did you mean X?' (or 'X, Y?') for the names of ``known`` closest to ``word`` (difflib), else ''."""
    close = difflib.get_close_matches(str(word), [str(k) for k in known], n=3)
    return f" Did you mean {', '.join(close)}?" if close else ""


def unknown_option(group: str, option: str, where: str = "") -> str:
    """The message for an option its group does not have: the closest names, then every option."""
    options = group_options(group)
    lead = f"{where}: unknown {group} {option!r}" if where else f"unknown {group} {option!r} ({group}={option})"
    return f"{lead}.{did_you_mean(option, options)} Available: {', '.join(options)}"


def _friendly(err: Exception, overrides: list[str]) -> str:
    msg = str(err).strip()
    missing = re.search(r"Could not find '([^'/]+)/([^']+)'", msg)
    if missing and missing.group(1) in GROUPS + PENDING_GROUPS:  # study=ablation_phase, model=htnt
        return unknown_option(missing.group(1), missing.group(2))
    # Hydra lists every config of a group as available, schemas and shared blocks included.
    msg = re.sub(r"^\t_\S*\n?", "", msg, flags=re.M)
    cause = err.__cause__
    if msg.startswith("Error merging override") and cause is not None:
        # A schema refused the value (trainer.epochs=abc): say which key, what was given and why.
        ov = msg[len("Error merging override"):].strip()
        key = ov.split("=", 1)[0].lstrip("+~")
        why = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        default = _schema_default(overrides, ov, key)
        return f"bad value for config key '{key}' ({ov}): {why}.{default}"
    if "Could not override" in msg or "Key '" in msg and "is not in struct" in msg:
        # Name the keys that exist at the failing level instead of Hydra's bare refusal.
        for ov in overrides:
            key = ov.split("=", 1)[0].lstrip("+~")
            if key and key.split(".")[0] and f"'{key}'" in msg:
                parent, _, leaf = key.rpartition(".")
                try:
                    base = compose([o for o in overrides if o != ov]) if parent else None
                except ConfigError:
                    base = None
                if parent and base is not None:
                    node = OmegaConf.select(base, parent)
                    if isinstance(node, DictConfig):
                        keys = sorted(str(k) for k in node.keys())
                        close = difflib.get_close_matches(leaf, keys, n=3)
                        hint = f" Did you mean {', '.join(close)}?" if close else ""
                        return (f"unknown config key '{key}'.{hint} Keys under '{parent}': {', '.join(keys)}. "
                                f"(Use +{key}=... to add a new key.)")
                top = sorted(set(GROUPS) | {"paths", "input_size", "run_dir", "resume", "report", "progress"})
                return f"unknown config key '{key}'. Top-level keys: {', '.join(top)}."
    return msg


def _schema_default(overrides: list[str], ov: str, key: str) -> str:
    """' Without it, KEY = VALUE (TYPE).' where the config composes without ``ov``, else ''."""
    try:
        base = compose([o for o in overrides if o != ov])
    except ConfigError:
        return ""
    value = OmegaConf.select(base, key, default="__absent__")
    if isinstance(value, (DictConfig, ListConfig)) or value == "__absent__":
        return ""
    return f" Without it, {key} = {value!r} ({'null' if value is None else type(value).__name__})."


def _refuse_unused_override(ov: str) -> None:
    """Overrides Hydra would take and the suite would ignore: its ``hydra.*`` settings (no Hydra
    output folder, logging or working directory here) and a group chosen as nothing (``trainer=null``)."""
    key, _, choice = ov.lstrip("+~").partition("=")
    if key.split(".")[0] == "hydra":
        where = (" The run directory is run_dir= (e.g. run_dir=runs/mine), the report folder paths.reports=."
                 if key.split(".")[1:2] in (["run"], ["sweep"]) else "")
        raise ConfigError(f"{ov}: hydra.* settings are not used (the config is composed without Hydra's output "
                          f"folders, logging or working directory), so {key} would be ignored.{where}")
    if key in GROUPS + PENDING_GROUPS and "=" in ov and choice.strip().lower() in ("", "null", "none", "~"):
        options = group_options(key)
        if choice.strip() not in options:  # tracking=none is an option
            raise ConfigError(f"{ov}: the {key} group needs an option. Available: {', '.join(options)}")


def compose(overrides: Iterable[str] = (), *, with_choices: bool = False) -> DictConfig:
    """Compose the root config with Hydra override strings (``key=value``, ``group=option``).

    ``with_choices`` keeps Hydra's node so ``cfg.hydra.runtime.choices`` names the chosen options.
    Groups of ``PENDING_GROUPS`` are added with ``+group=option``.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = [_selection_override(ov) for ov in overrides]
    for ov in overrides:
        _refuse_unused_override(ov)
        group, _, choice = ov.lstrip("+").partition("=")
        if group in GROUPS + PENDING_GROUPS and choice.startswith("_"):  # Hydra would load a shared block as an option
            raise ConfigError(f"{group}={choice}: '{choice}' is a building block of the {group} group, not an "
                              f"option. Available: {', '.join(group_options(group))}")
        if group in PENDING_GROUPS and not ov.startswith("+"):
            raise ConfigError(f"{ov}: the {group} group is not in the root config yet; add it with +{ov}")
    _register_schemas()
    _register_studies()
    _check_study_readable(overrides)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="dualflow"):
            cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
        _fill_selection_keys(cfg, cfg.hydra.runtime.choices)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(_friendly(e, overrides)) from None
    except ValueError as e:  # Hydra's own refusals of a malformed override
        raise ConfigError(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__) from None
    if not with_choices:
        with open_dict(cfg):
            del cfg["hydra"]  # what Hydra's compose does without return_hydra_config
    return cfg


def option_node(group: str, option: str, overrides: Iterable[str] = ()) -> dict:
    """One option's composed node as plain values (its defaults list applied: shared blocks, schema, a
    preset's parent; its selection key filled in; interpolations resolved, ``???`` kept), for readers of
    a single option such as the tests. A representation's or model's ``name`` is here only where a file
    writes it (a preset's parent, e.g. timm_resnet10t): the planner names the others after their file."""
    plus = "+" if group in PENDING_GROUPS else ""
    cfg = compose([f"{plus}{group}={option}", *overrides])
    return OmegaConf.to_container(cfg[group], resolve=True)  # type: ignore[return-value]


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
