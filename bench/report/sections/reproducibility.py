"""Reproducibility, the report's last section: the run manifest (once), the run facts, software versions,
MLflow and the command that remakes this report.

No absolute path of the machine that ran the study is printed: the run directory, the MLflow store and
the report folder are named relative to the working directory when they lie under it, else by their
last two parts (``runs_fresh/ablation_phases``) with the folder to run from said in words. A value the
run did not record is left out, never printed as "not recorded".
"""

from __future__ import annotations

from pathlib import Path

from ..context import ReportContext
from ..document import Block, Bullets, Code, Heading, Para, Table
from ..load import ordered, unit_hparams_lenient
from ..tables import ReportOptions
from ..words import duration, unset, value

TITLE = "Reproducibility"
FLAGS = (("baseline", "--baseline"), ("n_boot", "--n-boot"), ("seed", "--seed"), ("ci_level", "--ci"),
         ("min_pairs", "--min-pairs"), ("alpha", "--alpha"), ("rope", "--rope"), ("decide_at", "--decide-at"))


def build(ctx: ReportContext) -> list[Block]:
    return [Heading(TITLE), Para(
        "What the data, the preprocessing and the training were, with which software, and how to remake "
        "this report. Two runs are comparable only when their manifests agree."),
        *manifest_blocks(ctx), *facts_blocks(ctx), *mlflow_blocks(ctx), *command_blocks(ctx)]


# ---------------------------------------------------------------- paths without this machine's prefix


def shown_path(p: str | Path) -> tuple[str, str]:
    """(a path to print, where to run from): relative to the working directory when ``p`` lies under
    it (or is relative), else its last two parts with the folder that holds them named in words."""
    p = Path(p)
    if not p.is_absolute():
        return p.as_posix(), ""
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix() or ".", ""
    except (ValueError, OSError):
        tail = Path(*p.parts[-2:]) if len(p.parts) > 2 else Path(p.name)
        return tail.as_posix(), f"from the folder that holds `{tail.parts[0]}/`"


# ---------------------------------------------------------------- the manifest


def manifest_blocks(ctx: ReportContext) -> list[Block]:
    from bench.results.manifest import load_manifest, manifest_items

    m = load_manifest(ctx.run.run_dir)
    if m is None:
        return [Heading("Run manifest", 3), Para(
            "*This run directory has no `manifest.json` (written by runs of this version of the suite): "
            "class set, apex rule, crop and flow choices are not recorded; see the run facts below.*")]
    items = [(k, v) for k, v in manifest_items(m) if not k.startswith("Training recipe")]
    items += [(f"Training recipe [{ctx.model_name(model)}]", recipe(tr))
              for model, tr in (m.get("trainer") or {}).items() if isinstance(tr, dict)]
    return [Heading("Run manifest", 3), Para(
        "The choices that change results and papers rarely state (`manifest.json`)."),
        Table(["Item", "Value"], [[k, v] for k, v in items if not unset(v)], "Run manifest.", align=["l", "l"])]


def recipe(tr: dict) -> str:
    """A training recipe in words, its scheduler included (e.g. STSTNet's OneCycle)."""
    sel = ("fixed budget, last epoch" if not tr.get("early_stopping_patience") else
           f"early stopping (patience {tr['early_stopping_patience']}) on training subjects")
    sched = tr.get("scheduler")
    parts = [tr.get("optimizer"), f"lr {tr.get('lr')}" if tr.get("lr") is not None else None,
             f"{sched} schedule" if sched and sched != "none" else None,
             f"batch {tr.get('batch_size')}" if tr.get("batch_size") is not None else None,
             f"weight decay {tr.get('weight_decay')}" if tr.get("weight_decay") is not None else None,
             f"{tr.get('epochs')} epochs" if tr.get("epochs") is not None else None, sel]
    return ", ".join(str(p) for p in parts if p)


# ---------------------------------------------------------------- run facts


def facts_blocks(ctx: ReportContext) -> list[Block]:
    r, f = ctx.run, ctx.run.facts
    items = [f"Study: `{r.study}`", *data_items(ctx), *training_items(ctx)]
    for key, label in (("protocol", "Protocol"), ("tuning", "Tuning budget")):
        if not unset(f.get(key)):
            items.append(f"{label}: {value(f[key])}")
    if not unset(f.get("flow")):
        labels = f" ({', '.join(r.flows)})" if r.flows else ""
        items.append(f"Optical flow{labels}: {value(f['flow'])}")
    seeds = f.get("seeds") or sorted(int(s) for s in r.predictions["seed"].unique())
    items.append(f"Seeds: {value(list(seeds))}")
    items.append(f"Cells: {len(ctx.reps)} representation(s) × {len(ctx.models)} model(s)")
    items += run_items(ctx)
    return [Heading("Run facts", 3), Bullets(items)]


def data_items(ctx: ReportContext) -> list[str]:
    r, f = ctx.run, ctx.run.facts
    ds_text = ", ".join(ctx.datasets)
    src = ordered(r.predictions["source_dataset"])
    if src != ctx.datasets:
        ds_text += f" (composite of {', '.join(src)})"
    items = [f"Dataset: {ds_text}"]
    counts = f.get("class_counts")
    if isinstance(counts, dict) and counts:
        items.append(f"Classes ({r.n_classes}): " + ", ".join(f"{c} {counts.get(c, 0)}" for c in r.classes))
    else:
        items.append(f"Classes ({r.n_classes}): " + ", ".join(r.classes))
    items.append(f"Subjects: {f.get('n_subjects') or r.predictions['subject'].nunique()}")
    for name, d in (f.get("datasets") or {}).items() if isinstance(f.get("datasets"), dict) else ():
        if isinstance(d, dict) and not unset(d.get("n_samples")):
            items.append(f"Dataset {name}: {d['n_samples']} samples, {value(d.get('n_subjects'))} subjects"
                         + (f"; {len(d['problems'])} loader note(s)" if d.get("problems") else ""))
    return items


