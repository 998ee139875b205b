"""Datasets: every loader yields a validated ``SampleTable`` (see ``bench.data.table``).

``load_dataset(cfg)`` takes a mapping with ``name`` (a registered loader) and that loader's params,
e.g. the ``dataset`` node of the composed config.

A loader is registered under its function's name less ``load_`` (``@register_dataset`` on
``def load_casme2`` registers ``casme2``), so its name is written once: ``bench/conf/dataset/casme2.yaml``
has no ``name:`` (the composed config takes it from the file name) and only a preset of another
loader names it (``megc2019_htnet.yaml``: ``name: precomputed``). What a loader declares beside its
function (as models declare ``skip``): ``aliases``, other spellings of its database in published
prediction logs and source columns (``CASME_II``), and, for a composite, ``sources``: the databases
its rows come from. ``bench.data.databases`` derives the known database names from them.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from bench.data.table import DataError, SampleTable
from bench.core.registry import Registry, import_plugins

DATASETS = Registry("dataset", prefix="load_")

_loaded = False


def register_dataset(fn: Callable | str | None = None, *, aliases: Sequence[str] = (), sources: Sequence[str] = (),
                     reads_flows: bool = False, synthetic: bool = False, skip: Callable | None = None):
    """``@register_dataset`` (key: the function's name less ``load_``), or with options:

    ``aliases`` / ``sources`` (database spellings, see the module docstring); ``reads_flows``: its
    table carries flow files, so its cells take the one flow item ``precomputed`` instead of a
    backend; ``synthetic``: generated data (the report may show its samples; never real faces);
    ``skip(node, representation, label) -> (skip, reason)``: the representations its data cannot
    feed (benchopt's dataset-side ``skip``; the model side is ``models.model_skip``).
    A name argument (``@register_dataset("x")``, the old spelling) must equal the key."""
    named = fn if isinstance(fn, str) else None

    def deco(f: Callable) -> Callable:
        if named is not None and named != DATASETS.key_of(f):
            raise ValueError(f"@register_dataset({named!r}) on {f.__name__}: a loader's name is its function's "
                             f"name less 'load_' ({DATASETS.key_of(f)!r}); rename the function to load_{named}")
        f.aliases = tuple(str(a).lower() for a in aliases)
        f.sources = tuple(sources)
        f.reads_flows, f.synthetic, f.skip = bool(reads_flows), bool(synthetic), skip
        return DATASETS.register(f)

    return deco(fn) if callable(fn) else deco


def _loader(name: str) -> Callable | None:
    _load_all()
    return DATASETS.get(str(name)) if str(name) in DATASETS.names() else None


def dataset_reads_flows(name: str) -> bool:
    """Whether the loader ``name`` reads flow files instead of frames (its cells' flow is ``precomputed``)."""
    return bool(getattr(_loader(name), "reads_flows", False))


def dataset_is_synthetic(name: str) -> bool:
    """Whether the loader ``name`` generates its data (so its samples may be shown)."""
    return bool(getattr(_loader(name), "synthetic", False))


def dataset_skip(node: Mapping[str, Any], representation, label: str) -> tuple[bool, str]:
    """The dataset's own ``skip`` for a representation (``(False, "")`` when it has none)."""
    fn = getattr(_loader(node.get("name", "")), "skip", None)
    return fn(node, representation, label) if fn else (False, "")


def check_roots(node: Mapping[str, Any]) -> None:
    """Refuse a dataset node whose folders do not exist, before anything is loaded or written: its
    ``root`` (with the preset's ``clone`` command when it has one) and each set ``<part>.root`` of a
    composite's parts (only those in its ``include``, when it has one), each error naming its key."""
    from bench.data._sheets import require_root

    name = str(node.get("dataset") or node.get("name", "dataset"))  # a preset's own name (megc2019_htnet)
    if "root" in node:
        require_root(node["root"], name, node.get("clone"))
    include = node.get("include")
    for part, sub in node.items():
        if not isinstance(sub, Mapping) or "root" not in sub or (include is not None and part not in include):
            continue
        if sub["root"] is not None and str(sub["root"]).strip() not in ("", "???"):  # unset: the loader says so
            require_root(sub["root"], str(part), key=f"dataset.{part}.root")


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


__all__ = ["DATASETS", "DataError", "SampleTable", "check_roots", "dataset_is_synthetic", "dataset_reads_flows",
           "dataset_skip", "list_datasets", "load_dataset", "register_dataset"]
