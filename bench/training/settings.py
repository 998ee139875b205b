"""A cell's typed settings: its protocol, trainer recipe (and where each value came from) and tuning, parsed once.

The planner builds one ``CellSettings`` per cell from the cell's resolved config and hands it to
the runner and, inside each ``UnitTask``, to the workers, so nothing downstream re-parses a config
dict or re-tests "is this cell tuned" its own way. It lives here, below the units that read it and
above the schemas it is made of, so the planner (above) and the unit (beside) share one type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from bench.core.schemas import TrainConfig
from bench.protocols.folds import ProtocolSpec


@dataclass(frozen=True)
class TuningSettings:
    """The ``tuning`` node: off (``n_trials`` 0) or nested Optuna on training subjects only."""

    n_trials: int = 0
    space: dict = field(default_factory=dict)
    node: dict = field(default_factory=dict)  # the whole node, as ``bench.training.tuning.tune_unit`` reads it

    @classmethod
    def from_node(cls, node: Mapping[str, Any] | None) -> "TuningSettings":
        node = dict(node or {})
        return cls(n_trials=int(node.get("n_trials") or 0), space=dict(node.get("space") or {}), node=node)

    @property
    def enabled(self) -> bool:
        """Whether the cell is tuned (nested, per outer fold)."""
        return self.n_trials > 0

    @property
    def tunes_representation(self) -> bool:
        """Whether trials change the representation, so each trial recomputes it from the flows."""
        return self.enabled and "representation" in self.space


@dataclass(frozen=True)
class RecipeSource:
    """Where a cell's trainer recipe came from (the values themselves are ``CellSettings.trainer``).

    ``preset`` is the trainer file the cell started from: its model's own recipe
    (``bench/conf/trainer/<model>.yaml``), a preset named on purpose (``trainer=ststnet_paper``) or
    ``default`` (the schema's defaults). ``sources`` says, for every trainer key set above the schema's
    defaults, who set it last: ``model recipe (...)``, ``trainer preset <name> (...)``, ``study``,
    ``study item``, ``command line``, or ``tuned per outer fold (...)``; a key it does not name has the
    schema's default (``bench.core.schemas.TrainConfig``)."""

    preset: str = "default"
    chosen_by: str = "trainer default"  # who chose the preset: model recipe | study | study item | command line
    sources: tuple[tuple[str, str], ...] = ()  # (trainer key, who set it), dotted below augment

    def source_of(self, key: str) -> str:
        """Who set ``key`` (``trainer default`` when nobody did)."""
        return dict(self.sources).get(key, "trainer default")

    def tuned(self, space: Mapping[str, Any]) -> "RecipeSource":
        """The same, with the keys a tuning space searches marked as tuned (their configured value is the
        starting config only; each outer fold's chosen value is in its unit record)."""
        if not space:
            return self
        src = dict(self.sources)
        for key in space:
            src[str(key)] = f"tuned per outer fold (nested Optuna; configured: {src.get(str(key), 'trainer default')})"
        return RecipeSource(self.preset, self.chosen_by, tuple(src.items()))

    def params(self) -> dict[str, str]:
        """Flat ``{"recipe": preset, "recipe_source.<key>": source}``, for MLflow params and tags."""
        return {"recipe": self.preset, **{f"recipe_source.{k}": v for k, v in self.sources}}


@dataclass(frozen=True)
class CellSettings:
    """What a cell runs under, typed: the outer protocol, the trainer recipe, the tuning, and where the
    recipe's values came from."""

    protocol: ProtocolSpec
    trainer: TrainConfig  # the recipe as configured (the unit's seed and any tuned values come later)
    tuning: TuningSettings
    recipe: RecipeSource = field(default_factory=RecipeSource)  # set by the planner

    @classmethod
    def from_cell_config(cls, cfg: Mapping[str, Any]) -> "CellSettings":
        """Parse a cell's resolved config (``bench.plan.planner.CELL_KEYS``); bad values raise ValueError."""
        trainer = {k: v for k, v in dict(cfg["trainer"]).items() if k != "augment"}
        return cls(protocol=ProtocolSpec.from_mapping(cfg["protocol"]), trainer=TrainConfig.from_mapping(trainer),
                   tuning=TuningSettings.from_node(cfg.get("tuning")))
