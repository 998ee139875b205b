"""A unit task built by hand: constant images whose value is their own index, so what reaches fit() is known."""

from __future__ import annotations

import numpy as np

from bench.training.units import UnitTask


def make_task(tmp_path, tuning=None, validation=None):
    n_sub, per = 6, 6
    n = n_sub * per
    # Each sample is a constant image whose value is its own index: whatever reaches fit() says
    # exactly which samples it saw.
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None, None, None], 3, axis=1)
    x = np.broadcast_to(x, (n, 3, 12, 12)).copy()
    y = np.tile(np.arange(3), n // 3).astype(np.int64)
    subjects = np.repeat([f"s{i}" for i in range(n_sub)], per)
    test = np.where(subjects == "s2")[0]
    train = np.where(subjects != "s2")[0]
    cfg = {
        "model": {"name": "ststnet"},
        "trainer": {"epochs": 2, "batch_size": 8, "lr": 1e-3},
        "protocol": {"name": "loso", "validation": validation or {"mode": "none"}},
        "tuning": tuning or {"n_trials": 0},
        "representation": {"name": "single_phase"},
    }
    return UnitTask(study="t", labels={"dataset": "d", "flow": "f", "representation": "r", "model": "m"},
                    names={"representation": "single_phase", "model": "ststnet"}, seed=0, fold="s2",
                    train_idx=train, test_idx=test, x=x, y=y, subjects=subjects,
                    clips=np.array([f"c{i}" for i in range(n)]), source_datasets=np.array(["d"] * n),
                    channels=("u1", "v1", "m1"), n_classes=3, cell_cfg=cfg, cell_hash="h", unit_key="k",
                    run_dir=str(tmp_path))
