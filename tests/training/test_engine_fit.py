"""The training engine: config, determinism, leak-free API, early stopping, predictions."""

from __future__ import annotations

import dataclasses
import inspect
import logging

import numpy as np
import pytest
import torch
from torch import nn

from bench.training.engine import (FitResult, TrainConfig, batch_bounds, deterministic_mode, fit, memory_format_for,
                          predict_aux, predict_proba, resolve_device, seed_everything)
from models import create_model
from tests.helpers.training import train_twice


def _data(n=48, c=3, size=16, seed=0, k=3, noise=0.3):
    """Separable: class j has a bright horizontal band in row block j."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    x = torch.randn(n, c, size, size, generator=g) * noise
    for j in range(k):
        r = j * size // k
        x[y == j, :, r : r + size // k] += 1.0
    return x, y


def _tiny(c=3, k=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.2),
                         nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, k))


CPU = dict(device="cpu")


# ------------------------------------------------------------------------------------ config

def test_trainer_yaml_has_every_field_with_the_dataclass_defaults():
    """The composed trainer node (schema + YAML) carries every field, at the dataclass defaults."""
    from bench.core.config import compose, to_container

    raw = to_container(compose([]).trainer)
    raw.pop("augment")  # the runner's augmentation node (representations/augment.py), not an engine field
    assert raw.pop("inputs") == {}  # the planner's (a recipe's representation params), not an engine field
    assert set(raw) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert TrainConfig.from_mapping(raw) == TrainConfig()


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="unknown trainer keys \\['lrr'\\]"):
        TrainConfig.from_mapping({"lrr": 0.1})
    for bad, match in [({"optimizer": "rmsprop"}, "optimizer"), ({"epochs": 0}, "epochs"),
                       ({"monitor": "acc"}, "monitor"), ({"batch_size": 1}, "batch_size")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig.from_mapping(bad)
    assert TrainConfig.from_mapping({"name": "default", "class_weights": [1, 2, 3]}).class_weights == [1.0, 2.0, 3.0]


def test_fit_has_no_test_data_parameter():
    """Leak-free by construction: the only data fit sees are the training tensors and `val`."""
    params = set(inspect.signature(fit).parameters)
    assert params == {"model", "x", "y", "cfg", "val", "augment", "on_epoch", "num_classes"}


def test_batch_bounds_merge_a_trailing_single_sample():
    assert batch_bounds(64, 32) == [(0, 32), (32, 64)]
    assert batch_bounds(65, 32) == [(0, 32), (32, 65)]
    assert batch_bounds(70, 32) == [(0, 32), (32, 64), (64, 70)]
    assert batch_bounds(5, 32) == [(0, 5)]


# ------------------------------------------------------------------------------------- fit

def test_fit_learns_separable_data_and_records_history():
    x, y = _data()
    m = _tiny()
    seen = []
    r = fit(m, x, y, TrainConfig(epochs=15, batch_size=16, lr=1e-2, **CPU), on_epoch=seen.append)
    assert isinstance(r, FitResult) and r.best_epoch == -1 and r.epochs_run == 15 and r.seconds > 0
    assert seen == r.history and [h["epoch"] for h in r.history] == list(range(15))
    assert "val_loss" not in r.history[0]
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    acc = (predict_proba(m, x).argmax(1) == y.numpy()).mean()
    assert acc >= 0.9


def _run(seed, augment=None, model="ststnet"):
    x, y = _data(n=40, size=28)
    seed_everything(seed)
    m = create_model(model, 3, 3)
    fit(m, x, y, TrainConfig(epochs=3, batch_size=16, seed=seed, **CPU), augment=augment)
    return predict_proba(m, x), [p.detach().clone() for p in m.parameters()]


def _flip_and_noise(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(batch.shape[0], generator=gen, device=batch.device) < 0.5
    out = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    return out + 0.05 * torch.randn(out.shape, generator=gen, device=batch.device)


@pytest.mark.parametrize("augment", [None, _flip_and_noise])
def test_same_seed_gives_bitwise_identical_predictions(augment):
    p1, w1 = _run(0, augment)
    p2, w2 = _run(0, augment)
    assert np.array_equal(p1, p2)
    assert all(torch.equal(a, b) for a, b in zip(w1, w2))
    p3, _ = _run(1, augment)
    assert not np.array_equal(p1, p3)


def test_fmanet_training_is_deterministic():
    (_, p1), (_, p2) = train_twice("fmanet", 6, n=24, epochs=2, batch_size=8, seed=3)
    assert np.array_equal(p1, p2)


def test_memory_format_follows_the_model_unless_overridden():
    assert memory_format_for(create_model("fmanet", 6, 3)) == torch.channels_last
    assert memory_format_for(create_model("fmanet", 6, 3, backbone="timm:resnet10t")) == torch.contiguous_format
    assert memory_format_for(create_model("ststnet", 3, 3)) == torch.channels_last  # one-stream STSTNet: NHWC pools
    assert memory_format_for(create_model("fmanet", 6, 3), "contiguous") == torch.contiguous_format
    assert memory_format_for(_tiny(), "channels_last") == torch.channels_last
    with pytest.raises(ValueError, match="memory_format"):
        TrainConfig(memory_format="nhwc").validate()


def test_channels_last_fmanet_computes_the_same_function():
    x = torch.randn(16, 6, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.arange(16) % 3
    seed_everything(0)
    m = create_model("fmanet", 6, 3)
    fit(m, x, y, TrainConfig(epochs=1, batch_size=8, **CPU))  # auto: trained in channels_last
    conv = next(p for p in m.parameters() if p.ndim == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    p_nhwc = predict_proba(m, x.contiguous(memory_format=torch.channels_last))
    m.to(memory_format=torch.contiguous_format)
    p_nchw = predict_proba(m, x)
    np.testing.assert_allclose(p_nhwc, p_nchw, atol=1e-5)


def test_fused_and_looped_optimizers_take_the_same_first_steps():
    """The fused kernel is the same update rule: epoch-0 losses agree to float rounding."""
    x, y = _data(n=48)
    losses = {}
    for f in (True, False):
        m = _tiny()
        r = fit(m, x, y, TrainConfig(epochs=2, batch_size=16, fused=f, **CPU))
        losses[f] = [h["train_loss"] for h in r.history]
    assert losses[True][0] == pytest.approx(losses[False][0], rel=1e-4)
    assert losses[True][1] == pytest.approx(losses[False][1], rel=1e-3)


def test_deterministic_mode_restores_global_flags():
    before = torch.are_deterministic_algorithms_enabled()
    with deterministic_mode(True):
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before


def test_early_stopping_restores_the_best_validation_epoch():
    x, y = _data(n=60)
    vx, vy = _data(n=30, seed=5)
    vy = vy[torch.randperm(30, generator=torch.Generator().manual_seed(0))]  # shuffled: val loss rises
    m = _tiny()
    cfg = TrainConfig(epochs=20, batch_size=16, lr=5e-2, early_stopping_patience=3, **CPU)
    r = fit(m, x, y, cfg, val=(vx, vy))
    losses = [h["val_loss"] for h in r.history]
    assert r.best_epoch == int(np.argmin(losses))
    assert r.stopped_early and r.epochs_run == r.best_epoch + 3 + 1 < 20
    # the restored weights are the best epoch's: their val loss is that epoch's
    with torch.no_grad():
        restored = float(nn.functional.cross_entropy(m.eval()(vx), vy))
    assert restored == pytest.approx(losses[r.best_epoch], rel=1e-6)
    assert losses[-1] != pytest.approx(losses[r.best_epoch], rel=1e-6)  # the last epoch was not kept


def test_monitor_val_uf1_picks_the_best_uf1_then_lowest_loss():
    x, y = _data(n=60)
    vx, vy = _data(n=30, seed=5)
    r = fit(_tiny(), x, y, TrainConfig(epochs=12, batch_size=16, lr=5e-2, early_stopping_patience=100,
                                       monitor="val_uf1", **CPU), val=(vx, vy))
    keys = [(h["val_uf1"], -h["val_loss"]) for h in r.history]
    assert r.best_epoch == max(range(len(keys)), key=lambda i: (keys[i], -i))
    assert r.epochs_run == 12 and not r.stopped_early


def test_val_without_patience_is_a_fixed_budget_and_eval_every():
    x, y = _data(n=30)
    r = fit(_tiny(), x, y, TrainConfig(epochs=5, eval_every=2, **CPU), val=_data(n=12, seed=2))
    assert r.best_epoch == -1 and r.epochs_run == 5
    assert ["val_loss" in h for h in r.history] == [False, True, False, True, True]


def test_patience_without_val_is_ignored(caplog):
    x, y = _data(n=30)
    with caplog.at_level(logging.INFO, logger="bench.training.engine"):
        r = fit(_tiny(), x, y, TrainConfig(epochs=3, early_stopping_patience=1, **CPU))
    assert r.epochs_run == 3 and r.best_epoch == -1
    assert "no validation split" in caplog.text


@pytest.mark.parametrize("opt, sched", [("sgd", "step"), ("adamw", "cosine"), ("adam", "none")])
def test_optimizers_and_schedules(opt, sched):
    x, y = _data(n=30)
    cfg = TrainConfig(epochs=4, optimizer=opt, scheduler=sched, lr=0.1, step_size=2, step_gamma=0.5, **CPU)
    r = fit(_tiny(), x, y, cfg)
    lrs = [h["lr"] for h in r.history]
    expected = {"step": [0.1, 0.1, 0.05, 0.05],
                "cosine": [0.1 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)],
                "none": [0.1] * 4}[sched]
    assert lrs == pytest.approx(expected)


def test_losses_weights_and_clipping_run():
    x, y = _data(n=30)
    for kw in (dict(loss="focal", class_weights="balanced"), dict(label_smoothing=0.1, grad_clip=1.0),
               dict(class_weights=[1.0, 2.0, 0.5])):
        r = fit(_tiny(), x, y, TrainConfig(epochs=2, **kw, **CPU))
        assert np.isfinite(r.history[-1]["train_loss"])
    with pytest.raises(ValueError, match="3 classes"):
        fit(_tiny(), x, y, TrainConfig(epochs=1, class_weights=[1.0, 2.0], **CPU))


def test_bad_input_is_named():
    x, y = _data(n=20)
    x[7, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"train: non-finite values in samples \[7\]"):
        fit(_tiny(), x, y, TrainConfig(epochs=1, **CPU))
    x, y = _data(n=20)
    with pytest.raises(ValueError, match="labels \\[5\\] >= num_classes=3"):
        fit(_tiny(), x, torch.where(y == 2, 5, y), TrainConfig(epochs=1, **CPU))
    with pytest.raises(ValueError, match="val: y must be"):
        fit(_tiny(), x, y, TrainConfig(epochs=1, **CPU), val=(x, y[:3]))


def test_diverging_training_raises_instead_of_nan():
    x, y = _data(n=20)
    m = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3))  # no BatchNorm to absorb the blow-up
    with pytest.raises(FloatingPointError, match="training loss became (nan|inf) in epoch"):
        fit(m, x * 1e10, y, TrainConfig(epochs=20, lr=1e10, optimizer="sgd", **CPU))


def test_resnet_with_trailing_single_sample_batch():
    """33 samples, batch 32: the lone 33rd sample would break BatchNorm on ResNet's 1x1 maps at 28 px."""
    x, y = _data(n=33, size=28)
    seed_everything(0)
    r = fit(create_model("timm:resnet10t", 3, 3), x, y, TrainConfig(epochs=1, **CPU))
    assert r.epochs_run == 1


