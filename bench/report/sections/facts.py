"""Run facts: data, protocol, training, flow, seeds, cells, versions, timing, MLflow."""

from __future__ import annotations

from ..context import ReportContext
from ..document import Block, Bullets, Code, Heading, Para
from ..load import ordered
from ..words import duration, value


def _total(counts: dict) -> str:
    try:
        return str(sum(int(v) for v in counts.values()))
    except (TypeError, ValueError):
        return "an unrecorded number of"


def _class_counts(ctx: ReportContext) -> tuple[dict, str]:
    r = ctx.run
    counts = r.facts.get("class_counts")
    if counts:
        return counts, ""
    # Every sample is tested exactly once per (cell, seed) under LOSO: count one cell's test pool.
    preds = r.predictions
    axes = [c for c in ("dataset", "flow", "representation", "model", "seed") if c in preds.columns]
    first = preds.groupby(axes, sort=False).ngroup() == 0
    vc = preds.loc[first, "y_true"].value_counts()
    counts = {c: int(vc.get(i, 0)) for i, c in enumerate(r.classes)}
    return counts, " (counted from the test predictions of one cell)"


def _hparams_part(results, part: str) -> dict[str, dict]:
    """Per model label (in table order), the ``part`` (``"trainer"`` or ``"model"``) of its first
    unit's ``hparams``; labels whose hparams are missing or unreadable are left out."""
    import json

    if results is None or not len(results) or not {"model", "hparams"} <= set(results.columns):
        return {}
    out = {}
    for model in ordered(results["model"]):
        try:
            node = json.loads(results.loc[results["model"] == model, "hparams"].iloc[0]).get(part) or {}
        except (TypeError, ValueError, AttributeError):
            continue
        if isinstance(node, dict):
            out[model] = node
    return out


def _model_recipes(results, base: dict) -> list[str]:
    """Per model, the trainer settings its units ran with that differ from the trainer group's
    (from the units' ``hparams``: a study's per-model overrides, e.g. its epochs and schedule)."""
    out = []
    for model, trainer in _hparams_part(results, "trainer").items():
        diff = {k: v for k, v in trainer.items() if k not in ("seed", "augment") and base.get(k) != v}
        if diff:
            out.append(f"{model}: " + ", ".join(f"{k}={value(v)}" for k, v in diff.items()))
    return out


def _model_networks(results) -> list[str]:
    """Per model label, the network its units built: the model node's name and settings (from the
    units' ``hparams``), so a label such as ``timm_resnet10t_half`` is spelled out in the report."""
    out = []
    for model, node in _hparams_part(results, "model").items():
        if node.get("name"):
            # lists keep their brackets: the settings themselves are comma-separated
            rest = ", ".join(f"{k}={list(v) if isinstance(v, (list, tuple)) else value(v)}"
                             for k, v in node.items() if k != "name")
            out.append(f"{model}: `{node['name']}`" + (f" ({rest})" if rest else ""))
    return out


def _mlflow(ctx: ReportContext) -> list[Block]:
    ml = ctx.run.facts.get("mlflow")
    if not (isinstance(ml, dict) and ml.get("tracking_uri")):
        return [Para("MLflow: run.json records no tracking store for this run.")]
    from bench.tracking.mlflow_store import ui_command, ui_link

    uri = str(ml["tracking_uri"])
    exp = ml.get("experiment_id")
    name = ml.get("experiment_name", ctx.run.study)
    # The runs table (MLflow 3 would otherwise open the GenAI overview); the stored view's link when
    # this version logged the run (run.json has it), else the plain runs table.
    link = ml.get("ui_link") or ui_link(exp, uri, view=False)
    cmd = ui_command(uri)
    head = Para(f"MLflow: experiment `{value(name)}`" + (f" (id {exp})" if exp is not None else "")
                + f" in `{uri}`. Browse it " + ("with:" if cmd else f"at {link}"))
    return [head, Code(cmd), Para(f"then open {link}")] if cmd else [head]


def build(ctx: ReportContext) -> list[Block]:
    r, f = ctx.run, ctx.run.facts
    preds = r.predictions
    items = [f"Study: `{r.study}`"]
    ds_text = ", ".join(ctx.datasets)
    src = ordered(preds["source_dataset"])
    if src != ctx.datasets:
        ds_text += f" (composite of {', '.join(src)})"
    items.append(f"Dataset: {ds_text}" + (f" — {value(f['dataset'])}" if "dataset" in f else ""))
    counts, origin = _class_counts(ctx)
    items.append(f"Classes ({r.n_classes}): " + ", ".join(f"{c} {value(counts.get(c, 0))}" for c in r.classes)
                 + f"; {_total(counts)} samples{origin}")
    items.append(f"Subjects: {value(f.get('n_subjects', preds['subject'].nunique()))}")
    if isinstance(f.get("datasets"), dict):
        for name, d in f["datasets"].items():
            if isinstance(d, dict):
                cc = d.get("class_counts") or {}
                items.append(f"Dataset {name}: {value(d.get('n_samples'))} samples, "
                             f"{value(d.get('n_subjects'))} subjects"
                             + (f"; {', '.join(f'{k} {v}' for k, v in cc.items())}" if cc else "")
                             + (f"; {len(d['problems'])} loader note(s)" if d.get("problems") else ""))
    items.append(f"Protocol: {value(f.get('protocol', 'not recorded'))}")
    items.append(f"Tuning budget: {value(f.get('tuning', 'not recorded'))}")
    if f.get("trainer"):
        items.append(f"Training: {value(f['trainer'])}")
        recipes = _model_recipes(r.results, f["trainer"])
        if recipes:
            items.append("Training per model, where it differs: " + "; ".join(recipes))
    networks = _model_networks(r.results)
    if networks:
        items.append("Networks: " + "; ".join(networks))
    flows = f" ({', '.join(r.flows)})" if r.flows else ""
    items.append(f"Optical flow{flows}: {value(f.get('flow', 'not recorded'))}")
    seeds = f.get("seeds") or sorted(int(s) for s in preds["seed"].unique())
    items.append(f"Seeds: {value(list(seeds))}")
    items.append(f"Cells: {len(ctx.reps)} representation(s) × {len(ctx.models)} model(s): "
                 f"representations {', '.join(ctx.reps)}; models {', '.join(ctx.models)}")
    items.append(f"Software versions: {value(f.get('versions', 'not recorded'))}")
    commit = f.get("git_commit")
    if not commit and "git_commit" in r.results.columns and len(r.results):
        commit = r.results["git_commit"].iloc[0]
    items.append(f"Git commit: `{value(commit)}`")
    span = f" (started {f['started']}, finished {f['finished']})" if f.get("started") and f.get("finished") else ""
    items.append(f"Wall time: {duration(f.get('wall_seconds'))}{span}")
    if isinstance(f.get("timings"), dict) and f["timings"]:
        items.append("Time by stage: " + ", ".join(f"{k} {duration(v)}" for k, v in f["timings"].items()))
    return [Heading("Run facts"), Bullets(items), *_mlflow(ctx)]
