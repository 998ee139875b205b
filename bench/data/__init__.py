"""Datasets: every loader yields a validated ``SampleTable`` (see ``bench.data.table``).

``load_dataset(cfg)`` takes a mapping with ``name`` (a registered loader) and that loader's params,
e.g. the ``dataset`` node of the composed config.
"""

from __future__ import annotations

from typing import Any, Mapping

from bench.data.table import DataError, SampleTable
from bench.core.registry import Registry, import_plugins

DATASETS = Registry("dataset")
register_dataset = DATASETS.register

_loaded = False


def _load_all() -> None:
    """Import every module of this package: a dataset family is one file whose loader(s) register on
    import (``_sheets`` and ``__main__`` are not loaders and are skipped). Lazy, so that importing
    ``bench.data.table`` stays cheap."""
    global _loaded
    if not _loaded:
        import_plugins(__name__, __path__)
        _loaded = True


def load_dataset(cfg: Mapping[str, Any]) -> SampleTable:
    """The table the dataset node (``{name: <loader>, **params}``) describes."""
    _load_all()
    return DATASETS.build(cfg)


def list_datasets() -> list[str]:
    _load_all()
    return DATASETS.names()


__all__ = ["DataError", "SampleTable", "load_dataset", "list_datasets", "register_dataset"]
