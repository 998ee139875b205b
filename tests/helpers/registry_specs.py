"""Model × input specs drawn from the registries (as timm's tests iterate ``list_models()``).

Every model config (``bench/conf/model/*.yaml``, composed as the planner composes it, so a preset
gets its parent's keys: ``defaults: [timm_resnet10t, _self_]``), plus every parameterised model item of every study
(e.g. fmanet_ablation's switches), crossed with every registered representation the model does not
skip (its own ``skip`` rule decides, as the planner's does). A new model, representation or study
item is covered without editing a list.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[2] / "bench" / "conf" / "model"


def model_config(option: str) -> dict:
    """The composed node of ``bench/conf/model/<option>.yaml`` with its ``name`` (the file's, unless it
    or its parent writes one), as the planner gives it to a cell."""
    from bench.core.config import option_node

    node = option_node("model", option)
    return {"name": node.pop("name", option), **node}


def model_nodes() -> list[tuple[str, dict]]:
    """(id, model node with ``name``) for every model config and every study item with params."""
    from studies import STUDY_DIR

    base = {p.stem: model_config(p.stem) for p in sorted(CONF.glob("[!_]*.yaml"))}
    out = list(base.items())
    for sp in sorted(STUDY_DIR.glob("*.yaml")):
        for item in OmegaConf.to_container(OmegaConf.load(sp)).get("models") or []:
            if isinstance(item, dict) and item.get("params") and item["option"] in base:
                params = item["params"]
                node = {**base[item["option"]], **params}
                ident = f"{item['option']}[{','.join(f'{k}={v}' for k, v in sorted(params.items()))}]"
                if ident not in dict(out):
                    out.append((ident, node))
    return out


def model_specs() -> list[tuple[str, dict, tuple[str, ...]]]:
    """(id, model node, input channels) for every model node × representation it takes."""
    from models import model_skip
    from representations import create_representation, list_representations

    specs = []
    for ident, node in model_nodes():
        for rname in list_representations():
            rep = create_representation(rname)
            if not model_skip(node, rep)[0]:
                specs.append((f"{ident}-{rname}", node, tuple(rep.channels)))
    return specs
