"""Assemble the report: compute tables and figures, write Markdown, PDF, PNG, CSV and LaTeX."""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import figures as F
from . import markdown as md
from . import pdf as pdfmod
from . import stats
from .document import Block, Bullets, Code, Figure, Heading, Para, Table
from .load import ReportInputError, RunData, load_run, representation_params
from .tables import (
    ReportOptions, baseline_label, breakdown_table, failed_folds, headline_frame,
    headline_table, ordered, significance_frame, significance_table, write_table,
)

log = logging.getLogger(__name__)


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(s)).strip("_") or "x"


def _value(v) -> str:
    """A run-fact value in words; never 'nan'/'None'."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "not recorded"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v) if v else "none"
    if isinstance(v, dict):
        if not v:
            return "none"
        return "; ".join(f"{k} ({_value(x).replace('; ', ', ')})" if isinstance(x, dict) else f"{k}={_value(x)}"
                         for k, x in v.items())
    s = str(v)
    return "not recorded" if s.strip().lower() in ("", "nan", "null") or s.strip() == "None" else s


def _duration(sec) -> str:
    try:
        sec = float(sec)
    except (TypeError, ValueError):
        return "not recorded"
    if not math.isfinite(sec):
        return "not recorded"
    h, rem = divmod(int(round(sec)), 3600)
    m, s = divmod(rem, 60)
    return (f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s" if m else f"{sec:.1f} s")


@dataclass
class Sweep:
    name: str  # representation registry name
    key: str  # the swept numeric parameter
    x: dict[str, float]  # representation label -> parameter value
    tags: dict[str, str]  # label -> the other parameters that vary independently (one line each)
    tied: list[str]  # parameters that change together with ``key`` (e.g. theta2 = 1 - theta1)


def _is_function(pairs: list[tuple]) -> bool:
    seen: dict = {}
    return all(seen.setdefault(a, b) == b for a, b in pairs)


def find_sweeps(params: dict[str, tuple[str, dict]], labels: list[str]) -> list[Sweep]:
    """Numeric parameters that take >= 2 values across cells of one representation.

    A parameter that is a function of the swept one (theta2 = 1 - theta1) does not split lines, and
    of two parameters that determine each other only the first (alphabetically) gets a figure.
    """
    by_name: dict[str, list[str]] = {}
    for lab in labels:
        by_name.setdefault(params.get(lab, (lab, {}))[0], []).append(lab)
    out = []
    for name, labs in by_name.items():
        if len(labs) < 2:
            continue
        plist = {lab: params[lab][1] for lab in labs}
        keys = sorted({k for p in plist.values() for k in p})
        done: list[str] = []
        for key in keys:
            num = {lab: float(v) for lab in labs if isinstance(v := plist[lab].get(key), (int, float))
                   and not isinstance(v, bool) and math.isfinite(float(v))}
            if len(set(num.values())) < 2:
                continue
            varying = [k for k in keys if k != key and len({repr(plist[lab].get(k)) for lab in num}) > 1]
            tied = [k for k in varying if _is_function([(num[lab], repr(plist[lab].get(k))) for lab in num])]
            if any(k in done and _is_function([(repr(plist[lab].get(k)), num[lab]) for lab in num]) for k in tied):
                continue  # the mirror image of a sweep already drawn
            free = [k for k in varying if k not in tied]
            tags = {lab: ", ".join(f"{k}={plist[lab].get(k)}" for k in free) for lab in num}
            out.append(Sweep(name, key, num, tags, tied))
            done.append(key)
    return out


def _total(counts: dict) -> str:
    try:
        return str(sum(int(v) for v in counts.values()))
    except (TypeError, ValueError):
        return "an unrecorded number of"


def _cost_cell(col: str, v) -> str:
    if pd.isna(v):
        return "not recorded"
    return f"{v:.1f}" if col == "epochs_run" else _duration(v)


class _Report:
    def __init__(self, run: RunData, out: Path, opts: ReportOptions):
        self.run, self.out, self.opts = run, out, opts
        self.blocks: list[Block] = []
        self.written: list[Path] = []
        self.fig_dir, self.tab_dir = out / "figures", out / "tables"
        preds = run.predictions
        self.datasets = ordered(preds["dataset"])
        self.multi = len(self.datasets) > 1
        reps_all = ordered(preds["representation"])
        self.base, _ = baseline_label(reps_all, opts.baseline)
        self.reps = ordered(reps_all, self.base)
        self.models = ordered(preds["model"])

    # -- helpers
    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    def stem(self, name: str, ds: str) -> str:
        return f"{name}_{slug(ds)}" if self.multi else name

    def ds_suffix(self, ds: str) -> str:
        return f" — {ds}" if self.multi else ""

    def figure(self, fn, name: str, caption: str, *args, **kw) -> bool:
        """Draw one figure; on ``Skipped`` put the reason in the report instead."""
        path = self.fig_dir / f"{name}.png"
        try:
            fn(*args, path=path, dpi=self.opts.dpi, **kw)
        except F.Skipped as e:
            self.add(Para(f"*No {name.replace('_', ' ')} figure: {e}.*"))
            return False
        self.written.append(path)
        self.add(Figure(path.relative_to(self.out), caption))
        return True

    # -- sections
    def intro(self) -> None:
        r = self.run
        self.add(Heading(f"Benchmark report: {r.study}", 1))
        self.add(Para(
            f"Generated by the dualflow-bench reporter (`python -m bench.report`) from `{r.run_dir}`. "
            "Every headline figure is computed "
            "from the predictions pooled over all leave-one-subject-out folds of a cell (MEGC2019 "
            "protocol): UF1 (unweighted F1), UAR (unweighted average recall) and accuracy, with "
            "`bench.metrics`. Per-fold figures are not averaged anywhere in this report."))
        if r.notes:
            self.add(Para("Notes from reading the run directory:"), Bullets(list(r.notes)))

    def facts(self) -> None:
        r, f = self.run, self.run.facts
        preds = r.predictions
        self.add(Heading("Run facts"))
        items = [f"Study: `{r.study}`"]
        ds_text = ", ".join(self.datasets)
        src = ordered(preds["source_dataset"])
        if src != self.datasets:
            ds_text += f" (composite of {', '.join(src)})"
        items.append(f"Dataset: {ds_text}" + (f" — {_value(f['dataset'])}" if "dataset" in f else ""))
        counts = f.get("class_counts")
        if not counts:  # every sample is tested exactly once per (cell, seed) under LOSO
            first = preds.groupby(["dataset", "representation", "model", "seed"], sort=False).ngroup() == 0
            vc = preds.loc[first, "y_true"].value_counts()
            counts = {c: int(vc.get(i, 0)) for i, c in enumerate(r.classes)}
            origin = " (counted from the test predictions of one cell)"
        else:
            origin = ""
        items.append(f"Classes ({r.n_classes}): " + ", ".join(f"{c} {_value(counts.get(c, 0))}" for c in r.classes)
                     + f"; {_total(counts)} samples{origin}")
        n_subj = f.get("n_subjects", preds["subject"].nunique())
        items.append(f"Subjects: {_value(n_subj)}")
        if isinstance(f.get("datasets"), dict):
            for name, d in f["datasets"].items():
                if isinstance(d, dict):
                    cc = d.get("class_counts") or {}
                    items.append(f"Dataset {name}: {_value(d.get('n_samples'))} samples, "
                                 f"{_value(d.get('n_subjects'))} subjects"
                                 + (f"; {', '.join(f'{k} {v}' for k, v in cc.items())}" if cc else "")
                                 + (f"; {len(d['problems'])} loader note(s)" if d.get("problems") else ""))
        items.append(f"Protocol: {_value(f.get('protocol', 'not recorded'))}")
        items.append(f"Tuning budget: {_value(f.get('tuning', 'not recorded'))}")
        if f.get("trainer"):
            items.append(f"Training: {_value(f['trainer'])}")
        flows = f" ({', '.join(r.flows)})" if r.flows else ""
        items.append(f"Optical flow{flows}: {_value(f.get('flow', 'not recorded'))}")
        seeds = f.get("seeds") or sorted(int(s) for s in preds["seed"].unique())
        items.append(f"Seeds: {_value(list(seeds))}")
        items.append(f"Cells: {len(self.reps)} representation(s) × {len(self.models)} model(s): "
                     f"representations {', '.join(self.reps)}; models {', '.join(self.models)}")
        items.append(f"Software versions: {_value(f.get('versions', 'not recorded'))}")
        commit = f.get("git_commit")
        if not commit and "git_commit" in r.results.columns and len(r.results):
            commit = r.results["git_commit"].iloc[0]
        items.append(f"Git commit: `{_value(commit)}`")
        span = f" (started {f['started']}, finished {f['finished']})" if f.get("started") and f.get("finished") else ""
        items.append(f"Wall time: {_duration(f.get('wall_seconds'))}{span}")
        if isinstance(f.get("timings"), dict) and f["timings"]:
            items.append("Time by stage: " + ", ".join(f"{k} {_duration(v)}" for k, v in f["timings"].items()))
        self.add(Bullets(items))
        ml = f.get("mlflow")
        if isinstance(ml, dict) and ml.get("tracking_uri"):
            uri = str(ml["tracking_uri"])
            exp = ml.get("experiment_id")
            name = ml.get("experiment_name", r.study)
            self.add(Para(f"MLflow: experiment `{_value(name)}`" + (f" (id {exp})" if exp is not None else "")
                          + f" in `{uri}`. Browse it with:"))
            link = f"http://127.0.0.1:5000/#/experiments/{exp}" if exp is not None else "http://127.0.0.1:5000"
            self.add(Code(f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1"),
                     Para(f"then open {link}"))
        else:
            self.add(Para("MLflow: run.json records no tracking store for this run."))

    def headline(self) -> dict[str, pd.DataFrame]:
        o = self.opts
        self.add(Heading("Headline results"))
        self.add(Para(
            f"Pooled scores per representation × model. Brackets: {o.ci_level:.0%} percentile bootstrap "
            f"confidence interval over subjects ({o.n_boot} replicates, seed {o.seed}): subjects are drawn "
            "with replacement, their predictions pooled and rescored, so the interval reflects which "
            "subjects happened to be in the dataset. "
            + ("With several seeds a cell shows mean ± standard deviation over seeds and the interval is for "
               "the seed mean (the same subject draw applied to every seed). "
               if self.run.predictions.groupby(["representation", "model"])["seed"].nunique().max() > 1
               else "Each cell ran with one seed, so no spread over seeds is shown. ")
            + "**Bold**: best value of the column."))
        heads = {}
        for ds in self.datasets:
            df, _ = headline_frame(self.run, o, self.run.predictions[self.run.predictions["dataset"] == ds])
            heads[ds] = df
            if self.multi:
                self.add(Heading(ds, 3))
            t = headline_table(df, caption=f"Pooled UF1, UAR and accuracy{self.ds_suffix(ds)}; "
                                            f"{int(df['n_subjects'].max())} subjects.")
            if df["failed_folds"].gt(0).any():
                t.caption += " †: some folds of this cell failed (see Failures); its pool is incomplete."
            self.add(t)
            self.written += write_table(t, df, self.tab_dir, self.stem("headline", ds))
            self.figure(F.bars_with_ci, self.stem("scores_bars", ds),
                        f"Pooled UF1 and UAR{self.ds_suffix(ds)} with {o.ci_level:.0%} subject-bootstrap CI whiskers.",
                        df, [r for r in self.reps if r in set(df["representation"])],
                        [m for m in self.models if m in set(df["model"])])
        return heads

    def breakdown(self) -> None:
        preds = self.run.predictions
        comp = [ds for ds in self.datasets if preds.loc[preds["dataset"] == ds, "source_dataset"].nunique() > 1]
        if not comp:
            return
        self.add(Heading("Per-dataset breakdown"))
        self.add(Para("As in MEGC2019, each source dataset of the composite is also scored on its own pool "
                      "of predictions (same models, trained on the composite; CIs resample that dataset's "
                      "subjects)."))
        for ds in comp:
            df, _ = headline_frame(self.run, self.opts, preds[preds["dataset"] == ds],
                                   by=("dataset", "source_dataset"))
            t = breakdown_table(df, f"UF1 and UAR per source dataset{self.ds_suffix(ds)}. Bold: best per dataset.")
            self.add(t)
            self.written += write_table(t, df, self.tab_dir, self.stem("per_dataset", ds))

    def significance(self) -> None:
        o = self.opts
        self.add(Heading("Significance against the baseline"))
        self.add(Para(
            f"Each representation is compared with the baseline `{o.baseline}` for the same model, paired "
            "by subject. Statistic: per-subject accuracy (mean over seeds) — with LOSO a subject contributes "
            "only a few samples, often not of every class, so per-subject UF1/UAR are degenerate while "
            "accuracy is defined for any number of samples. Test: two-sided Wilcoxon signed-rank test "
            "(scipy.stats.wilcoxon; zero differences discarded, the 'wilcox' convention). It assumes the "
            "subjects are independent and the paired differences are symmetric about their median; it does "
            "not assume normality. p-values are exact when the non-zero |differences| have no ties, exact "
            "by enumerating the sign flips when they tie, and from the normal approximation only for large "
            f"tied samples. Holm's step-down correction controls the family-wise error at {o.alpha:g} over "
            "all comparisons tested within a dataset. Effect sizes: the median per-subject difference "
            "(representation minus baseline) and the matched-pairs rank-biserial correlation r = (R+ − R−)"
            "/(R+ + R−) in [−1, 1]. A comparison with every difference zero, or fewer than "
            f"{o.min_pairs} subjects with a non-zero difference, is not tested and is reported as such"
            + (f" (with {o.min_pairs - 1} non-zero pairs the smallest possible exact two-sided p-value is "
               f"{2 / 2 ** (o.min_pairs - 1):.3g})" if o.min_pairs > 1 else "") + "."))
        df, notes = significance_frame(self.run, o)
        for ds in self.datasets:
            sub = df[df["dataset"] == ds] if len(df) else df
            if not len(sub):
                continue
            if self.multi:
                self.add(Heading(ds, 3))
            t = significance_table(sub, f"Representation vs {sub['baseline'].iloc[0]} (same model), paired "
                                        f"over subjects on per-subject accuracy{self.ds_suffix(ds)}. "
                                        "Differ: subjects with a non-zero difference.")
            self.add(t)
            self.written += write_table(t, sub, self.tab_dir, self.stem("significance", ds))
        if notes:
            self.add(Bullets(notes))
        if not len(df) and not notes:
            self.add(Para("No comparison: the study has a single representation."))

    def per_subject(self) -> None:
        self.add(Heading("Per-subject scores"))
        rows = []
        preds = self.run.predictions
        for (ds, rep, model), grp in preds.groupby(["dataset", "representation", "model"], sort=False):
            t = stats.per_subject_table(grp, self.run.n_classes)
            t.insert(0, "model", model)
            t.insert(0, "representation", rep)
            t.insert(0, "dataset", ds)
            rows.append(t)
        allp = pd.concat(rows, ignore_index=True)
        self.tab_dir.mkdir(parents=True, exist_ok=True)
        p = self.tab_dir / "per_subject.csv"
        allp.to_csv(p, index=False, float_format="%.6g")
        self.written.append(p)
        for ds in self.datasets:
            d = allp[allp["dataset"] == ds]
            self.figure(F.per_subject_plot, self.stem("per_subject_acc", ds),
                        f"Per-subject accuracy (mean over seeds){self.ds_suffix(ds)}: one dot per subject; "
                        "these are the pairs the significance test compares.",
                        d, [r for r in self.reps if r in set(d["representation"])],
                        [m for m in self.models if m in set(d["model"])], "acc")

    def confusions(self) -> None:
        self.add(Heading("Confusion matrices"))
        self.add(Para("Pooled over folds and summed over seeds; each row normalised by its true-class count "
                      "(the diagonal is the per-class recall). Classes: " + ", ".join(self.run.classes) + "."))
        for ds in self.datasets:
            d = self.run.predictions[self.run.predictions["dataset"] == ds]
            cms = {}
            for (rep, model), grp in d.groupby(["representation", "model"], sort=False):
                from bench import metrics  # local: keeps module import light for the CLI --help
                cms[(rep, model)] = metrics.confusion_matrix(grp["y_true"].to_numpy(), grp["y_pred"].to_numpy(),
                                                             self.run.n_classes)
            reps = [r for r in self.reps if r in set(d["representation"])]
            # Keep each figure within a page: at most 4 representation rows per figure.
            for part, i in enumerate(range(0, len(reps), 4)):
                chunk = reps[i:i + 4]
                name = self.stem("confusion", ds) + (f"_{part + 1}" if len(reps) > 4 else "")
                self.figure(F.confusion_grid, name,
                            f"Row-normalised confusion matrices{self.ds_suffix(ds)}"
                            + (f", part {part + 1}" if len(reps) > 4 else "") + ".",
                            {k: v for k, v in cms.items() if k[0] in chunk}, chunk, self.models, self.run.classes)

    def sweeps(self, heads: dict[str, pd.DataFrame]) -> None:
        params = representation_params(self.run)
        made = False
        self.add(Heading("Parameter sweeps"))
        for ds in self.datasets:
            head = heads[ds]
            labels = [r for r in self.reps if r in set(head["representation"])]
            for sw in find_sweeps(params, labels):
                rows = []
                for lab, x in sw.x.items():
                    for _, r in head[head["representation"] == lab].iterrows():
                        tag = sw.tags[lab]
                        rows.append({**r.to_dict(), "x": x, "line": r["model"] + (f" ({tag})" if tag else "")})
                sdf = pd.DataFrame(rows)
                base = head[head["representation"] == self.base] if self.base else None
                pretty = sw.key.replace("theta", "θ")
                kind = "θ sweep" if "theta" in sw.key.lower() else "Parameter sweep"
                tied = (f" ({', '.join(k.replace('theta', 'θ') for k in sw.tied)} set with it)" if sw.tied else "")
                made |= self.figure(
                    F.sweep_plot, self.stem(f"sweep_{slug(sw.name)}_{slug(sw.key)}", ds),
                    f"{kind} of {sw.name} over {pretty}{tied}{self.ds_suffix(ds)}: pooled UF1 and UAR per model, "
                    f"band = {self.opts.ci_level:.0%} subject-bootstrap CI"
                    + (f"; dashed: the baseline {self.base} with the same model"
                       if base is not None and len(base) else "")
                    + ".", sdf, sw.key, ordered(sdf["line"]), baseline=base)
        if not made:
            self.add(Para("No sweep figure: no two cells use the same representation with different values of "
                          "a numeric parameter (e.g. `cof[theta1=0.3]` and `cof[theta1=0.5]`)."))

    def explanations(self) -> None:
        aux = self.run.aux
        self.add(Heading("FMANet explanations"))
        if not aux:
            self.add(Para("No figure: the run directory has no aux.npz (no model in this study records "
                          "fusion weights or attention maps)."))
            return
        src = self.run.run_dir / "aux.npz"
        fusion: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        att: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        order: dict[str, tuple] = {}
        for key in sorted(aux):
            cell, _, what = key.rpartition("/")
            if what not in ("fusion_weights", "attention"):
                continue
            arr = np.asarray(aux[key], dtype=float)
            y = self._aux_labels(src, key, cell, arr)
            if what == "fusion_weights" and arr.ndim != 2:
                raise ReportInputError(f"{src}: {key} must be N x phases, got shape {arr.shape}")
            if what == "attention" and arr.ndim != 3:
                raise ReportInputError(f"{src}: {key} must be N x h x w, got shape {arr.shape}")
            parts = cell.split("|")  # dataset|[flow|]representation|model|seed
            if len(parts) in (4, 5):
                rep, model = parts[-3], parts[-2]
                setting = " · ".join(parts[:-3]) if len(self.run.flows) > 1 else parts[0]
                name = f"{rep} × {model}" + (f" ({setting})" if self.multi else "")
                order[name] = (self.reps.index(rep) if rep in self.reps else len(self.reps),
                               self.models.index(model) if model in self.models else len(self.models), name)
            else:
                name = cell
                order[name] = (len(self.reps), len(self.models), name)
            target = fusion if what == "fusion_weights" else att
            prev = target.get(name)
            if prev is not None and prev[0].shape[1:] == arr.shape[1:]:  # the seeds of one cell pooled
                target[name] = (np.concatenate([prev[0], arr]), np.concatenate([prev[1], y]))
            else:
                target[name] = (arr, y)
        fusion = {k: fusion[k] for k in sorted(fusion, key=order.__getitem__)}
        att = {k: att[k] for k in sorted(att, key=order.__getitem__)}
        self.figure(F.fusion_weights_plot, "fusion_weights",
                    "Learned fusion weights of the two phases, mean ± std over test samples of each true class "
                    "(all folds and seeds).", fusion, self.run.classes)
        self.figure(F.attention_plot, "attention_maps",
                    "Mean spatial-attention maps over the test samples (all folds and seeds), overall and per true "
                    "class; one colour scale per row.", att, self.run.classes)

    def _aux_labels(self, src: Path, key: str, cell: str, arr: np.ndarray) -> np.ndarray:
        """The true labels belonging to ``aux[key]``, validated against it."""
        y_key = f"{cell}/y_true"
        if y_key not in self.run.aux:
            raise ReportInputError(f"{src}: {key} has no matching {y_key}")
        y = np.asarray(self.run.aux[y_key]).astype(int).ravel()
        if arr.shape[0] != len(y):
            raise ReportInputError(f"{src}: {key} has {arr.shape[0]} rows but {y_key} has {len(y)}")
        bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
        if bad.any():
            raise ReportInputError(f"{src}: {key} has non-finite values (first at sample {int(np.flatnonzero(bad)[0])})")
        if ((y < 0) | (y >= self.run.n_classes)).any():
            raise ReportInputError(f"{src}: {y_key} has labels outside [0, {self.run.n_classes})")
        return y

    def examples(self) -> None:
        self.add(Heading("Representation examples"))
        ex = self.run.examples
        arrays = {}
        for key in ex:
            if key.endswith("__channels"):
                continue
            a = np.asarray(ex[key], dtype=float)
            if a.ndim == 2:
                a = a[None]
            if a.ndim != 3:
                raise ReportInputError(f"{self.run.run_dir / 'examples.npz'}: {key} must be C x H x W, got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise ReportInputError(f"{self.run.run_dir / 'examples.npz'}: {key} contains non-finite values")
            chans = [str(c) for c in ex.get(f"{key}__channels", [])] or [f"channel {i}" for i in range(a.shape[0])]
            if len(chans) != a.shape[0]:
                raise ReportInputError(f"{self.run.run_dir / 'examples.npz'}: {key}__channels names "
                                       f"{len(chans)} channels for {a.shape[0]}")
            arrays[key] = (a, chans)
        order = [r for r in self.reps if r in arrays] + [r for r in arrays if r not in self.reps]
        self.figure(F.examples_plot, "representation_examples",
                    "Each representation computed from one synthetic sample (generated data, no face image); "
                    "signed channels on a blue-red scale centred at zero.", {r: arrays[r] for r in order})

    def costs(self) -> None:
        res = self.run.results
        ok = res[res["status"] == "ok"] if len(res) else res
        cols = [c for c in ("epochs_run", "train_seconds", "predict_seconds", "tune_seconds") if c in ok.columns]
        if not len(ok) or not cols:
            return
        self.add(Heading("Cost"))
        ok = ok.assign(**{c: pd.to_numeric(ok[c], errors="coerce") for c in cols})
        g = ok.groupby(["dataset", "representation", "model"], sort=False)
        df = g.size().rename("folds").to_frame()
        for c in cols:  # min_count=1: an all-missing column stays missing instead of summing to 0
            df[c] = g[c].mean() if c == "epochs_run" else g[c].sum(min_count=1)
        df = df.reset_index()
        names = {"epochs_run": "Mean epochs", "train_seconds": "Train", "predict_seconds": "Predict",
                 "tune_seconds": "Tuning"}
        rows = []
        for _, r in df.iterrows():
            rows.append(([r["dataset"]] if self.multi else []) + [r["representation"], r["model"], str(r["folds"])]
                        + [_cost_cell(c, r[c]) for c in cols])
        lead = (["Dataset"] if self.multi else []) + ["Representation", "Model", "Folds × seeds"]
        t = Table(lead + [names[c] for c in cols], rows,
                  "Compute per cell, summed over folds and seeds (epochs: mean per fold).",
                  align=["l"] * (len(lead) - 1) + ["r"] * (1 + len(cols)))
        self.add(t)
        self.written += write_table(t, df, self.tab_dir, "cost")

    def failures(self) -> None:
        bad = failed_folds(self.run)
        if not len(bad):
            return
        self.add(Heading("Failures"))
        self.add(Para(f"{len(bad)} fold(s) failed; their test samples are missing from the pools of the cells "
                      "marked † above."))
        rows = [[r["dataset"], r["representation"], r["model"], str(r["seed"]), r["fold"],
                 _value(r.get("error", ""))[:160]] for _, r in bad.iterrows()]
        t = Table(["Dataset", "Representation", "Model", "Seed", "Fold", "Error"], rows, "Failed folds.")
        self.add(t)
        self.written += write_table(t, bad, self.tab_dir, "failures")

    def reproduce(self) -> None:
        self.add(Heading("Reproducing this report"))
        o = self.opts
        cmd = f"python -m bench.report {self.run.run_dir} --out {self.out}"
        defaults = ReportOptions()
        for k, flag in (("baseline", "--baseline"), ("n_boot", "--n-boot"), ("seed", "--seed"),
                        ("ci_level", "--ci"), ("min_pairs", "--min-pairs"), ("alpha", "--alpha")):
            if getattr(o, k) != getattr(defaults, k):
                cmd += f" {flag} {getattr(o, k)}"
        self.add(Code(cmd))


def make_report(run_dir: str | Path, out_dir: str | Path | None = None,
                options: ReportOptions | dict | None = None) -> Path:
    """Write ``report.md``, ``report.pdf``, ``figures/*.png`` and ``tables/*.{csv,tex}``.

    ``out_dir`` defaults to ``reports/<study>`` (relative to the working directory). ``options`` is a
    ``ReportOptions`` or a mapping of its fields (the ``report`` config group). Returns the report
    directory.
    """
    t0 = time.perf_counter()
    opts = options if isinstance(options, ReportOptions) else ReportOptions.from_mapping(options)
    run = load_run(run_dir)
    if not len(run.predictions):
        raise ReportInputError(f"{run.run_dir}: predictions table has no rows; nothing to report")
    out = Path(out_dir) if out_dir is not None else Path("reports") / run.study
    out.mkdir(parents=True, exist_ok=True)
    rep = _Report(run, out, opts)
    rep.intro()
    rep.facts()
    heads = rep.headline()
    rep.breakdown()
    rep.significance()
    rep.per_subject()
    rep.confusions()
    rep.sweeps(heads)
    rep.explanations()
    rep.examples()
    rep.costs()
    rep.failures()
    rep.reproduce()

    (out / "report.md").write_text(md.render(rep.blocks))
    rep.written.append(out / "report.md")
    if opts.pdf:
        f = run.facts
        subtitle = [f"Study: {run.study}", f"Dataset: {', '.join(rep.datasets)}",
                    f"Representations: {', '.join(rep.reps)}", f"Models: {', '.join(rep.models)}",
                    f"Git commit: {_value(f.get('git_commit'))}",
                    f"Run finished: {_value(f.get('finished'))}"]
        n = pdfmod.render(rep.blocks, out / "report.pdf", out, title=f"Benchmark report: {run.study}",
                          subtitle=subtitle, footer=f"dualflow-bench · {run.study}", dpi=opts.dpi)
        rep.written.append(out / "report.pdf")
        log.info("report.pdf: %d pages", n)
    _remove_stale(out, rep.written)
    log.info("report for %s written to %s in %.1f s", run.study, out, time.perf_counter() - t0)
    return out


def _remove_stale(out: Path, written: list[Path]) -> None:
    """Delete figures/tables a previous report wrote that this one did not (they would mislead)."""
    keep = {p.resolve() for p in written}
    for sub, exts in (("figures", (".png",)), ("tables", (".csv", ".tex"))):
        d = out / sub
        if d.is_dir():
            for p in d.iterdir():
                if p.suffix in exts and p.resolve() not in keep:
                    p.unlink()
