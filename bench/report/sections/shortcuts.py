"""What common shortcuts would have reported: the leakage audit (``bench.evaluation.audit``), per cell.

Only when the run had ``audit=true`` (``audit.parquet``). Every figure here is LEAKY and labelled
so: it is computed from the same trained models as the headline (per-epoch test predictions made
after training, and the honest predictions scored the wrong way), and it never enters the headline,
the significance tests or tuning. Per cell: honest UF1/UAR, each shortcut's value and its inflation
(+Δ, signed: a shortcut can also come out lower), mean ± sd over seeds when there are several.
Then the configuration shortcut (best of K configurations of one model family chosen on the test
folds, beside the honest pick on inner validation, and its inflation as a function of K;
``bench.evaluation.grid_audit``), and what each published protocol (``anchors/protocols.yaml``) would
have reported for each cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from pathlib import Path

import yaml

from bench.evaluation.audit import SHORTCUTS, AuditError, shortcut_scores, summarize
from bench.evaluation.grid_audit import config_choice, families, load_inner, protocol_scores

from .. import figures as F
from ..context import Facet, ReportContext
from ..document import Block, Bullets, Heading, Para, Table
from ..load import SETTING, ReportInputError, _setting_column

CELL = (SETTING, "representation", "model")
TITLE = "What common shortcuts would have reported"
# The published cases each shortcut stands for (docs/audit.md).
WHERE = {
    "subject_best_epoch": "Public code that does it: HTNet, CausalNet, CapsuleNet, MMNet; MEB measured it raising "
                          "STSTNet's composite UF1 from 0.713 to 0.774 and OFF-ApexNet's from 0.703 to 0.839",
    "overall_best_epoch": "One checkpoint kept on the test score, as when the validation subject is the test "
                          "subject (MER-CLIP)",
    "fold_mean": "MEB measured 0.666 averaged per fold vs 0.739 pooled for one model",
    "mean_precision": "The published STSTNet UAR: 0.7605 reported vs 0.7186 recomputed from its own log",
    "class_dropping": "CausalNet's recognition_evaluation (main_train.py): per class `confusion_matrix(...).ravel()` "
                      "unpacked into TN, FP, FN, TP inside `try/except: pass`, so a class with one value only in "
                      "the fold's binary truth and predictions is skipped",
    "class_dropping_one_class": "MER-CLIP's recognition_evaluation (mmaction/evaluation/metrics/acc_metric.py, "
                                "tools/cal_metric.py): the same try/except, and `UF1 = 1; UAR = 1` when the truth and "
                                "the predictions are one and the same single class",
}
PROTOCOLS = Path(__file__).resolve().parents[1] / "anchors" / "protocols.yaml"
MAX_CELLS = 16  # more groups of bars than one figure can show legibly; the table has every cell


def _val(row: pd.Series, col: str, seeds: int) -> str:
    v = row.get(col, np.nan)
    if not np.isfinite(v):
        return "—"
    sd = row.get(f"{col}_sd", np.nan)
    return f"{v:.3f} ± {sd:.3f}" if seeds > 1 and np.isfinite(sd) else f"{v:.3f}"


def _delta(row: pd.Series, col: str) -> str:
    v = row.get(f"{col}_inflation", np.nan)
    return "—" if not np.isfinite(v) else f"{round(float(v), 3) or 0.0:+.3f}"  # never "-0.000"


def _epochs(per_seed: pd.DataFrame) -> str:
    """The overall-best epoch(s), 1-based, of each seed, e.g. 'epoch 12 of 20' or 'epochs 12, 15 of 20'."""
    e = per_seed["leaky_overall_best_epoch"].dropna().astype(int) + 1
    if not len(e):
        return ""
    n = int(per_seed["n_epochs"].max())
    return f" (epoch{'s' if len(e) > 1 else ''} {', '.join(map(str, e))} of {n})"


def _table(summary: pd.DataFrame, per_seed: pd.DataFrame, caption: str) -> Table:
    rows, bold = [], set()
    for _, r in summary.iterrows():
        seeds = int(r["n_seeds"])
        mine = per_seed[(per_seed["representation"] == r["representation"]) & (per_seed["model"] == r["model"])]
        bold.add((len(rows), 2))
        rows.append([r["representation"], r["model"], "honest (headline)", _val(r, "uf1", seeds), "",
                     _val(r, "uar", seeds), "", str(seeds)])
        for s, (label, _) in SHORTCUTS.items():
            uf1, uar = f"uf1_leaky_{s}", f"uar_leaky_{s}"
            has_uf1 = uf1 in r.index
            name = f"LEAKY: {label}" + (_epochs(mine) if s == "overall_best_epoch" else "")
            rows.append(["", "", name, _val(r, uf1, seeds) if has_uf1 else "—", _delta(r, uf1) if has_uf1 else "—",
                         _val(r, uar, seeds), _delta(r, uar), str(seeds)])
    return Table(["Representation", "Model", "Evaluation", "UF1", "ΔUF1", "UAR", "ΔUAR", "Seeds"], rows, caption,
                 bold=bold, align=["l", "l", "l", "r", "r", "r", "r", "r"])


def shortcut_bars(summary: pd.DataFrame, path, dpi: int) -> None:
    """Per cell (x), the honest bar and one bar per shortcut; UF1 above, UAR below; whiskers ± sd over seeds."""
    if not len(summary):
        raise F.Skipped("no cell has audit predictions")
    if len(summary) > MAX_CELLS:
        raise F.Skipped(f"{len(summary)} cells are more than one figure shows legibly ({MAX_CELLS}); "
                        "the table and shortcuts.csv have every cell")
    bars = [("", "honest")] + [(f"_leaky_{s}", f"leaky: {lab}") for s, (lab, _) in SHORTCUTS.items()]
    colors = ["0.25", *sns.color_palette("colorblind", len(SHORTCUTS))]
    labels = [f"{r} × {m}" for r, m in zip(summary["representation"], summary["model"])]
    x = np.arange(len(summary))
    width = 0.8 / len(bars)
    with F._style():
        fig = Figure(figsize=(F.TEXT_WIDTH_IN, 4.8), layout="constrained")
        axes = fig.subplots(2, 1, squeeze=False)[:, 0]
        for ax, m in zip(axes, ("uf1", "uar")):
            for j, ((suffix, name), color) in enumerate(zip(bars, colors)):
                col = f"{m}{suffix}"
                if col not in summary.columns:
                    continue  # UAR-only shortcut (mean precision): no UF1 bar
                val = summary[col].to_numpy(float)
                sd = summary.get(f"{col}_sd", pd.Series(np.nan, index=summary.index)).to_numpy(float)
                ok = np.isfinite(val)
                err = sd[ok] if np.isfinite(sd[ok]).any() else None  # one seed: no whisker
                ax.bar(x[ok] - 0.4 + width * (j + 0.5), val[ok], width * 0.92, color=color, label=name,
                       yerr=None if err is None else np.nan_to_num(err), capsize=1.5,
                       error_kw={"elinewidth": 0.7, "ecolor": "0.2"}, hatch=None if j == 0 else "//",
                       edgecolor="white", linewidth=0)
            F._xticks(ax, x, labels)
            ax.grid(axis="x", visible=False)
            ax.set_ylabel(m.upper())
            ax.set_ylim(0, 1)
        h, lab = axes[1].get_legend_handles_labels()
        fig.legend(h, lab, loc="outside lower center", ncols=3, frameon=False)
        F._save(fig, path, dpi)


PER_SETTING = True


def scores(ctx: ReportContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per cell and seed, summary per cell) of the audit's shortcuts (``bench.evaluation.audit``)."""
    try:
        per_seed = shortcut_scores(ctx.run.audit, ctx.run.predictions, ctx.run.n_classes, CELL)
    except AuditError as e:  # an audit table of another run, or a damaged one: refuse, naming the file
        raise ReportInputError(f"{ctx.run.run_dir / 'audit.parquet'}: {e}") from None
    return per_seed, summarize(per_seed, CELL)


