"""What every report section reads: the loaded run, the options, and data derived from them.

Built once per report. Derived data are cached properties computed on first use, so a section
never depends on another section having run first (the headline frames the sweeps reuse, for one).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from . import figures as F
from .document import Block, Figure, Para, Table
from .load import SETTING, RunData, axis_options, ordered
from .names import display
from .tables import ReportOptions, baseline_label, headline_frame, write_table
from .words import slug


class ReportContext:
    """The run, the options, the output directories and the files written so far."""

    def __init__(self, run: RunData, out: Path, opts: ReportOptions, root: Path | None = None):
        # out: the report folder, as the report names it; root: where its files are written now (the
        # staging folder that ``bench.report.build`` swaps in when the whole report is written)
        self.run, self.out, self.opts = run, Path(out), opts
        self.root = Path(root) if root is not None else self.out
        self.fig_dir, self.tab_dir = self.root / "figures", self.root / "tables"
        self.written: list[Path] = []  # every figure and table this report wrote (the rest is stale)
        self._derived: dict = {}  # derive(): what a section computes once and reads in several places

    # -- the cells
    @cached_property
    def settings(self) -> list[str]:
        """Setting labels (one (dataset, flow) pair each) in order of first appearance."""
        return ordered(self.run.predictions[SETTING])

    @cached_property
    def composite_settings(self) -> list[str]:
        """Settings whose predictions come from several source databases (a composite such as MEGC2019)."""
        preds = self.run.predictions
        return [s for s in self.settings if self.in_setting(preds, s)["source_dataset"].nunique() > 1]

    @property
    def multi(self) -> bool:
        """Several settings: each gets its own tables and figures."""
        return len(self.settings) > 1

    @cached_property
    def datasets(self) -> list[str]:
        return ordered(self.run.predictions["dataset"])

    @cached_property
    def rep_options(self) -> dict[str, str]:
        """Representation label -> its option (``p_representation``)."""
        return axis_options(self.run.results, "representation")

    @cached_property
    def base(self) -> str | None:
        """The baseline representation's label, or None when the study has none."""
        return baseline_label(ordered(self.run.predictions["representation"]), self.opts.baseline,
                              self.rep_options)[0]

    @cached_property
    def reps(self) -> list[str]:
        """Representation labels, the baseline first."""
        return ordered(self.run.predictions["representation"], self.base)

    @cached_property
    def models(self) -> list[str]:
        return ordered(self.run.predictions["model"])

    @cached_property
    def heads(self) -> dict[str, pd.DataFrame]:
        """The headline frame (pooled scores, seed std, bootstrap CI) of each setting."""
        return {s: headline_frame(self.run, self.opts, self.in_setting(self.run.predictions, s))[0]
                for s in self.settings}

    @cached_property
    def seed_scores(self) -> pd.DataFrame:
        """Each seed's pooled UF1/UAR/accuracy per cell: columns setting, representation, model, seed, uf1, uar, acc, n."""
        from .stats import per_seed_scores

        return per_seed_scores(self.run.predictions, self.run.n_classes, [SETTING, "representation", "model"])

    @cached_property
    def verdicts(self) -> pd.DataFrame:
        """Every representation vs the baseline per model and setting (and, for a composite, per source
        database: ``source``, ``""`` for all of them): ``bench.evaluation.verdicts.verdicts``'s table
        with the setting's label as ``dataset``."""
        from bench.evaluation.verdicts import RESULT_COLUMNS, verdicts

        v = verdicts(self.run.predictions, self.run.n_classes, self.opts.baseline, by=[SETTING],
                     options=self.rep_options, rule=self.opts.rule())
        return v.rename(columns={SETTING: "dataset"})[["dataset", *RESULT_COLUMNS]]

    # -- display names (bench.report.names): tables and figures show these; CSVs keep the labels
    @cached_property
    def model_options(self) -> dict[str, str]:
        return axis_options(self.run.results, "model")

    def rep_name(self, label: str) -> str:
        return display(label, "representation", self.rep_options.get(str(label)))

    def model_name(self, label: str) -> str:
        return display(label, "model", self.model_options.get(str(label)))

    def cell_name(self, rep: str, model: str) -> str:
        return f"{self.rep_name(rep)} × {self.model_name(model)}"

    def shown(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` with its representation and model labels as display names (for a table or a figure;
        never for a CSV, which keeps the study's labels)."""
        out = df.copy()
        if "representation" in out.columns:
            out["representation"] = out["representation"].map(lambda v: self.rep_name(v) if isinstance(v, str) else v)
        if "model" in out.columns:
            out["model"] = out["model"].map(lambda v: self.model_name(v) if isinstance(v, str) else v)
        return out

    def in_setting(self, df: pd.DataFrame, setting: str) -> pd.DataFrame:
        return df[df[SETTING] == setting]

    def derive(self, fn):
        """``fn(self)``, computed once per report: data a section reads in its lead, in each setting and
        in its close (``build_section``). Never a way to pass data between sections: each computes its
        own, so none depends on another having run."""
        if fn not in self._derived:
            self._derived[fn] = fn(self)
        return self._derived[fn]

    # -- names
    def stem(self, name: str, setting: str) -> str:
        """A file stem, suffixed with the setting when there are several."""
        return f"{name}_{slug(setting)}" if self.multi else name

    def suffix(self, setting: str) -> str:
        """Caption suffix naming the setting when there are several."""
        return f" — {setting}" if self.multi else ""

    # -- outputs
    def figure(self, fn, stem: str, caption: str, *args, **kw) -> list[Block]:
        """Draw ``figures/<stem>.png`` (and its vector twin ``<stem>.pdf``, ``figures._save``) with
        ``fn(*args, path=, dpi=, **kw)``; on ``Skipped`` say why instead."""
        path = self.fig_dir / f"{stem}.png"
        try:
            fn(*args, path=path, dpi=self.opts.dpi, **kw)
        except F.Skipped as e:
            return [Para(f"*No {stem.replace('_', ' ')} figure: {e}.*")]
        self.written += [p for p in (path, path.with_suffix(".pdf")) if p.exists()]
        return [Figure(path.relative_to(self.root), caption)]

    def table(self, t: Table, numeric: pd.DataFrame, stem: str, fit_column: bool = False) -> list[Block]:
        """``t`` as a block, written as ``tables/<stem>.csv`` (``numeric``) and ``.tex`` (``fit_column``:
        scaled to a paper's column width)."""
        self.written += write_table(t, numeric, self.tab_dir, stem, fit_column)
        return [t]

    def csv(self, df: pd.DataFrame, stem: str) -> None:
        """A machine-readable table with no formatted counterpart in the report."""
        self.tab_dir.mkdir(parents=True, exist_ok=True)
        p = self.tab_dir / f"{stem}.csv"
        df.to_csv(p, index=False, float_format="%.6g")
        self.written.append(p)


@dataclass(frozen=True)
class PerSetting:
    """A section's faceting by setting (its module's ``PER_SETTING``): the framework
    (``bench.report.build.build_section``) calls the module's ``build_setting(ctx, facet)`` once per setting.

    ``headings``: with several settings, a level-3 heading naming the setting opens each setting's
    blocks (none when it has no block). ``over``: the ``ReportContext`` property listing the settings
    (``settings``; ``composite_settings`` for the composite-only sections).
    """

    headings: bool = False
    over: str = "settings"


class Facet:
    """One setting as a per-setting section sees it: its label, the file stems and caption suffix that
    name it when there are several, and the run's frames restricted to it."""

    def __init__(self, ctx: ReportContext, setting: str):
        self.ctx, self.setting = ctx, setting

    @property
    def suffix(self) -> str:
        """`` — <setting>`` for a caption when there are several settings, else ``""``."""
        return self.ctx.suffix(self.setting)

    def stem(self, name: str) -> str:
        """A file stem, suffixed with the setting when there are several."""
        return self.ctx.stem(name, self.setting)

    def of(self, df: pd.DataFrame, column: str = SETTING) -> pd.DataFrame:
        """The rows of ``df`` in this setting (``column``: where ``df`` holds the setting's label)."""
        return df[df[column] == self.setting]

    @property
    def predictions(self) -> pd.DataFrame:
        return self.of(self.ctx.run.predictions)

    @property
    def results(self) -> pd.DataFrame:
        return self.of(self.ctx.run.results)

    @property
    def head(self) -> pd.DataFrame:
        """This setting's headline frame (``ReportContext.heads``)."""
        return self.ctx.heads[self.setting]

    def reps_in(self, df: pd.DataFrame) -> list[str]:
        """The representations of ``df``, in the report's order (the baseline first)."""
        return [r for r in self.ctx.reps if r in set(df["representation"])]

    def models_in(self, df: pd.DataFrame) -> list[str]:
        return [m for m in self.ctx.models if m in set(df["model"])]


def drew(blocks: list[Block]) -> bool:
    """Whether ``ReportContext.figure`` drew its figure."""
    return any(isinstance(b, Figure) for b in blocks)
