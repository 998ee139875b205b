"""Datasets: every loader yields a validated ``SampleTable`` (see ``bench.data.table``).

``load_dataset(cfg)`` takes a mapping with ``name`` (a registered loader) and that loader's params,
e.g. the ``dataset`` node of the composed config.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from bench.data.table import DataError, SampleTable
from bench.registry import Registry

DATASETS = Registry("dataset")
register_dataset = DATASETS.register

# One module per dataset family; each registers its loader(s) on import.
_MODULES = ("synthetic", "generic", "casme2", "samm", "smic", "mmew", "casme3", "megc2019", "precomputed")
_loaded = False


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for m in _MODULES:
            importlib.import_module(f"bench.data.{m}")
        _loaded = True


def load_dataset(cfg: Mapping[str, Any]) -> SampleTable:
    _load_all()
    params = dict(cfg)
    name = params.pop("name")
    return DATASETS.get(name)(**params)


def list_datasets() -> list[str]:
    _load_all()
    return DATASETS.names()


__all__ = ["DataError", "SampleTable", "load_dataset", "list_datasets", "register_dataset"]
