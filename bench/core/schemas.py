"""Config dataclasses that are also Hydra schemas.

``bench.core.config`` stores each schema in Hydra's ConfigStore as ``<group>/_schema*`` before the first
compose; a group's YAML names its schema first in its ``defaults`` list
(Hydra's "structured config schema" pattern), so the dataclass alone defines the keys, defaults and
types, and a wrong type (``trainer.epochs=abc``) or an unknown key (``trainer.epohcs=3``) fails at
compose time. ``typed`` applies the same dataclass to plain mappings, so library callers of
``from_mapping`` get the same conversions and refusals.

``TrainConfig`` lives here rather than in ``bench.training.engine`` (which re-exports it) so that composing a
config does not import torch; the protocol schemas live here too (``bench.protocols.folds.ProtocolSpec``
adds the parsing and the splits to ``KFoldProtocolNode``), so composing imports nothing above the core.

Every config group has a schema. Where the group's files hold the values (executor, tuning, tracking,
report_options) the schema's fields have no defaults (``MISSING``): it says which keys and types the
files may have, the files say the values, and a file that lacks a key fails to compose. A field typed
``Any`` takes an int or a float (seconds, CPUs): typed ``float`` it would turn a file's ``0`` into
``0.0`` and so change the composed config; its consumer checks it. A selection key (``name``) left
``MISSING`` is the file's name (``bench.core.config`` fills it in).
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import PurePath
from typing import Any, Dict, Mapping, Optional, Sequence

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "step", "onecycle")
MONITORS = ("val_loss", "val_uf1")
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")


def _writable(node: DictConfig) -> DictConfig:
    # A frozen dataclass gives read-only nodes; as a schema it must still take the YAML and overrides.
    OmegaConf.set_readonly(node, False)
    for key in node:
        child = node._get_node(key)  # not node[key]: that raises on a MISSING value
        if isinstance(child, DictConfig):
            _writable(child)
    return node


def schema_node(cls: type) -> DictConfig:
    """The dataclass as a writable OmegaConf structured config (typed, struct: no unknown keys)."""
    return _writable(OmegaConf.structured(cls))


@functools.lru_cache(maxsize=None)
def _cached_node(cls: type) -> DictConfig:
    return schema_node(cls)  # merge() never modifies its inputs, so one node per class serves all calls


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") and hasattr(v, "dtype") and getattr(v, "ndim", 1) == 0 else v


def typed(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """``cls(**data)`` with every value checked and converted against the dataclass's annotations,
    by the rules Hydra applies at compose time ("5" -> 5 for an int, 1 -> 1.0 for a float, "abc" for
    an int is an error). A ValueError names the key as ``where.key``."""
    try:
        merged = OmegaConf.merge(_cached_node(cls), {str(k): _plain(v) for k, v in data.items()})
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", "") or ""
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{where}.{key}: {first}" if key else f"{where}: {first}") from None


def conforms(value: Any, annotation: Any) -> bool:
    """Whether a plain config value fits a type annotation (``str | None``, ``Mapping[str, Any]``,
    ``Sequence[str]``, ``int``, ...), for the groups that have no dataclass schema: their entries'
    signatures say the types. An annotation this cannot read accepts everything."""
    if annotation in (Any, inspect.Parameter.empty, object):
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    kind = origin or annotation
    if not isinstance(kind, type):
        return True
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str or issubclass(kind, PurePath):
        return isinstance(value, str)
    if issubclass(kind, Mapping):
        return isinstance(value, Mapping)
    if kind in (list, tuple) or issubclass(kind, Sequence):
        return isinstance(value, (list, tuple))
    return True


def describe(annotation: Any) -> str:
    """An annotation in words: ``Mapping[str, str] | None`` -> 'a mapping or null'."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(describe(a) for a in typing.get_args(annotation)))
    if annotation is None or annotation is type(None):
        return "null"
    kind = origin or annotation
    if isinstance(kind, type):
        for k, word in ((bool, "true or false"), (int, "an integer"), (float, "a number"), (str, "text"),
                        (PurePath, "text"), (Mapping, "a mapping"), (Sequence, "a list"), (list, "a list"),
                        (tuple, "a list")):
            if issubclass(kind, k):
                return word
    return str(annotation)


# ------------------------------------------------------------------------------------ trainer

