"""Registry of motion representations: ``create_representation(name, **params)``.

An entry is a ``Representation`` subclass registered under its ``name`` (``@register_representation``);
its config file is ``bench/conf/representation/<name>.yaml`` (the file name is the registry key).
"""

from typing import Sequence

from bench.core.registry import Registry

REPRESENTATIONS = Registry("representation")
register_representation = REPRESENTATIONS.register


def create_representation(name: str, **params):
    return REPRESENTATIONS.get(name)(**params)


def build_representation(node):
    """The representation a config node ``{name, **params}`` describes."""
    return REPRESENTATIONS.build(node)


def list_representations() -> list[str]:
    return REPRESENTATIONS.names()


def exactness_notes(base: str, has_phase2: bool, stored_channels: Sequence[str] = ()) -> dict[str, str]:
    """Representation name -> how exact it is on precomputed flow files (each class says for itself)."""
    return {n: REPRESENTATIONS.get(n).exactness(base, has_phase2, stored_channels) for n in REPRESENTATIONS.names()}