# ------------------------------------------------------------------------------ predictions

def test_predict_proba_is_a_pure_function_of_the_weights():
    x, y = _data(n=20)
    m = _tiny()
    fit(m, x, y, TrainConfig(epochs=2, **CPU))
    m.train()
    before = [p.clone() for p in m.state_dict().values()]
    p = predict_proba(m, x, batch_size=7)
    assert p.shape == (20, 3) and p.dtype == np.float64
    assert np.allclose(p.sum(1), 1.0)
    assert m.training  # mode restored
    assert all(torch.equal(a, b) for a, b in zip(before, m.state_dict().values()))
    assert np.array_equal(p, predict_proba(m, x, batch_size=7))  # the same call twice: bit-identical
    # Another batch size may pick another convolution kernel (oneDNN on AMX / AVX-512-FP16 cores does),
    # which rounds differently: equal up to float32 rounding, not bit for bit.
    np.testing.assert_allclose(p, predict_proba(m, x, batch_size=20), rtol=0, atol=1e-6)


def test_predict_aux_concatenates_fmanet_outputs_over_batches():
    torch.manual_seed(0)
    x = torch.randn(10, 6, 28, 28)
    m = create_model("fmanet", 6, 3)
    probs, aux = predict_aux(m, x, batch_size=4)
    assert probs.shape == (10, 3)
    assert aux["fusion_weights"].shape == (10, 2) and np.allclose(aux["fusion_weights"].sum(1), 1)
    assert aux["attention"].shape == (10, 7, 7) and aux["gates"].shape == (10, 2, 28, 28)
    assert np.allclose(probs, predict_proba(m, x))
    _, aux_sum = predict_aux(create_model("fmanet", 6, 3, fusion="sum", spatial_attention=False), x)
    assert aux_sum["fusion_weights"] is None and aux_sum["attention"] is None
    _, none = predict_aux(create_model("ststnet", 3, 3), x[:, :3])
    assert none == {}


# ----------------------------------------------------------------------------------- devices

def test_device_resolution():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_amp_on_cpu_is_ignored_with_a_warning(caplog):
    x, y = _data(n=20)
    with caplog.at_level(logging.WARNING, logger="bench.training.engine"):
        r = fit(_tiny(), x, y, TrainConfig(epochs=1, amp=True, **CPU))
    assert r.amp is False and "only used on CUDA" in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_with_amp_trains_and_predicts():
    x, y = _data(n=40, size=28)
    seed_everything(0)
    m = create_model("fmanet", 6, 3)
    r = fit(m, torch.cat([x, x], 1), y, TrainConfig(epochs=2, device="cuda", amp=True),
            val=(torch.cat([x, x], 1)[:12], y[:12]), augment=_flip_and_noise)
    assert r.device.startswith("cuda") and r.amp
    assert next(m.parameters()).is_cuda
    assert np.isfinite(predict_proba(m, torch.cat([x, x], 1))).all()