@dataclass
class TrainConfig:
    """Every training hyper-parameter of ``bench.training.engine.fit``, with its default and type.

    Also the schema of the ``trainer`` group (through ``TrainerNode``): ``bench/conf/trainer/default.yaml``
    only names it. Defaults train the suite's small models on ~130 samples at 28 px in seconds per fold
    on one CPU core (see the engine benchmark). The field order is the composed node's key order.
    """

    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adam"  # adam | adamw | sgd
    momentum: float = 0.9  # sgd only
    # fused optimizer kernel (one pass over all parameters; ~1.25x faster ResNet-10-T steps on CPU);
    # false = per-tensor loop
    fused: bool = True
    # none | cosine | step (stepped once per epoch) | onecycle (stepped per batch: warm-up to lr over
    # the first 30% of the steps, then cosine down to lr / 1e5; Smith & Topin 2019)
    scheduler: str = "none"
    step_size: int = 10  # step: epochs between decays
    step_gamma: float = 0.5  # step: decay factor
    min_lr: float = 0.0  # cosine: final learning rate
    loss: str = "ce"  # ce | focal
    focal_gamma: float = 2.0  # focal only
    class_weights: Any = "none"  # none | balanced | [w_0, ..., w_{K-1}]
    label_smoothing: float = 0.0  # ce only
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    # epochs without improvement of `monitor` on a validation split drawn from the training subjects
    # (protocol.validation.mode=subjects); 0 = fixed budget
    early_stopping_patience: int = 0
    monitor: str = "val_loss"  # val_loss | val_uf1 (ties broken by val_loss)
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    amp: bool = False  # float16 autocast + GradScaler, CUDA only (ignored with a warning on CPU)
    eval_every: int = 1  # validate every N epochs (and after the last)
    seed: int = 0  # replaced per unit by the study's seeds (study.seeds)
    deterministic: bool = True  # torch.use_deterministic_algorithms(warn_only) during fit
    memory_format: str = "auto"  # auto (the model's preferred_memory_format) | contiguous | channels_last

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any] | None = None, **overrides) -> "TrainConfig":
        """Build from a plain mapping; unknown keys are an error listing the known ones."""
        data = {**dict(m or {}), **overrides}
        data.pop("name", None)  # config-group files may carry a label
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown trainer keys {unknown}; known: {', '.join(sorted(known))}")
        cw = data.get("class_weights")
        if isinstance(cw, Sequence) and not isinstance(cw, str):
            data["class_weights"] = [float(v) for v in cw]
        cfg = typed(cls, data, "trainer")  # types: the same rules as the compose-time schema
        cfg.validate()
        return cfg

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"trainer: {msg}")

        need(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.batch_size >= 2, f"batch_size must be >= 2 (BatchNorm), got {self.batch_size}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(self.optimizer in OPTIMIZERS, f"optimizer={self.optimizer!r} not in {OPTIMIZERS}")
        need(self.scheduler in SCHEDULERS, f"scheduler={self.scheduler!r} not in {SCHEDULERS}")
        need(self.step_size >= 1, f"step_size must be >= 1, got {self.step_size}")
        need(self.loss in ("ce", "focal"), f"loss={self.loss!r} not in ('ce', 'focal')")
        need(0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        need(self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip}")
        need(self.early_stopping_patience >= 0, "early_stopping_patience must be >= 0")
        need(self.monitor in MONITORS, f"monitor={self.monitor!r} not in {MONITORS}")
        need(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}")
        need(self.memory_format in MEMORY_FORMATS, f"memory_format={self.memory_format!r} not in {MEMORY_FORMATS}")
        import re

        need(isinstance(self.device, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device) is not None,
             f"device={self.device!r} is not a device: use auto, cpu, cuda, cuda:N (N = GPU index) or mps")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AugmentConfig:
    """``trainer.augment``: flow-respecting batch augmentation. The runner builds
    ``representations.augment.FlowAugment(channels, **augment)`` and passes it to fit; all zero = off."""

    hflip: float = 0.0  # probability of a horizontal flip (u negated)
    rotate_deg: float = 0.0  # uniform rotation in [-deg, deg] (flow vectors rotated too)
    translate_px: float = 0.0  # uniform shift in [-px, px]


@dataclass
class TrainerNode(TrainConfig):
    """The ``trainer`` config node: the engine's fields plus ``augment``, which is not an engine field
    (callers pop it before ``TrainConfig.from_mapping``)."""

    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # The input a published recipe's released code fed, as representation parameters per representation
    # option (ststnet_paper: {stored: {rescale: false}}, the raw 0..255 pixels). The planner moves them
    # into the cell's representation (a study item's params and the command line win) and drops this
    # key, so the representation's params (hashed, in the manifest) carry them and nothing else does.
    inputs: Dict[str, Dict[str, Any]] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- protocol

@dataclass(frozen=True)
class ValidationSpec:
    """``protocol.validation``: an inner split of each outer fold's TRAINING subjects (never the test
    subject). Keys, defaults and types of every protocol file come from here (the Hydra schema)."""

    mode: str = "none"                 # none: no inner split | subjects: hold out whole training subjects
    val_fraction: float = 0.2          # fraction of the fold's training SUBJECTS held out (mode=subjects)
    n_val_subjects: Optional[int] = None  # a fixed number of held-out subjects instead of val_fraction
    stratify: bool = True              # choose the subject draw whose class mix best matches the training set
    # fixed_budget: train the configured epochs | best_epoch: keep the epoch with the best validation UF1
    # (needs mode=subjects)
    selection: str = "fixed_budget"
    seed: Optional[int] = None         # null -> the unit's training seed


@dataclass(frozen=True)
class ProtocolNode:
    """The keys every protocol file has: the Hydra schema ``protocol/_schema`` (loso, megc2019)."""

    name: str = MISSING                # the protocol (bench.protocols.folds.PROTOCOLS): the file's name
    seed: int = 0                      # outer split seed (only group_kfold uses it; LOSO is seed-free)
    validation: ValidationSpec = field(default_factory=ValidationSpec)


@dataclass(frozen=True)
class KFoldProtocolNode(ProtocolNode):
    """``protocol/_schema_kfold``: group_kfold, the one protocol whose file carries ``k`` (giving the other
    files a ``k`` would change their resolved configs, hence their unit keys)."""

    k: int = 5                         # group_kfold: number of folds


# ----------------------------------------------------------------------------------- executor

@dataclass
class LocalExecutorNode:
    """``executor/_schema_local`` (bench/conf/executor/local.yaml holds the values and says what they do;
    ``bench.runtime.executors.check_executor_cfg`` checks their ranges)."""

    name: str = MISSING
    workers: int = MISSING
    threads_per_worker: Optional[int] = MISSING
    on_error: str = MISSING
    unit_timeout_s: Any = MISSING      # seconds, int or float


@dataclass
class RayExecutorNode:
    """``executor/_schema_ray`` (bench/conf/executor/ray.yaml)."""

    name: str = MISSING
    address: Optional[str] = MISSING
    num_cpus: Optional[int] = MISSING
    cpus_per_task: Any = MISSING       # CPUs per task, int or float
    threads_per_worker: Optional[int] = MISSING
    workers: int = MISSING
    on_error: str = MISSING
    unit_timeout_s: Any = MISSING      # seconds, int or float


# ------------------------------------------------------------------------------------- tuning

@dataclass
class NoTuningNode:
    """``tuning/_schema_none`` (bench/conf/tuning/none.yaml: ``n_trials: 0``, nothing else)."""

    n_trials: int = MISSING


@dataclass
class OptunaTuningNode:
    """``tuning/_schema_optuna`` (bench/conf/tuning/optuna.yaml holds the values and the search space)."""

    n_trials: int = MISSING
    inner_folds: int = MISSING
    sampler_seed: int = MISSING
    pruner: str = MISSING
    metric: str = MISSING
    storage: str = MISSING
    timeout_s: Optional[float] = MISSING
    space: Dict[str, Any] = MISSING    # group -> parameter -> spec (bench.training.tuning reads the specs)


# ----------------------------------------------------------------------------------- tracking

@dataclass
class TrackingNode:
    """``tracking/_schema`` (bench/conf/tracking/mlflow.yaml and none.yaml)."""

    enabled: bool = MISSING
    uri: Optional[str] = MISSING
    experiment: str = MISSING
    log_epochs: bool = MISSING
    log_artifacts: bool = MISSING
    check_timeout_s: Any = MISSING     # seconds, int or float
    required: bool = MISSING           # true: a failed logging after the study exits 3 (false: 0, a warning)


# ------------------------------------------------------------------------------------- report

@dataclass
class ReportNode:
    """``report_options/_schema``: the reporter's settings (``bench.report.tables.ReportOptions``, the
    same fields; bench/conf/report_options/default.yaml holds its defaults)."""

    baseline: str = MISSING
    n_boot: int = MISSING
    ci_level: float = MISSING
    seed: int = MISSING
    min_pairs: int = MISSING
    alpha: float = MISSING
    rope: float = MISSING
    decide_at: float = MISSING
    pdf: bool = MISSING
    dpi: int = MISSING


__all__ = ["OPTIMIZERS", "SCHEDULERS", "MONITORS", "MEMORY_FORMATS", "TrainConfig", "AugmentConfig",
           "TrainerNode", "ValidationSpec", "ProtocolNode", "KFoldProtocolNode", "LocalExecutorNode",
           "RayExecutorNode", "NoTuningNode", "OptunaTuningNode", "TrackingNode", "ReportNode",
           "schema_node", "typed", "conforms", "describe"]
