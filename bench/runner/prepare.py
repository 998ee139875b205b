"""The study's data, each piece computed once: sample tables, flows, representations, folds, digests."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from bench.core.hashing import stable_hash
from bench.plan.planner import Plan


class Prepared:
    """Per-study data cache: tables, flows, representations and folds, each computed once."""

    def __init__(self, plan: Plan, progress: bool):
        self.plan, self.progress = plan, progress
        self.tables, self.flows, self.reps, self.folds, self.digests = {}, {}, {}, {}, {}
        self.timings = {"data": 0.0, "flow": 0.0, "representation": 0.0}
        self.flow_params: dict = {}

    def table(self, cell):
        from bench.data import load_dataset
        from representations import annotate_exactness

        key = stable_hash(cell.cfg["dataset"])
        if key not in self.tables:
            t0 = time.perf_counter()
            self.tables[key] = load_dataset(cell.cfg["dataset"])
            annotate_exactness(self.tables[key])  # precomputed flow files: how exact each representation is
            self.timings["data"] += time.perf_counter() - t0
        return key, self.tables[key]

    def flowset(self, cell):
        from bench.flow import compute_flows

        dkey, table = self.table(cell)
        key = stable_hash([dkey, cell.cfg["flow"]])
        if key not in self.flows:
            f = dict(cell.cfg["flow"])
            t0 = time.perf_counter()
            self.flows[key] = compute_flows(
                table, backend=f.pop("backend"), backend_params=f.pop("params", None), crop=f.pop("crop", None),
                size=f.pop("size", 112), workers=int(f.pop("workers", 1)), progress=self.progress,
                cache_dir=Path(self.plan.base.paths.cache) / "flows", **f)
            self.timings["flow"] += time.perf_counter() - t0
            self.flow_params[cell.flow.name] = self.flows[key].params
        return key, self.flows[key]

    def representation(self, cell):
        from bench.training.fold import represent

        fkey, fs = self.flowset(cell)
        key = stable_hash([fkey, cell.cfg["representation"]])
        if key not in self.reps:
            t0 = time.perf_counter()
            self.reps[key] = represent(cell.cfg["representation"], fs.flows, stored=fs.stored)
            self.timings["representation"] += time.perf_counter() - t0
        return self.reps[key]

    def fold_digest(self, cell, fold) -> str:
        """What the data of a fold *is*: its rows' table content (subject, clip, label, key frames,
        source dataset), the flows' content-hash cache keys, and the class names, for the training
        and the test rows. A unit's key holds it, so editing the data reruns exactly the units
        whose rows changed, and moving the data or the cache reruns nothing."""
        fkey, fs = self.flowset(cell)
        _, table = self.table(cell)
        if fkey not in self.digests:
            df = table.df
            cols = [c for c in ("subject", "clip", "label", "onset", "apex", "offset", "dataset") if c in df.columns]
            rows = df[cols].astype(str).agg("\x1f".join, axis=1).tolist()
            self.digests[fkey] = np.array([hashlib.sha256(f"{r}\x1f{k}".encode()).hexdigest()[:20]
                                           for r, k in zip(rows, fs.keys)])
        d = self.digests[fkey]
        return stable_hash([list(table.classes), d[np.asarray(fold.train_idx)].tolist(),
                            d[np.asarray(fold.test_idx)].tolist()])

    def fold_list(self, cell):
        dkey, table = self.table(cell)
        spec = cell.settings.protocol
        # Folds depend on the data and the outer protocol only, never on the training seed, so
        # every cell of a study is tested on the same folds.
        key = stable_hash([dkey, spec.name, spec.k, spec.seed])
        if key not in self.folds:
            self.folds[key] = spec.make_folds(table.df)
        return self.folds[key]

    def first_table(self):
        """The first dataset's sample table (its classes name the study's classes)."""
        return next(iter(self.tables.values()))
