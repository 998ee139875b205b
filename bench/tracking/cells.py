"""What a cell run shows in the MLflow UI: its short name, its training recipe and tuned values as
params, and its pooled scores rounded for the runs table.

Read from the results table (``hparams``: the JSON each unit recorded of the recipe it ran, its
model and the values tuning chose for it), never from a config: a backfilled run directory logs
what its units ran.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import MISSING, fields

import numpy as np
import pandas as pd

# The pooled scores again, rounded for the eye, under names MLflow's runs table lists in this
# order (it orders metric columns by name: a digit sorts before any letter, so they lead); the exact
# ``uf1`` / ``uar`` / ``acc`` stay beside them for sorting, filtering and anything that reads them.
DISPLAY_METRICS = (("uf1", "1 UF1"), ("uar", "2 UAR"), ("acc", "3 accuracy"))
DISPLAY_DIGITS = 3
TUNED = "tuned"  # the value of ``trainer.<key>`` when tuning chose it per fold (see ``tuned.trainer.<key>``)


def varying_axes(results: pd.DataFrame) -> tuple[str, ...]:
    """The setting axes (dataset, flow) with more than one value in the study: they name a cell run."""
    return tuple(a for a in ("dataset", "flow") if a in results and results[a].nunique() > 1)


def cell_run_name(row: pd.Series, varying: tuple[str, ...] = ()) -> str:
    """``two_phase_stack × ststnet · seed 0`` (the axis labels), led by the setting when it varies."""
    core = f"{row['representation']} × {row['model']} · seed {row['seed']}"
    return " · ".join([*(str(row[a]) for a in varying), core])


def fold_run_name(fold) -> str:
    """``fold s04``: the outer fold (its test subject under LOSO)."""
    return f"fold {fold}"


def unit_hparams(row: pd.Series) -> dict:
    """A unit's recorded ``hparams`` (``{}`` for a failed one); bad JSON names the unit."""
    text = row.get("hparams")
    if text is None or (isinstance(text, float) and np.isnan(text)) or not str(text).strip():
        return {}
    try:
        node = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"results table: unit {row.get('unit_key')} (cell {row.get('cell')}, fold {row.get('fold')}) "
                         f"has hparams that are not JSON ({e}): {str(text)[:120]!r}") from None
    if not isinstance(node, dict):
        raise ValueError(f"results table: unit {row.get('unit_key')}: hparams is not a JSON object: {str(text)[:120]!r}")
    return node


def tuned_per_fold(hp: dict) -> dict:
    """The hyper-parameters tuning chose for one unit (``trainer.lr``: value), without the search's
    facts (inner score, trials, objective: ``bench.training.tuning.tuned_params``)."""
    from bench.training.tuning import tuned_params

    return tuned_params(hp.get("tuned") or {})


def summarize(values: list):
    """The median over folds of numeric values; the most common value otherwise (ties: first in sorted order)."""
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        m = float(np.median(values))
        return int(m) if all(isinstance(v, int) for v in values) and m.is_integer() else m
    counts = Counter(json.dumps(v, sort_keys=True, default=str) for v in values)
    best = max(counts.values())
    return json.loads(min(k for k, n in counts.items() if n == best))


def recipe(rows: pd.DataFrame) -> tuple[dict, dict]:
    """(``trainer.<field>`` -> value, ``tuned.<name>`` -> median over folds) of one cell.

    The recipe is every ``TrainConfig`` field as the cell's units ran it (the cell's
    ``CellSettings.trainer``; ``seed`` the cell's seed), a field older records lack at its default;
    a field tuning chose per fold reads ``tuned`` and its chosen values' median is ``tuned.trainer.<field>``.
    """
    from bench.core.schemas import TrainConfig

    units = [unit_hparams(r) for _, r in rows.iterrows()]
    ran = [h for h in units if h.get("trainer")]
    tuned: dict[str, list] = {}
    for h in ran:
        for k, v in tuned_per_fold(h).items():
            tuned.setdefault(k, []).append(v)
    trainer = dict(ran[0]["trainer"]) if ran else {}
    out = {f.name: trainer.get(f.name, None if f.default is MISSING else f.default) for f in fields(TrainConfig)}
    out.update({k: v for k, v in trainer.items() if k not in out})  # a key this version does not know
    out["seed"] = int(rows["seed"].iloc[0])
    for k in tuned:
        if k.startswith("trainer.") and k.removeprefix("trainer.") in out:
            out[k.removeprefix("trainer.")] = TUNED
    return ({f"trainer.{k}": v for k, v in out.items()},
            {f"tuned.{k}": summarize(v) for k, v in sorted(tuned.items())})


def display_scores(scores: dict) -> dict[str, float]:
    """The rounded display copies of the pooled scores (``DISPLAY_METRICS``)."""
    return {name: round(float(scores[m]), DISPLAY_DIGITS) for m, name in DISPLAY_METRICS if m in scores}
