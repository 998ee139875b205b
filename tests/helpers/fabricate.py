"""A run folder as ``bench.run`` writes it, fabricated with known scores (the report tests' input)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ["negative", "positive", "surprise"]
# Representation label -> (option, parameters): what the runner resolves a study's entry to.
REP_PARAMS = {"single_phase": ("single_phase", {}), "cof[theta1=0.3]": ("cof", {"theta1": 0.3}),
              "cof[theta1=0.6]": ("cof", {"theta1": 0.6})}


def cell_hash(cell: str) -> str:
    return hashlib.sha1(cell.encode()).hexdigest()[:16]


def fabricate_run(root: Path, reps=("single_phase", "cof[theta1=0.3]"), models=("ststnet", "fmanet"),
                  n_subjects=6, per_subject=4, seeds=(0, 1), dataset="synthetic", sources=None,
                  aux=True, examples=True, failed=None, rng_seed=0, flows=("farneback",), rep_params=None,
                  legacy=False, recipes=None, manifest=None, twins=()) -> Path:
    """A run directory as bench.run writes it; accuracy grows with the representation's index.

    ``flows=None`` writes the bare schema of notes/results_schema.md (no flow column).
    ``rep_params``: label -> (option, params) for labels not in REP_PARAMS (default: the label, none).
    ``legacy=True`` writes a run directory from before the ``p_*`` columns: the option and parameters
    only in ``rep_params`` JSON, no ``cell_hash``, aux.npz keyed by the cell label.
    ``recipes``: model -> the trainer settings its units record in ``hparams`` (default: none recorded).
    ``manifest``: a ``manifest.json`` to write (``bench.results.manifest``'s layout). ``twins``:
    representations whose predictions copy the first representation's (practically equivalent cells)."""
    specs = {**REP_PARAMS, **(rep_params or {})}
    rng = np.random.default_rng(rng_seed)
    run = root / "runs" / "toy_study"
    run.mkdir(parents=True)
    pred_rows, res_rows, auxd = [], [], {}
    subjects = [f"s{i:02d}" for i in range(n_subjects)]
    for seed, flow, (ri, rep), (mi, model) in itertools.product(seeds, flows or (None,), enumerate(reps),
                                                               enumerate(models)):
        cell = f"{dataset}|{flow}|{rep}|{model}|{seed}" if flow else f"{dataset}|{rep}|{model}|{seed}"
        flow_col = {"flow": flow} if flow else {}
        option, params = specs.get(rep, (rep, {}))
        if legacy:
            cols = {"rep_params": json.dumps({"name": option, **params})}
            aux_key = cell
        else:
            cols = {"cell_hash": cell_hash(cell), "rep_params": json.dumps({"name": option, **params}),
                    "p_dataset": dataset, **({"p_flow": flow, "p_flow_backend": flow} if flow else {}),
                    "p_representation": option, **{f"p_representation_{k}": v for k, v in params.items()},
                    "p_model": model, "p_model_dropout": 0.5}
            aux_key = cell_hash(cell)
        p_correct = 0.45 + 0.2 * ri + 0.05 * mi + (0.1 if flow == "tvl1" else 0.0)
        y_all = []
        for si, subj in enumerate(subjects):
            src = sources[si % len(sources)] if sources else dataset
            for j in range(per_subject):
                y = (si + j) % 3
                yp = y if rng.random() < p_correct else int((y + 1 + rng.integers(2)) % 3)
                probs = np.full(3, 0.1)
                probs[yp] = 0.8
                pred_rows.append(dict(study="toy_study", dataset=dataset, **flow_col, representation=rep,
                                      model=model, seed=seed, fold=subj, subject=subj, clip=f"{subj}_c{j}",
                                      source_dataset=src, y_true=y, y_pred=yp,
                                      prob_0=probs[0], prob_1=probs[1], prob_2=probs[2]))
                y_all.append(y)
            status = "failed" if failed == (rep, model, seed, subj) else "ok"
            res_rows.append(dict(
                study="toy_study", dataset=dataset, **flow_col, representation=rep,
                representation_name=option, model=model, model_name=model, seed=seed,
                fold=subj, cell=cell, test_subjects=subj, n_train=20, n_val=4, n_test=per_subject,
                fold_uf1=0.5, fold_uar=0.5, fold_acc=0.5, epochs_run=10 + mi, best_epoch=-1,
                train_seconds=1.5, predict_seconds=0.1, tune_seconds=0.0,
                hparams=json.dumps({"trainer": (recipes or {}).get(model, {})}), **cols,
                model_params="{}", status=status, error="RuntimeError: boom" if status == "failed" else "",
                config_hash="abc", git_commit="deadbeef"))
        if aux and model == "fmanet":
            n = len(y_all)
            w1 = rng.uniform(0.2, 0.8, n)
            auxd[f"{aux_key}/fusion_weights"] = np.stack([w1, 1 - w1], 1).astype(np.float32)
            auxd[f"{aux_key}/attention"] = rng.random((n, 7, 7)).astype(np.float32)
            auxd[f"{aux_key}/y_true"] = np.array(y_all)
    preds = pd.DataFrame(pred_rows)
    for twin in twins:  # the same predictions as the first representation: a practically equivalent cell
        first, mine = preds["representation"] == reps[0], preds["representation"] == twin
        for col in ("y_pred", "prob_0", "prob_1", "prob_2"):
            preds.loc[mine, col] = preds.loc[first, col].to_numpy()
    preds.to_parquet(run / "predictions.parquet")
    if manifest is not None:
        (run / "manifest.json").write_text(json.dumps(manifest))
    pd.DataFrame(res_rows).to_parquet(run / "results.parquet")
    if aux:
        np.savez(run / "aux.npz", **auxd)
    if examples:
        ex = {}
        for rep in reps:
            c = 2 if rep == "single_phase" else 3
            ex[rep] = rng.normal(size=(c, 16, 16)).astype(np.float32)
            ex[f"{rep}__channels"] = np.array(["u", "v", "magnitude"][:c])
        np.savez(run / "examples.npz", **ex)
    (run / "run.json").write_text(json.dumps({
        "study": "toy_study", "classes": CLASSES, "class_counts": {"negative": 8, "positive": 8, "surprise": 8},
        "n_subjects": n_subjects, "protocol": "loso", "tuning": {"n_trials": 0, "sampler": "none"},
        "flow": {"farneback": {"backend": "farneback", "pyr_scale": 0.5, "levels": 3}}, "seeds": list(seeds),
        "datasets": {dataset: {"name": dataset, "n_samples": n_subjects * per_subject, "n_subjects": n_subjects,
                               "class_counts": {"negative": 8, "positive": 8, "surprise": 8}, "problems": []}},
        "trainer": {"epochs": 10, "batch_size": 16},
        "versions": {"python": "3.11", "torch": "2.13.0"}, "git_commit": "deadbeef", "wall_seconds": 3725.0,
        "started": "2025-01-01T00:00:00", "finished": "2025-01-01T01:02:05",
        "mlflow": {"tracking_uri": f"sqlite:///{run}/mlflow.db", "experiment_id": "1", "experiment_name": "toy_study"},
        "timings": {"flow": 10.0, "train": 3600.0, "tracking": 5.0, "report": 0.0}}))
    return run


def scan_clean(out: Path) -> None:
    for p in [out / "report.md", *sorted((out / "tables").glob("*"))]:
        text = p.read_text()
        for bad in ("nan", "NaN", "TODO", "None", "inf"):
            assert not re.search(rf"\b{bad}\b", text), f"{p.name} contains {bad!r}"