def lead(ctx: ReportContext) -> list[Block]:
    if not len(ctx.run.audit):
        return []
    per_seed, _ = ctx.derive(scores)
    ctx.csv(per_seed.rename(columns={SETTING: "dataset"}), "shortcuts_per_seed")
    return [Heading(TITLE), Para(
        "**Every number in this section is LEAKY** — what a common evaluation shortcut would have reported "
        "for the same trained models, measured here so that the inflation is visible. None of it is in "
        "the headline table, the significance tests or tuning. With `audit=true` every fold also predicted "
        "its test subject once per epoch, after training had finished, from that epoch's saved weights "
        "(the training never saw the test data and is unchanged: the headline is bit-identical with the "
        "audit off). ΔUF1 / ΔUAR are the shortcut minus the honest score of the same cell and seed, as "
        "measured (negative when the shortcut happens to come out lower)."),
        Bullets([f"**{lab}** — {what}. {WHERE[s]}." for s, (lab, what) in SHORTCUTS.items()]),
        Para("Rules: best epoch per subject keeps, per fold, the epoch with the most correct test clips "
             "(HTNet's rule; ties: the latest epoch); best epoch overall picks the epoch with the best pooled "
             "test UF1 (then UAR; ties: the latest); the per-fold average scores each fold's own honest "
             "predictions with the MEGC rules (a class absent from a fold's truth and predictions is left "
             "out of its UF1, a class predicted but absent from its truth out of its UAR) and averages the "
             "folds; UAR as mean precision averages TP/predicted over the classes with true samples "
             "(a class never predicted counts 0); the class-dropping rules score each fold as the cited code "
             "does (a fold whose figure is NaN there, e.g. a predicted class absent from its truth, is left out "
             "of the average). Configuration chosen on test: within a family (one setting, one representation "
             "and one model by registry name, several configurations: a θ sweep, a switch, a learning-rate or "
             "epoch grid), the best pooled test UF1 of the K configurations (LEAKY) beside the honest "
             "counterpart, the configuration with the best inner-validation UF1 chosen per outer fold on its "
             "training subjects only, those folds' test predictions pooled; its inflation is shown against k "
             "(the mean over subsets of k configurations, k = 1 giving 0).")]


