"""Registry of motion representations: ``create_representation(name, **params)``."""

from bench.registry import Registry

REPRESENTATIONS = Registry("representation")
register_representation = REPRESENTATIONS.register


def create_representation(name: str, **params):
    return REPRESENTATIONS.get(name)(**params)


def list_representations() -> list[str]:
    return REPRESENTATIONS.names()
