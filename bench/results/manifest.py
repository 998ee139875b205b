"""The run manifest: the data and preprocessing choices that change results silently.

Papers rarely state them, and two runs that differ in one of them are not comparable: the class set
and the sample count per source database, where the labels come from, how the apex was chosen
(annotated / middle frame / peak flow / not given because the flows were precomputed), the face
alignment or crop, the flow backend (or ``precomputed`` with the files' normalisation) and every
representation's parameters (with, for precomputed flows, how exact it is on those files).

``write_manifest(run_dir, plan, prepared)`` writes ``<run_dir>/manifest.json`` at the end of every
run (``bench.run``); ``load_manifest(run_dir)`` reads it back (None when absent or unreadable);
``manifest_items(manifest)`` gives the ``(label, value)`` pairs the report (``bench.report.sections.
manifest``), the PDF title page and MLflow tags show.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from bench.data import dataset_is_synthetic

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
VERSION = 1

_APEX_WORDS = {
    "annotated": "annotated", "middle": "middle frame", "peak_flow": "peak flow",
    "fallback:missing_apex": "middle frame (apex not annotated)",
    "fallback:apex_outside_range": "middle frame (annotated apex outside onset..offset)",
    "fallback:apex_equals_onset": "middle frame (annotated apex = onset)",
}


def _apex_rule(table) -> str:
    rule = table.meta.get("apex_rule")
    if rule:
        return str(rule)
    counts = Counter(table.df["apex_source"].astype(str)) if "apex_source" in table.df.columns else Counter()
    if not counts:
        return "unknown"
    parts = [f"{_APEX_WORDS.get(k, k)}: {n}" for k, n in counts.most_common()]
    return parts[0].rsplit(":", 1)[0] if len(parts) == 1 else "; ".join(parts)


def _label_source(table) -> str:
    src = Path(str(table.source)).name if table.source else table.name
    cs = table.meta.get("class_set", "")
    if dataset_is_synthetic(table.name):
        return "generated: each clip's motion class (synthetic data)"
    if cs == "given":
        return f"{src}: class indices 0..{len(table.classes) - 1} named {', '.join(table.classes)}"
    return f"{src}: emotions mapped by class set {cs!r}" if cs else src


def _per_source(table) -> dict[str, dict]:
    df = table.df
    out = {}
    from bench.protocols.folds import MEGC2019_DATASETS

    order = {s: i for i, s in enumerate(MEGC2019_DATASETS)}  # the order MEGC2019 tables use
    for src, g in sorted(df.groupby(df["dataset"].astype(str)), key=lambda kv: (order.get(kv[0], len(order)), kv[0])):
        counts = g["label"].value_counts()
        out[src] = {"n_samples": int(len(g)), "n_subjects": int(g["subject"].nunique()),
                    "class_counts": {c: int(counts.get(i, 0)) for i, c in enumerate(table.classes)}}
    return out


def _crop_and_flow(table, flow_params: dict) -> tuple[str, dict]:
    if flow_params.get("backend") == "precomputed" or table.meta.get("flow_source") == "precomputed":
        ff = dict(table.meta.get("flow_file") or flow_params.get("flow_file") or {})
        release = table.meta.get("release") or ""
        flow = {"backend": "precomputed", "release": release, "formats": table.meta.get("flow_formats", []),
                "channels": ff.get("channels"), "normalisation": ff.get("normalisation"),
                "size": flow_params.get("size"), "phase2": bool(table.meta.get("has_phase2", True))}
        if ff.get("normalisation") == "fixed":
            flow["scale"], flow["offset"] = ff.get("scale"), ff.get("offset")
        return "none by the suite: flows precomputed" + (f" by the {release}" if release else "") + \
            " (its own face alignment and crop apply)", flow
    crop = dict(flow_params.get("crop") or {})
    method = crop.get("effective_method") or crop.get("method", "?")
    if method == "none":
        crop_text = "none (frames resized only" + (": pre-cropped data)" if table.meta.get("precropped") else ")")
    elif method == "haar":
        crop_text = f"OpenCV Haar face box on the onset frame, margin {crop.get('margin')}, applied to all key frames"
    else:
        crop_text = f"{method} crop, margin {crop.get('margin')}"
    crop_text += "; no face alignment"
    flow = {"backend": flow_params.get("backend"), "params": flow_params.get("backend_params", {}),
            "size": flow_params.get("size")}
    return crop_text, flow


def build_manifest(plan, prepared) -> dict:
    """The manifest of a planned and prepared study (see the module docstring)."""
    datasets: dict[str, dict] = {}
    reps: dict[str, dict] = {}
    for cell in plan.cells:
        _, table = prepared.table(cell)
        label = cell.dataset.name
        if label not in datasets:
            _, fs = prepared.flowset(cell)
            crop, flow = _crop_and_flow(table, dict(fs.params))
            datasets[label] = {
                "table": table.name, "source": str(table.source), "classes": list(table.classes),
                "class_set": table.meta.get("class_set", ""), "n_samples": int(len(table)),
                "n_subjects": int(table.df["subject"].nunique()), "per_source": _per_source(table),
                "label_source": _label_source(table), "apex_rule": _apex_rule(table), "face_crop": crop,
                "flow_label": cell.flow.name, "flow": flow,
            }
        rep = reps.setdefault(cell.representation.name, {"params": dict(cell.cfg["representation"]),
                                                          "exactness": {}})
        note = (table.meta.get("exactness") or {}).get(str(cell.cfg["representation"].get("name")))
        if note:
            rep["exactness"][label] = note
    return {
        "version": VERSION, "study": plan.study.get("name"),
        "protocol": dict(plan.cells[0].cfg["protocol"]) if plan.cells else {},
        "datasets": datasets, "representations": reps, "trainer": cell_recipes(plan.cells),
    }


_RECIPE = ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "scheduler", "early_stopping_patience")


def cell_recipes(cells) -> dict[str, dict]:
    """The recipe each model's cells ran: its ``_RECIPE`` values, the trainer file it started from
    (``recipe``: the model's own ``bench/conf/trainer/<model>.yaml``, a preset named on purpose, or
    ``default``) and who set each value (``sources``: model recipe / trainer preset / study / study item /
    command line / tuned; trainer default for the rest). Keyed by model; where one model's cells ran
    different recipes (a representation item's own overrides), by ``model | representation``."""
    per_model: dict[str, dict[str, dict]] = {}
    for cell in cells:
        tr, src = dict(cell.cfg["trainer"]), cell.recipe
        shown = [k for k in _RECIPE if k in tr] + [k for k, _ in src.sources if k not in _RECIPE]
        entry = {**{k: tr.get(k) for k in _RECIPE if k in tr}, "recipe": src.preset,
                 "sources": {k: src.source_of(k) for k in shown}}
        entry.update({k: tr.get(k) for k in shown if k not in _RECIPE and k in tr})
        per_model.setdefault(cell.model.name, {}).setdefault(cell.representation.name, entry)
    out: dict[str, dict] = {}
    for model, by_rep in per_model.items():
        distinct = {json.dumps(e, sort_keys=True, default=str) for e in by_rep.values()}
        if len(distinct) == 1:
            out[model] = next(iter(by_rep.values()))
        else:
            out.update({f"{model} | {rep}": e for rep, e in by_rep.items()})
    return out


def write_manifest(run_dir: str | Path, plan, prepared) -> Path:
    """Write ``<run_dir>/manifest.json`` (atomically); returns its path."""
    from bench.core.files import atomic_write_text

    path = Path(run_dir) / MANIFEST
    atomic_write_text(path, json.dumps(build_manifest(plan, prepared), indent=2, default=str))
    return path


def load_manifest(run_dir: str | Path) -> dict | None:
    """The run's manifest, or None when the run has none (older runs) or it cannot be read."""
    path = Path(run_dir) / MANIFEST
    try:
        m = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable run manifest (%s); not shown", path, e)
        return None
    return m if isinstance(m, dict) else None


def _counts(per_source: dict, classes: list[str]) -> str:
    parts = []
    for src, v in per_source.items():
        cc = "/".join(str(v["class_counts"].get(c, 0)) for c in classes)
        parts.append(f"{src} {v['n_samples']} ({cc}; {v['n_subjects']} subjects)")
    return ", ".join(parts)


def _flow_text(flow: dict) -> str:
    if flow.get("backend") == "precomputed":
        txt = f"precomputed ({', '.join(flow.get('formats') or []) or 'files'}"
        if flow.get("channels"):
            txt += f", channels {', '.join(flow['channels'])}"
        if flow.get("normalisation"):
            txt += f", {flow['normalisation']} normalisation"
            if flow["normalisation"] == "minmax":
                txt += " per image: sign and scale of u, v lost"
            elif flow["normalisation"] == "fixed":
                txt += f" (value = pixel x {flow.get('scale')} + {flow.get('offset')})"
        txt += "; apex->offset flow: " + ("given" if flow.get("phase2") else "not given") + ")"
        return txt
    params = flow.get("params") or {}
    shown = ", ".join(f"{k}={params[k]}" for k in list(params)[:6])
    return f"{flow.get('backend')} at {flow.get('size')} px" + (f" ({shown}, ...)" if shown else "")


def _recipe_text(tr: dict) -> str:
    sel = ("fixed budget, last epoch" if not tr.get("early_stopping_patience") else
           f"early stopping (patience {tr['early_stopping_patience']}) on training subjects")
    sched = tr.get("scheduler")
    return (f"{tr.get('optimizer')}, lr {tr.get('lr')}, batch {tr.get('batch_size')}, weight decay "
            f"{tr.get('weight_decay')}, {tr.get('epochs')} epochs"
            + (f", {sched} schedule" if sched and sched != "none" else "") + f", {sel}")


def _origin_text(tr: dict) -> str:
    """Where a recipe's values came from, grouped by source: ``model recipe (bench/conf/trainer/ststnet.yaml):
    epochs, lr, scheduler; command line: epochs=3``; empty for older manifests (no ``sources``)."""
    sources = tr.get("sources")
    if not isinstance(sources, dict):
        return ""
    by: dict[str, list[str]] = {}
    for key, src in sources.items():
        by.setdefault(str(src), []).append(f"{key}={tr[key]}" if key in tr else str(key))
    if not by or set(by) == {"trainer default"}:
        return f"the trainer defaults (trainer={tr.get('recipe', 'default')}); no value set by a model, study or command line"
    order = ("model recipe", "trainer preset", "study", "study item", "command line", "tuned")
    ranked = sorted((src for src in by if src != "trainer default"),
                    key=lambda src: max(i for i, o in enumerate(order) if src.startswith(o) or i == 0))
    parts = [f"{src}: {', '.join(by[src])}" for src in ranked]  # lowest precedence first
    rest = by.get("trainer default")
    return "; ".join(parts) + (f"; trainer default: {', '.join(rest)}" if rest else "")


def manifest_items(manifest: dict) -> list[tuple[str, str]]:
    """(label, value) display pairs of a manifest, in reading order; a dataset's items carry its
    name when the study has several."""
    items: list[tuple[str, str]] = []
    ds = manifest.get("datasets") or {}
    for name, d in ds.items():
        tag = f" [{name}]" if len(ds) > 1 else ""
        classes = list(d.get("classes") or [])
        items += [
            (f"Class set{tag}", f"{', '.join(classes)}" + (f" ({d['class_set']})" if d.get("class_set") else "")),
            (f"Samples per source database{tag}",
             f"{d.get('n_samples')} clips, {d.get('n_subjects')} subjects: {_counts(d.get('per_source') or {}, classes)}"
             + (f" (class counts {'/'.join(classes)})" if classes else "")),
            (f"Label source{tag}", str(d.get("label_source", ""))),
            (f"Apex rule{tag}", str(d.get("apex_rule", ""))),
            (f"Face alignment / crop{tag}", str(d.get("face_crop", ""))),
            (f"Flow{tag}", _flow_text(d.get("flow") or {})),
        ]
    for name, r in (manifest.get("representations") or {}).items():
        params = {k: v for k, v in (r.get("params") or {}).items() if k != "name"}
        txt = ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
        if "rescale" in params:  # the input scale is part of a recipe (STSTNet's code fed raw pixels)
            txt += ("; input scale: pixel / 255 (images)" if params["rescale"]
                    else "; input scale: the raw pixel values (0..255 for 8-bit images)")
        notes = {n for n in (r.get("exactness") or {}).values()}
        if notes:
            txt += "; on these files: " + " | ".join(sorted(notes))
        items.append((f"Representation {name}", txt))
    trainers = manifest.get("trainer") or {}
    recipes = {m: _recipe_text(tr) for m, tr in trainers.items()}
    origins = {m: _origin_text(tr) for m, tr in trainers.items()}
    if len(set(recipes.values())) == 1 and len(set(origins.values())) == 1:
        items.append(("Training recipe", next(iter(recipes.values()))))
        items += [("Recipe source", o) for o in list(origins.values())[:1] if o]
    else:
        items += [(f"Training recipe [{m}]", t) for m, t in recipes.items()]
        items += [(f"Recipe source [{m}]", o) for m, o in origins.items() if o]
    proto = manifest.get("protocol") or {}
    if proto:
        items.append(("Protocol", str(proto.get("name", ""))))
    return items