def build_setting(ctx: ReportContext, f: Facet) -> list[Block]:
    per_seed, summary = ctx.derive(scores)
    summ = f.of(summary)
    if not len(summ):
        return []
    order = {(r, m): (ctx.reps.index(r) if r in ctx.reps else len(ctx.reps),
                      ctx.models.index(m) if m in ctx.models else len(ctx.models))
             for r, m in zip(summ["representation"], summ["model"])}
    summ = summ.assign(_o=[order[k] for k in zip(summ["representation"], summ["model"])]) \
        .sort_values("_o", kind="stable").drop(columns="_o").reset_index(drop=True)
    t = _table(ctx.shown(summ), ctx.shown(f.of(per_seed)), "LEAKY — what common shortcuts would have reported, beside the honest "
               "headline" + f.suffix + " (mean ± sd over seeds; Δ = shortcut − honest).")
    out = ctx.table(t, summ.rename(columns={SETTING: "dataset"}), f.stem("shortcuts"))
    out += ctx.figure(shortcut_bars, f.stem("shortcuts"),
                      "LEAKY shortcuts vs the honest score per cell" + f.suffix
                      + ": grey = honest (headline); hatched = what each shortcut would have reported "
                      "(whiskers: ± sd over seeds).", ctx.shown(summ))
    g = ctx.derive(grid_scores)
    return out + _grid_blocks(ctx, f, g) + _protocol_lines(ctx, f, g)


def close(ctx: ReportContext, faceted: list[Block]) -> list[Block]:
    per_seed, _ = ctx.derive(scores)
    missing = per_seed[per_seed["n_epochs"] == 0]
    if not len(missing):
        return []
    return [Para(f"{len(missing)} cell-seed(s) have no audit predictions (run before `audit=true`, or "
                 "failed): their best-epoch shortcuts are shown as —.")]


# ---------------------------------------------------------- configuration shortcut, published protocols

