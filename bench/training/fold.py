"""Training one fold: build the pieces a cell's config describes, fit, predict.

The one place where a config node becomes a representation, a model or a trainer, so the planner
(validation), the runner (representations), the unit (outer fold) and the tuner (inner folds) build
each piece the same way. It sits below ``bench.training.units`` and ``bench.training.tuning`` and imports neither.
The test fold never reaches ``fit`` from here: callers pass the indices to fit on and, separately,
the indices to predict once.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import numpy as np


def build_trainer(trainer_cfg: dict, seed: int, channels: tuple):
    """TrainConfig + the flow-respecting augmentation from the ``trainer`` config node."""
    from bench.training.engine import TrainConfig
    from representations.augment import FlowAugment

    params = dict(trainer_cfg)
    aug_cfg = params.pop("augment", None) or {}
    params.pop("inputs", None)  # the planner's: already moved into the representation (schemas.TrainerNode)
    params["seed"] = seed
    augment = FlowAugment(channels, **aug_cfg) if aug_cfg and any(aug_cfg.values()) else None
    return TrainConfig.from_mapping(params), augment


def represent(rep_cfg: dict, flows: np.ndarray, stored=None) -> tuple[np.ndarray, tuple[str, ...], list]:
    """The representation a config node describes, over flows (N, 2, 2, H, W): (x, channels, flags).

    ``stored``: the flow set's stored channels (``bench.flow.pipeline.StoredChannels``, precomputed
    tables only), read by a representation that declares ``reads_stored`` (``representations.stored``).

    ``x`` is a contiguous float32 (N, C, H, W) array, checked finite: a NaN must never reach training.
    """
    from representations import build_representation

    rep = build_representation(rep_cfg)
    x, flags = rep.batch_stored(flows, stored) if getattr(rep, "reads_stored", False) else rep.batch(flows)
    x = np.ascontiguousarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float32)
    if not np.isfinite(x).all():  # representations promise this; check where training begins
        raise RuntimeError(f"representation {rep_cfg.get('name')} produced non-finite values")
    return x, tuple(rep.channels), flags


def has_aux(model) -> bool:
    """Whether a model explains itself: its ``forward`` takes ``return_aux`` (see ``predict_aux``)."""
    return "return_aux" in inspect.signature(model.forward).parameters


def train_and_predict(task: Any, fit_idx, eval_idx, model_cfg: dict, trainer_cfg: dict, *,
                      val_idx=None, want_aux: bool = False, audit: bool = False) -> dict:
    """Fit on ``fit_idx`` (early-stopping on ``val_idx`` if given), predict ``eval_idx`` once.

    ``task`` holds the arrays (``x``, ``y``, ``channels``, ``n_classes``, ``seed``). With
    ``want_aux``, a model whose ``forward`` takes ``return_aux`` also returns what it explains
    (e.g. FMANet's fusion weights and attention maps), whatever that is. With ``audit`` (the
    leakage audit, ``bench.evaluation.audit``), each epoch's weights are copied as ``fit`` reports the epoch
    and, after ``fit`` returns and the headline prediction is made, a separate copy of the model
    predicts ``eval_idx`` once per epoch (``"audit"``: epochs and their class predictions).
    ``"model"`` is the trained model, for what a caller measures of it afterwards (its costs).
    """
    import torch

    from bench.training.engine import fit, predict_aux, predict_proba
    from models import build_model

    tcfg, augment = build_trainer(trainer_cfg, task.seed, task.channels)
    torch.manual_seed(task.seed)  # model init is part of the seeded, reproducible unit
    model = build_model(model_cfg, in_chans=task.x.shape[1], num_classes=task.n_classes, channels=task.channels)
    xt = torch.from_numpy(task.x[fit_idx])
    yt = torch.from_numpy(task.y[fit_idx])
    if hasattr(model, "fit_input_stats"):  # input statistics from the rows it trains on, nothing else
        model.fit_input_stats(xt)
    val = None
    if val_idx is not None and len(val_idx):
        val = (torch.from_numpy(task.x[val_idx]), torch.from_numpy(task.y[val_idx]))
    snapshots = EpochSnapshots(model) if audit else None
    res = fit(model, xt, yt, tcfg, val=val, augment=augment, on_epoch=snapshots)
    xe = torch.from_numpy(task.x[eval_idx])
    t0 = time.perf_counter()
    aux = None
    if want_aux and has_aux(model):
        probs, aux = predict_aux(model, xe)
    else:
        probs = predict_proba(model, xe)
    out = {"fit": res, "probs": np.asarray(probs), "aux": aux, "predict_seconds": time.perf_counter() - t0,
           "model": model}  # the trained model (bench.training.costs counts it once everything is predicted)
    if snapshots is not None:
        t0 = time.perf_counter()
        out["audit"] = snapshots.predict(model, xe, with_aux=want_aux and has_aux(model))
        out["audit_seconds"] = time.perf_counter() - t0
    return out


# Per-epoch weights kept in memory for the audit, per unit; beyond this they go to a temporary file
# each (e.g. ResNet-10-T, 4.9 M parameters = 20 MB a copy: 25 epochs in memory, the rest on disk).
AUDIT_MEMORY_BYTES = 512 * 2**20


class EpochSnapshots:
    """Each epoch's weights, copied when ``fit`` reports the epoch (its ``on_epoch`` callback).

    Copying reads the weights and draws no random number, so training is unchanged; the test data
    is used only in ``predict``, after ``fit`` returned, on a separate copy of the model (so the
    trained model, whose prediction is the headline, is never touched). Copies beyond
    ``memory_bytes`` are spilled to a temporary folder, removed when ``predict`` ends.
    """

    def __init__(self, model, memory_bytes: int = AUDIT_MEMORY_BYTES):
        self.model, self.memory_bytes = model, int(memory_bytes)
        self.epochs: list[int] = []
        self.states: list = []  # a state dict (in memory) or the path of its spilled file
        self.bytes, self._tmp = 0, None

    def __call__(self, rec: dict) -> None:
        import torch

        state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        size = sum(v.numel() * v.element_size() for v in state.values())
        if self.bytes + size > self.memory_bytes:
            import tempfile
            from pathlib import Path

            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="dualflow-audit-")
            path = Path(self._tmp.name) / f"epoch{int(rec['epoch'])}.pt"
            torch.save(state, path)
            state = path
        else:
            self.bytes += size
        self.epochs.append(int(rec["epoch"]))
        self.states.append(state)

    def predict(self, model, x, with_aux: bool = False) -> dict:
        """``{"epochs": [...], "y_pred": (E, N) int array}``: ``x`` predicted with each epoch's weights.

        ``model`` is the trained model; it is copied, never modified. The prediction is the same
        function the headline uses (with aux when the headline had aux), so the last epoch of a
        fixed budget reproduces the headline's predictions exactly.
        """
        import copy

        import torch

        from bench.training.engine import predict_aux, predict_proba

        twin = copy.deepcopy(model)
        preds = []
        try:
            for state in self.states:
                if not isinstance(state, dict):
                    state = torch.load(state, weights_only=True)
                twin.load_state_dict(state)
                probs = predict_aux(twin, x)[0] if with_aux else predict_proba(twin, x)
                preds.append(np.asarray(probs).argmax(1))
        finally:
            self.states = []
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None
        y_pred = np.stack(preds).astype(np.int64) if preds else np.zeros((0, len(x)), np.int64)
        return {"epochs": list(self.epochs), "y_pred": y_pred}
