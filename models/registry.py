"""Registry of model families: ``create_model(name, in_chans, num_classes, **params)``.

An entry is a factory function registered under its own ``__name__`` (``@register_model``); its
config file is ``bench/conf/model/<name>.yaml`` (presets of another entry, such as
``timm_resnet10t.yaml``, name it in ``name:``). ``timm:<arch>`` names are resolved by the timm
family (models/timm_models.py).

What a family declares beside its factory (timm's ``default_cfgs`` idea):

* ``skip=fn``: ``fn(representation, **params) -> (skip, reason)``, benchopt's ``skip``: whether the
  family cannot take that representation's input with these parameters. The planner leaves such
  cells out and records the reason, so studies need no hand-written exclusions.
* a ``channels`` parameter in the factory's signature: the factory then receives the input's
  channel names (``Representation.channels``), so it reads the layout instead of guessing it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

from bench.core.registry import Registry, split_node

MODELS = Registry("model")


def register_model(fn: Callable | str | None = None, *, skip: Callable | None = None):
    """``@register_model`` (key = the function's name), ``@register_model("key")``, ``skip=`` as above."""
    def deco(f, name=None):
        f.skip = skip
        return MODELS.register(name)(f) if name else MODELS.register(f)

    if callable(fn):
        return deco(fn)
    return lambda f: deco(f, fn)


def _family(name: str) -> tuple[Callable, dict]:
    if name.startswith("timm:"):
        return MODELS.get("timm"), {"arch": name.split(":", 1)[1]}
    return MODELS.get(name), {}


def create_model(name: str, in_chans: int, num_classes: int, channels: Sequence[str] | None = None, **params):
    fn, fixed = _family(name)
    if channels is not None and "channels" in inspect.signature(fn).parameters:
        fixed["channels"] = tuple(channels)
    return fn(in_chans=in_chans, num_classes=num_classes, **fixed, **params)


def build_model(node, *, in_chans: int, num_classes: int, channels: Sequence[str] | None = None):
    """The model a config node ``{name, **params}`` describes, for ``in_chans`` input channels."""
    name, params = split_node(node)
    return create_model(name, in_chans=in_chans, num_classes=num_classes, channels=channels, **params)


def model_skip(node, representation: Any) -> tuple[bool, str]:
    """``(True, reason)`` when the model a config node describes cannot take ``representation``."""
    name, params = split_node(node)
    fn, _ = _family(name)
    skip = getattr(fn, "skip", None)
    if skip is None:
        return False, ""
    out, reason = skip(representation, **params)
    return bool(out), str(reason or "")


def list_models() -> list[str]:
    return [n if n != "timm" else "timm:<arch>" for n in MODELS.names()]