def load_protocols(path: Path = PROTOCOLS) -> list[dict]:
    """The published protocols (method, label, epoch, configs, score, uar_as, uf1, uar, code, note)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    out = data.get("protocols") or []
    for i, a in enumerate(out):
        missing = [k for k in ("method", "label", "epoch", "configs", "score", "uar_as", "code") if k not in a]
        if missing:
            raise ReportInputError(f"{path}: protocol {i} ({a.get('method', '?')}) lacks {', '.join(missing)}")
    return out


def grid_scores(ctx: ReportContext) -> dict:
    """The configuration shortcut (choices, curve) and every published protocol on every cell and seed."""
    run = ctx.run
    try:
        inner = load_inner(run.run_dir)
        inner = inner.assign(**{SETTING: _setting_column(inner, len(run.flows) > 1)})
        fam_of = families(run.results, CELL) if len(run.results) else {}
        choices, curve = config_choice(run.predictions, inner, fam_of, run.n_classes, CELL)
        protocols = load_protocols()
        specs = {p["method"]: p for p in protocols}
        prot = protocol_scores(run.audit, run.predictions, specs, fam_of, run.n_classes, CELL)
    except AuditError as e:
        raise ReportInputError(str(e)) from None
    return {"choices": choices, "curve": curve, "protocols": protocols, "scores": prot, "families": fam_of}


def _setting_of(df: pd.DataFrame, setting) -> pd.DataFrame:
    if not len(df):
        return df
    return df[[fam[0] == setting for fam in df["family"]]]


def inflation_curve(curve: pd.DataFrame, path, dpi: int) -> None:
    """Per family, the mean over seeds of best-of-k minus the honest pick (solid) and minus a blind
    pick (dashed) against k."""
    if not len(curve):
        raise F.Skipped("no family of two or more configurations")
    with F._style():
        fig = Figure(figsize=(F.TEXT_WIDTH_IN * 0.6, 3.0), layout="constrained")
        ax = fig.subplots()
        colors = sns.color_palette("colorblind", curve["family"].nunique())
        for color, (fam, g) in zip(colors, curve.groupby("family", sort=False)):
            m = g.groupby("k", sort=True)[["inflation", "inflation_vs_random"]].mean()
            name = " × ".join(map(str, fam[-2:]))
            if m["inflation"].notna().any():
                ax.plot(m.index, m["inflation"], "o-", color=color, label=f"{name}: vs honest inner pick")
            ax.plot(m.index, m["inflation_vs_random"], "s--", color=color, alpha=0.7, label=f"{name}: vs blind pick")
        ax.axhline(0, color="0.5", linewidth=0.6)
        ax.set_xscale("log", base=2)
        ks = sorted(curve["k"].unique())
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("k configurations chosen among")
        ax.set_ylabel("LEAKY ΔUF1 (best of k − pick)")
        ax.legend(frameon=False, fontsize="small")
        F._save(fig, path, dpi)


def _grid_blocks(ctx: ReportContext, f: Facet, g: dict) -> list[Block]:
    ch = _setting_of(g["choices"], f.setting)
    if not len(ch):
        return []
    agg = ch.groupby("family", sort=False).agg(
        K=("K", "max"), seeds=("seed", "nunique"), leaky=("uf1_leaky_best_of_k", "mean"),
        honest=("uf1_inner_pick", "mean"), mean_uf1=("mean_uf1", "mean"), inflation=("inflation", "mean")).reset_index()
    fmt = (lambda v: "—" if not np.isfinite(v) else f"{v:.3f}")
    rows = [[" × ".join(map(str, r["family"][-2:])), str(int(r["K"])), fmt(r["leaky"]), fmt(r["honest"]),
             "—" if not np.isfinite(r["inflation"]) else f"{round(float(r['inflation']), 3) or 0.0:+.3f}",
             fmt(r["mean_uf1"]), str(int(r["seeds"]))] for _, r in agg.iterrows()]
    validation = "; ".join(sorted({v for v in ch["validation"] if v})) or "none recorded (run with `audit=grid`)"
    t = Table(["Family (representation × model)", "K", "LEAKY best of K (UF1)", "honest inner pick (UF1)", "ΔUF1",
               "mean of the K", "Seeds"], rows,
              "LEAKY — the configuration chosen on the test folds vs the same choice made per fold on its "
              f"training subjects{f.suffix} (inner validation: {validation}).",
              align=["l", "r", "r", "r", "r", "r", "r"])
    numeric = agg.assign(family=[" × ".join(map(str, k)) for k in agg["family"]])
    cur = _setting_of(g["curve"], f.setting)
    return ([Heading("Configuration chosen on the test folds", 3)] + ctx.table(t, numeric, f.stem("shortcuts_grid"))
            + ctx.figure(inflation_curve, f.stem("shortcuts_grid_k"),
                         "LEAKY inflation of choosing the best of k configurations on the test folds, against k"
                         + f.suffix + " (mean over subsets of k and seeds; k = 1 gives 0).", cur))


def _inner_pick(g: dict, f: Facet, family: tuple) -> float:
    """The family's honest inner-validation pick (UF1, mean over seeds) in this setting; NaN if unknown."""
    ch = _setting_of(g["choices"], f.setting)
    if not len(ch):
        return float("nan")
    mine = ch[[fam == family for fam in ch["family"]]]
    return float(mine["uf1_inner_pick"].mean()) if len(mine) else float("nan")