def _hparams(results, part: str) -> dict[str, dict]:
    """Per model label, the ``part`` (``"trainer"`` or ``"model"``) of its first unit's ``hparams``."""
    if results is None or not len(results) or not {"model", "hparams"} <= set(results.columns):
        return {}
    out = {}
    for model in ordered(results["model"]):
        node = unit_hparams_lenient(results.loc[results["model"] == model, "hparams"].iloc[0]).get(part)
        if isinstance(node, dict) and node:
            out[model] = node
    return out


def training_items(ctx: ReportContext) -> list[str]:
    """The recipe each model's cells actually ran (their units' ``hparams``), never the trainer group's
    defaults that a study overrode; the trainer group only when no unit recorded its own."""
    r, out = ctx.run, []
    recipes = _hparams(r.results, "trainer")
    for model, tr in recipes.items():
        out.append(f"Training [{ctx.model_name(model)}]: "
                   + value({k: v for k, v in tr.items() if k not in ("seed", "augment")}))
    if not recipes and isinstance(r.facts.get("trainer"), dict):
        out.append(f"Training (the trainer group; the units recorded no recipe of their own): "
                   f"{value(r.facts['trainer'])}")
    for model, node in _hparams(r.results, "model").items():
        if node.get("name"):
            rest = ", ".join(f"{k}={list(v) if isinstance(v, (list, tuple)) else value(v)}"
                             for k, v in node.items() if k != "name" and not unset(v))
            out.append(f"Network [{ctx.model_name(model)}]: `{node['name']}`" + (f" ({rest})" if rest else ""))
    return out


def run_items(ctx: ReportContext) -> list[str]:
    r, f, out = ctx.run, ctx.run.facts, []
    if not unset(f.get("versions")):
        out.append(f"Software versions: {value(f['versions'])}")
    commit = f.get("git_commit")
    if not commit and "git_commit" in r.results.columns and len(r.results):
        commit = r.results["git_commit"].iloc[0]
    if not unset(commit):
        out.append(f"Git commit: `{commit}`")
    if not unset(f.get("wall_seconds")):
        span = f" (started {f['started']}, finished {f['finished']})" if f.get("started") and f.get("finished") else ""
        out.append(f"Wall time: {duration(f['wall_seconds'])}{span}")
    if isinstance(f.get("timings"), dict) and f["timings"]:
        out.append("Time by stage: " + ", ".join(f"{k} {duration(v)}" for k, v in f["timings"].items()))
    return out


# ---------------------------------------------------------------- MLflow and the command


def mlflow_blocks(ctx: ReportContext) -> list[Block]:
    ml = ctx.run.facts.get("mlflow")
    if not (isinstance(ml, dict) and ml.get("tracking_uri")):
        return []
    from bench.tracking.mlflow_store import is_remote, ui_command, ui_link

    uri, exp = str(ml["tracking_uri"]), ml.get("experiment_id")
    name = ml.get("experiment_name", ctx.run.study)
    link = ml.get("ui_link") or ui_link(exp, uri, view=False)
    head = f"MLflow: experiment `{value(name)}`" + (f" (id {exp})" if exp is not None else "")
    if is_remote(uri):
        return [Heading("MLflow", 3), Para(f"{head} on the tracking server {uri}: open {link}")]
    local = local_store(uri, ctx.run.run_dir)
    if local is None:
        return [Heading("MLflow", 3), Para(f"{head} in the local store that run.json names (`mlflow.tracking_uri`); "
                                           f"serve it with `mlflow ui --backend-store-uri <that URI> --host 127.0.0.1`, then open {link}")]
    shown, where = local
    return [Heading("MLflow", 3), Para(f"{head}. Browse it{' ' + where if where else ''} with:"),
            Code(ui_command(shown)), Para(f"then open {link}")]


def local_store(uri: str, run_dir: Path) -> tuple[str, str] | None:
    """A local store's URI to print (relative, ``shown_path``) and where to run from; None when the
    store lies outside the run directory and the working directory (its path would be this machine's)."""
    scheme, sep, rest = uri.partition(":///")
    if not sep:
        return None
    path = Path(rest) if scheme == "sqlite" else Path("/" + rest.lstrip("/")) if scheme == "file" else None
    if path is None:
        return None
    if not path.is_absolute():
        return uri, ""
    try:
        rel = path.resolve().relative_to(Path(run_dir).resolve())
    except (ValueError, OSError):
        shown, where = shown_path(path)
        return (f"{scheme}:///{shown}", where) if not where else None
    run, where = shown_path(run_dir)
    return f"{scheme}:///{(Path(run) / rel).as_posix()}", where


def command_blocks(ctx: ReportContext) -> list[Block]:
    o, defaults = ctx.opts, ReportOptions()
    run, where = shown_path(ctx.run.run_dir)
    out, _ = shown_path(ctx.out)
    cmd = f"python -m bench.report {run} --out {out}"
    for k, flag in FLAGS:
        if getattr(o, k) != getattr(defaults, k):
            cmd += f" {flag} {getattr(o, k)}"
    return [Heading("Reproducing this report", 3)] + ([Para(f"Run {where}:")] if where else []) + [Code(cmd)]
