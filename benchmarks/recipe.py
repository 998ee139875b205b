"""Does a cheaper training recipe still fit as well? ``python -m benchmarks.recipe``.

The criterion a recipe change of the main study must meet (issue 15): for every model of
``ablation_phases``, the **final-epoch training loss, averaged over the folds and representations**
(synthetic data, seed 0, LOSO), under the study's recipe is **no higher than under the previous
recipe + ``TOLERANCE``** (0.02). The tolerance is about what float rounding alone moves that mean:
the same recipe with the same seed, computed by a network that is mathematically the same but
rounds differently (the one-stream STSTNet, the tap-trimmed ResNet), moved it by +0.004 (STSTNet,
48 fits) and +0.016 (ResNet-10-T, 4 fits).

``REFERENCE`` holds each model's recipe before the change (the trainer overrides on top of the
trainer group's defaults) and ``REFERENCE_MODEL`` the model option it replaced, where the network
itself changed (ResNet-10-T at half width for the full-width one). Both recipes run on the same
folds with the same seed; a model whose study recipe and network equal its reference is reported
without training twice. The training loss
is the engine's epoch mean (train mode: dropout and batch statistics on), the figure the study's
per-epoch histories keep. Cost is each recipe's summed ``fit`` seconds, in this process.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np

STUDY = "ablation_phases"
TOLERANCE = 0.02
# Each model's recipe before issue 15's recipe change (trainer overrides; the rest is the trainer
# group's defaults: Adam, lr 1e-3, batch 32, no schedule).
REFERENCE = {
    "timm_resnet10t_half": {"epochs": 20},
    "ststnet": {"epochs": 40},
    "fmanet": {"epochs": 80},
    # OFF-ApexNet is not in ablation_phases: check it with ``study.models=[off_apexnet]`` (issue 26's
    # cheaper recipe); its previous recipe is the trainer defaults' 40 epochs.
    "off_apexnet": {"epochs": 40},
}
# The model option each study model replaced (its model config group option); absent: the same network.
REFERENCE_MODEL = {"timm_resnet10t_half": "timm_resnet10t"}


def _reference_model(name: str, study_model: dict) -> dict:
    from bench.core.config import compose, to_container

    if name not in REFERENCE_MODEL:
        return study_model
    return to_container(compose([f"model={REFERENCE_MODEL[name]}"]).model)


def _final_losses(model_cfg: dict, trainer_cfg: dict, x, y, channels, folds, seed: int) -> tuple[list[float], float]:
    from bench.training.fold import train_and_predict

    task = SimpleNamespace(x=x, y=y, channels=channels, n_classes=int(y.max()) + 1, seed=seed)
    losses, seconds = [], 0.0
    for fold in folds:
        out = train_and_predict(task, np.asarray(fold.train_idx), np.asarray(fold.test_idx)[:1],
                                dict(model_cfg), dict(trainer_cfg))
        losses.append(float(out["fit"].history[-1]["train_loss"]))
        seconds += out["fit"].seconds
    return losses, seconds


def default_trainer(overrides: list[str]) -> dict:
    """The trainer group's defaults for the study, with the command line's non-trainer keys only: a
    trainer key given there (``trainer.epochs=20``, a candidate recipe) changes the study's side of the
    comparison, never the reference's."""
    from bench.core.config import compose, to_container

    return to_container(compose([f"study={STUDY}", *(o for o in overrides
                                                     if not o.lstrip("+").startswith("trainer"))]).trainer)


def reference_trainer(name: str, overrides: list[str] = (), base: dict | None = None) -> dict:
    """``REFERENCE[name]`` over the trainer defaults: the recipe ``name`` ran before its change."""
    return {**(default_trainer(list(overrides)) if base is None else base), **REFERENCE[name]}


