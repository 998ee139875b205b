"""The run's facts (``run.json``): what ran, on what, with which versions, how long each step took."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from bench.core.config import to_container


def git_commit() -> str:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                           cwd=Path(__file__).parent)
        return r.stdout.strip() if r.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("dualflow-bench", "torch", "timm", "opencv-contrib-python-headless", "numpy", "pandas", "scipy",
                "optuna", "mlflow", "hydra-core", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def dataset_facts(table) -> dict:
    counts = table.df["label"].value_counts().to_dict()
    return {"name": table.name, "n_samples": len(table), "n_subjects": len(table.subjects),
            "class_counts": {table.classes[int(k)]: int(v) for k, v in sorted(counts.items())},
            "problems": list(table.problems)[:50]}


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_facts(plan, prep, units, ctx, *, failed: int, started: str, train_seconds: float) -> dict:
    """The run's ``run.json`` (before tracking, the report and the wall time are added)."""
    base, first = plan.base, prep.first_table()
    return {
        "study": ctx.study, "description": plan.study.get("description", ""), "overrides": plan.overrides,
        "classes": list(first.classes),
        "datasets": {c.dataset.name: dataset_facts(prep.table(c)[1]) for c in plan.cells},
        "class_counts": dataset_facts(first)["class_counts"],
        "n_subjects": len(first.subjects),
        "protocol": to_container(base.protocol), "tuning": to_container(base.tuning),
        "trainer": to_container(base.trainer), "flow": prep.flow_params,
        "seeds": sorted({c.seed for c in plan.cells}), "cells": [c.label for c in plan.cells],
        "excluded": plan.excluded, "versions": versions(), "git_commit": ctx.commit,
        "executor": to_container(base.executor), "started": started,
        "finished": now_utc(),
        "units": {"total": len(units.keys), "ran": len(units.tasks), "resumed": units.skipped, "failed": failed},
        "timings": {**{k: round(v, 3) for k, v in prep.timings.items()}, "train": round(train_seconds, 3)},
        "audit": ctx.audit, "audit_grid": ctx.audit_grid,
    }
