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


def annotate_exactness(table) -> dict[str, str]:
    """Record in ``table.meta["exactness"]`` how exact each representation is on a precomputed
    table's flow files, from the format note its loader left (``meta["exactness_base"]``), and log
    it (a warning when some only approximate). Done where representations are known (the runner),
    so the data loaders below them never import them. A computed-flow table gets ``{}``."""
    meta = table.meta
    if "exactness_base" not in meta:
        return meta.get("exactness") or {}
    if "exactness" not in meta:
        spec = meta.get("flow_file") or {}
        meta["exactness"] = exactness_notes(meta["exactness_base"], bool(meta.get("has_phase2")),
                                            list(spec.get("channels") or ()))
        _log_exactness(table, meta["exactness"])
    return meta["exactness"]


def _log_exactness(table, exact: dict[str, str]) -> None:
    # "exact: why" (the stored channels) is exact; "unavailable: why" cannot run on these files at all
    import logging

    log = logging.getLogger("bench.data")
    formats = ", ".join(table.meta.get("flow_formats") or [])
    approx = sorted(k for k, v in exact.items() if not v.startswith(("exact", "unavailable")))
    unavailable = sorted(k for k, v in exact.items() if v.startswith("unavailable"))
    if approx:
        log.warning("precomputed flows %s (%s): %s", table.source, formats,
                    "; ".join(f"{k}: {exact[k]}" for k in sorted(exact)))
    else:
        log.info("precomputed flows %s (%s): every representation is exact%s", table.source, formats,
                 "".join(f"; {k}: {exact[k]}" for k in unavailable))