def compare(models: list[str] | None = None, representations: list[str] | None = None,
            folds: list[int] | None = None, overrides: list[str] | None = None, threads: int = 1,
            seed: int | None = None) -> list[dict]:
    """One row per model: mean final-epoch training loss and fit seconds under the reference recipe
    and the study's, over the chosen representations (default all) and folds (default all)."""
    import torch

    from bench.runner.prepare import Prepared
    from bench.plan.planner import plan_study

    torch.set_num_threads(threads)
    plan = plan_study([f"study={STUDY}", "tracking=none", "report=false", *(overrides or [])])
    prep = Prepared(plan, progress=False)
    base_trainer = default_trainer(overrides or [])
    cell_seed = min(c.seed for c in plan.cells)  # one cell per (representation, model)
    seed = cell_seed if seed is None else int(seed)
    rows: dict[str, dict] = {}
    for cell in plan.cells:
        name = cell.model.name
        if cell.seed != cell_seed or (models and name not in models) or name not in REFERENCE:
            continue
        if representations and cell.representation.name not in representations:
            continue
        _, table = prep.table(cell)
        x, channels, _ = prep.representation(cell)
        y = table.df["label"].to_numpy(dtype=np.int64)
        all_folds = prep.fold_list(cell)
        chosen = [all_folds[i] for i in folds] if folds is not None else all_folds
        new_cfg = dict(cell.cfg["trainer"])
        ref_cfg = reference_trainer(name, overrides or [], base_trainer)
        new_model = dict(cell.cfg["model"])
        ref_model = _reference_model(name, new_model)
        row = rows.setdefault(name, {"model": name, "reference": REFERENCE[name], "ref_losses": [], "new_losses": [],
                                     "reference_model": REFERENCE_MODEL.get(name), "seed": seed,
                                     "ref_seconds": 0.0, "new_seconds": 0.0, "cells": []})
        row["recipe"] = {k: v for k, v in new_cfg.items() if base_trainer.get(k) != v and k != "seed"}
        row["cells"].append(cell.representation.name)
        new_l, new_s = _final_losses(new_model, new_cfg, x, y, channels, chosen, seed)
        same = ({k: v for k, v in new_cfg.items() if k != "seed"} == {k: v for k, v in ref_cfg.items() if k != "seed"}
                and new_model == ref_model)
        ref_l, ref_s = (new_l, new_s) if same else _final_losses(ref_model, ref_cfg, x, y, channels, chosen, seed)
        row["new_losses"] += new_l
        row["ref_losses"] += ref_l
        row["new_seconds"] += new_s
        row["ref_seconds"] += ref_s
        row["unchanged"] = same
    out = []
    for row in rows.values():
        row["ref_loss"] = float(np.mean(row["ref_losses"]))
        row["new_loss"] = float(np.mean(row["new_losses"]))
        row["cost_ratio"] = row["new_seconds"] / row["ref_seconds"] if row["ref_seconds"] > 0 else float("nan")
        row["met"] = row["new_loss"] <= row["ref_loss"] + TOLERANCE
        out.append(row)
    return out


def format_rows(rows: list[dict]) -> str:
    seeds = sorted({r["seed"] for r in rows}) or ["-"]
    lines = [f"recipe check ({STUDY}, seed {', '.join(map(str, seeds))}): mean final-epoch training loss over folds x representations; "
             f"criterion: new <= reference + {TOLERANCE}",
             f"  {'model':20s} {'reference recipe':36s} {'ref loss':>9s} {'study recipe':48s} {'new loss':>9s} "
             f"{'fits':>5s} {'cost new/ref':>13s}  criterion"]
    for r in rows:
        ref = ", ".join(f"{k}={v}" for k, v in r["reference"].items())
        if r.get("reference_model"):
            ref = f"model={r['reference_model']}, {ref}"
        new = "(unchanged)" if r["unchanged"] else ", ".join(f"{k}={v}" for k, v in r["recipe"].items())
        lines.append(f"  {r['model']:20s} {ref:36s} {r['ref_loss']:9.4f} {new:48s} {r['new_loss']:9.4f} "
                     f"{len(r['new_losses']):5d} {r['cost_ratio']:13.2f}  {'met' if r['met'] else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=None, help=f"default: every model with a reference ({list(REFERENCE)})")
    ap.add_argument("--representations", nargs="+", default=None)
    ap.add_argument("--folds", type=int, nargs="+", default=None, help="fold positions (default: all)")
    ap.add_argument("--seed", type=int, default=None, help="default: the study's first seed")
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides (e.g. paths.cache=...)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = compare(a.models, a.representations, a.folds, a.overrides, seed=a.seed)
    print(format_rows(rows))
    print(f"({time.perf_counter() - t0:.0f} s)")
    return rows


if __name__ == "__main__":
    main()
