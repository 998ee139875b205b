"""Config composition: Hydra's compose API over ``bench/conf`` plus the top-level ``studies/``.

Studies live in ``studies/<name>.yaml`` (the design card's layout), not in a Hydra group folder, so
they are registered into Hydra's ConfigStore under the group ``study``; ``study=NAME`` then works
like any other group and an unknown name lists the ones that exist. The trainer and protocol groups
are typed by dataclass schemas (``bench.core.schemas``, stored as ``<group>/_schema*``), so a wrong type or
an unknown key fails here, at compose time. Files and stored nodes whose names start with ``_`` are
building blocks of a group (schemas, shared blocks such as ``dataset/_validation``), never options.
The compose API is used instead
of ``@hydra.main`` so that nothing changes the working directory, hijacks logging or creates
``outputs/`` folders: the run directory is ours (``run_dir``), which is what resume relies on.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Iterable

from omegaconf import DictConfig, ListConfig, OmegaConf

CONF_DIR = Path(__file__).parents[1] / "conf"
GROUPS = ("dataset", "flow", "representation", "model", "trainer", "protocol", "tuning", "tracking",
          "executor", "study")


class ConfigError(ValueError):
    """A bad command line or config: the message says what exists."""


_registered = False
_schemas_registered = False


def schemas() -> dict[tuple[str, str], type]:
    """(group, name) -> dataclass; a group's YAML lists the name first in its ``defaults``.

    Kept here, above ``bench.core.schemas`` and ``bench.protocols.folds``, so neither imports the other.
    """
    from bench.protocols.folds import ProtocolBase, ProtocolSpec
    from bench.core.schemas import TrainerNode

    return {
        ("trainer", "_schema"): TrainerNode,
        ("protocol", "_schema"): ProtocolBase,  # loso, megc2019: no `k`
        ("protocol", "_schema_kfold"): ProtocolSpec,  # group_kfold: + k
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
        cs.store(group="study", name=path.stem, node=node)
    _registered = True


_broken_studies: dict[str, str] = {}  # study name -> why its file could not be read


def _check_study_readable(overrides: list[str]) -> None:
    """Choosing a study whose file is broken fails naming the file; other studies are unaffected."""
    chosen = [o.split("=", 1)[1].strip() for o in overrides if o.split("=", 1)[0].lstrip("+") == "study" and "=" in o]
    name = chosen[-1] if chosen else "smoke"  # the root config's default study
    if name in _broken_studies:
        raise ConfigError(_broken_studies[name])


def group_options(group: str) -> list[str]:
    if group == "study":
        from studies import list_studies

        return list_studies()
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def _friendly(err: Exception, overrides: list[str]) -> str:
    msg = str(err).strip()
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


def compose(overrides: Iterable[str] = (), *, with_choices: bool = False) -> DictConfig:
    """Compose the root config with Hydra override strings (``key=value``, ``group=option``).

    ``with_choices`` keeps Hydra's node so ``cfg.hydra.runtime.choices`` names the chosen options.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides)
    for ov in overrides:
        group, _, choice = ov.lstrip("+").partition("=")
        if group in GROUPS and choice.startswith("_"):  # Hydra would load a shared block as an option
            raise ConfigError(f"{group}={choice}: '{choice}' is a building block of the {group} group, not an "
                              f"option. Available: {', '.join(group_options(group))}")
    _register_schemas()
    _register_studies()
    _check_study_readable(overrides)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="dualflow"):
            cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=with_choices)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(_friendly(e, overrides)) from None
    return cfg


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