def _protocol_lines(ctx: ReportContext, f: Facet, g: dict) -> list[Block]:
    sc = f.of(g["scores"]) if len(g["scores"]) else g["scores"]
    if not len(sc):
        return []
    lines = []
    sign = (lambda v: f"{round(float(v), 3) or 0.0:+.3f}")
    for p in g["protocols"]:
        mine = sc[sc["protocol"] == p["method"]]
        m = mine.groupby(["representation", "model"], sort=False)[["uf1", "d_uf1", "honest_uf1", "uar", "d_uar",
                                                                   "K"]].mean()
        m = m.reset_index()
        if p["configs"] == "best_of_k":  # one figure per family: every member reports the family's best
            n = len(lines)
            m = m.assign(_fam=[g["families"].get((f.setting, r, mo)) for r, mo in zip(m["representation"], m["model"])])
            for fam, grp in m[m["K"] > 1].groupby("_fam", sort=False):
                leaky = grp["uf1"].iloc[0]
                if np.isfinite(leaky):
                    # Two baselines, both honest: a blind pick among the K (their mean) and the pick a
                    # careful author makes on training subjects (the grid table's inner pick), when known.
                    pick = _inner_pick(g, f, fam)
                    vs_pick = (f"; {sign(leaky - pick)} against the honest inner pick, {pick:.3f}"
                               if np.isfinite(pick) else "")
                    lines.append(f"under {p['method']}'s protocol ({p['label']}, K = {int(grp['K'].iloc[0])}) the "
                                 f"family {' × '.join(map(str, fam[-2:]))} would have reported UF1 {leaky:.3f} "
                                 f"({sign(leaky - grp['honest_uf1'].mean())} against the mean honest "
                                 f"UF1 of its {len(grp)} configurations{vs_pick})")
            if len(lines) == n:
                lines.append(f"{p['method']}'s protocol ({p['label']}) needs several configurations of one "
                             "representation and model (a grid study such as `leakage_audit_grid`); this setting has none")
            continue
        for _, r in ctx.shown(m).iterrows():
            m_ = "uar" if p["uar_as"] == "mean_precision" else "uf1"  # that shortcut moves the UAR only
            if np.isfinite(r[m_]):
                lines.append(f"under {p['method']}'s protocol ({p['label']}) {r['representation']} × {r['model']} "
                             f"would have reported {m_.upper()} {r[m_]:.3f} ({sign(r['d_' + m_])})")
    ctx.csv(sc.rename(columns={SETTING: "dataset"}), f.stem("shortcuts_protocols"))
    src = "; ".join(f"{p['method']}: {p['code']}" for p in g["protocols"])
    return [Heading("What each published protocol would have reported here", 3),
            Para("LEAKY. Each published protocol's shortcuts (`bench/report/anchors/protocols.yaml`) stacked on "
                 "this run's own models, Δ against the cell's honest UF1 (mean over seeds). Where the code does "
                 f"it: {src}."), Bullets(lines or ["no cell has the audit rows these protocols need"])]
