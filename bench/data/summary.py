"""``python -m bench.data summary``: counts per class and subject, and every problem found."""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Sequence

import pandas as pd

from bench.data.table import SampleTable


def summarize(table: SampleTable) -> str:
    """A plain-text report of a table: sizes, per-class and per-subject counts, key-frame sources, problems."""
    df = table.df
    lines = [
        f"dataset: {table.name}",
        f"source: {table.source}",
        f"clips: {len(df)}   subjects: {df['subject'].nunique()}   classes: {len(table.classes)}"
        + (f" (class set {table.meta['class_set']})" if table.meta.get("class_set") else ""),
        "",
        "per class:",
    ]
    counts = Counter(df["label"].tolist())
    w = max([len(c) for c in table.classes] + [5])
    inferred = table.meta.get("inferred_classes")
    suspect = (inferred or {}).get("suspect", {})
    if inferred is not None:
        lines[-1] = "per class (classes: null, every distinct label is a class; check for typos):"
    for i, c in enumerate(table.classes):
        mark = f"   <- {suspect[c]}: a label typo?" if c in suspect else ""
        lines.append(f"  {i:>2} {c:<{w}} {counts.get(i, 0):>6}{mark}")
    if "dataset" in df and df["dataset"].nunique() > 1:
        lines += ["", "per source dataset:"]
        for d, n in df["dataset"].value_counts().sort_index().items():
            lines.append(f"  {d:<{w + 3}} {n:>6}")
    lines += ["", "per subject (columns: classes in order above):"]
    if len(df):
        ct = pd.crosstab(df["subject"], df["label"]).reindex(columns=range(len(table.classes)), fill_value=0)
        sw = max([len(s) for s in ct.index] + [len("subject")])
        head = " ".join(f"{i:>4}" for i in range(len(table.classes)))
        lines.append(f"  {'subject':<{sw}} {head} total")
        for s, row in ct.iterrows():
            lines.append(f"  {s:<{sw}} {' '.join(f'{int(v):>4}' for v in row)} {int(row.sum()):>5}")
    lines += ["", "apex source:"]
    for k, n in df["apex_source"].value_counts().sort_index().items():
        lines.append(f"  {k:<30} {n:>6}")
    flags = Counter(f for fl in df["flags"] for f in fl.split(";") if f)
    if flags:
        lines += ["", "row flags:"] + [f"  {k:<30} {n:>6}" for k, n in sorted(flags.items())]
    lines += ["", f"problems ({len(table.problems)}):"]
    lines += [f"  - {p}" for p in table.problems] or ["  none"]
    return "\n".join(lines)


def summary_config(dataset_cfg: Mapping[str, Any], explicit: Sequence[str] = ()) -> dict[str, Any]:
    """The loader mapping the summary uses: frames checked as one summarised problem and errors collected,
    unless the user set ``check_frames`` / ``errors`` explicitly (``explicit`` lists the keys they set)."""
    cfg = dict(dataset_cfg)
    if "check_frames" not in explicit:
        cfg["check_frames"] = "summary"
    if "errors" not in explicit:
        cfg["errors"] = "collect"
    return cfg


def run_summary(dataset_cfg: Mapping[str, Any], explicit: Sequence[str] = ()) -> str:
    from bench.data import load_dataset

    return summarize(load_dataset(summary_config(dataset_cfg, explicit)))
