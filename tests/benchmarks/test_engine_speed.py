"""What the engine's speed work changed computes the same thing: trimmed convolution taps, the
one-stream STSTNet, the one-cycle schedule and the deterministic mode without the NaN fill."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bench.training.engine import TrainConfig, deterministic_mode, fit, predict_proba, seed_everything
from models import create_model
from models.timm_models import TapTrimmedConv2d, used_taps
from tests.helpers.training import train_twice

CPU = dict(device="cpu")


# ------------------------------------------------------------------------ trimmed convolution taps

def test_used_taps_known_answers():
    # 3x3, pad 1 on a 1x1 map: only the centre tap ever reads the input; no padding left
    assert used_taps(1, 3, 1, 1, 1) == (1, 2, 0, 0)
    # 3x3 stride 2, pad 1 on a 2x2 map: one output, reading input 0..1 through taps 1..2
    assert used_taps(2, 3, 2, 1, 1) == (1, 3, 0, 0)
    # 3x3, pad 1 on 2x2 (output 0 uses taps 1-2, output 1 taps 0-1) and on 7x7: every tap is needed
    assert used_taps(2, 3, 1, 1, 1) is None
    assert used_taps(7, 3, 1, 1, 1) is None
    # 5x5, pad 2 on a 2x2 map, stride 1: taps 1..3 (outputs 0, 1 read taps 2-3 and 1-2), pad 1 each side
    assert used_taps(2, 5, 1, 2, 1) == (1, 4, 1, 1)
    assert used_taps(4, 1, 1, 0, 1) is None  # a 1x1 kernel has nothing to trim


def test_trimmed_conv_equals_the_full_conv_everywhere():
    """Random kernel/stride/padding/dilation/size combinations, float64: same outputs, same gradients."""
    rng = random.Random(0)
    trimmed = 0
    for _ in range(300):
        n, k, s, p, d = rng.randint(1, 6), rng.choice([1, 2, 3, 5]), rng.randint(1, 3), rng.randint(0, 3), rng.randint(1, 2)
        if n + 2 * p - d * (k - 1) - 1 < 0:
            continue
        torch.manual_seed(0)
        full = nn.Conv2d(2, 3, k, stride=s, padding=p, dilation=d).double()
        trim = copy.deepcopy(full)
        trim.__class__ = TapTrimmedConv2d
        x = torch.randn(2, 2, n, n, dtype=torch.float64, requires_grad=True)
        out_f, out_t = full(x), trim(x)
        assert out_f.shape == out_t.shape
        torch.testing.assert_close(out_t, out_f, rtol=0, atol=1e-12)
        g = torch.randn_like(out_f)
        gx_f, gw_f = torch.autograd.grad(out_f, (x, full.weight), g)
        gx_t, gw_t = torch.autograd.grad(out_t, (x, trim.weight), g)
        torch.testing.assert_close(gx_t, gx_f, rtol=0, atol=1e-12)
        torch.testing.assert_close(gw_t, gw_f, rtol=0, atol=1e-12)
        trimmed += used_taps(n, k, s, p, d) is not None
    assert trimmed > 20  # the trimming path was exercised, not only the fallback


def test_timm_resnet_with_trimmed_taps_is_the_same_network():
    torch.manual_seed(0)
    # zero_init_last=False: timm zero-initialises each block's last BN, which would zero the
    # residual branches' gradients and make the comparison below vacuous
    full = create_model("timm:resnet10t", 3, 3, trim_padding_taps=False, zero_init_last=False)
    trim = create_model("timm:resnet10t", 3, 3, zero_init_last=False)  # trim_padding_taps: the default
    trim.load_state_dict(full.state_dict())  # same parameters and state-dict keys
    assert sum(isinstance(m, TapTrimmedConv2d) for m in trim.modules()) > 0
    assert not any(isinstance(m, TapTrimmedConv2d) for m in full.modules())
    x, y = torch.randn(8, 3, 28, 28), torch.arange(8) % 3
    lf, lt = F.cross_entropy(full(x), y), F.cross_entropy(trim(x), y)
    lf.backward()
    lt.backward()
    torch.testing.assert_close(lt, lf, rtol=1e-5, atol=1e-6)
    for (name, pf), pt in zip(full.named_parameters(), trim.parameters()):
        torch.testing.assert_close(pt.grad, pf.grad, rtol=1e-4, atol=1e-6, msg=name)
    # the last stage at 28 px: its 3x3/2 convolution on 2x2 maps has gradient only on taps 1..2 x 1..2,
    # its 3x3 convolution on 1x1 maps only on the centre tap, exactly as the full convolutions
    w1, w2 = trim.layer4[0].conv1.weight.grad, trim.layer4[0].conv2.weight.grad
    assert 0 < torch.count_nonzero(w1) == torch.count_nonzero(w1[:, :, 1:, 1:])
    assert 0 < torch.count_nonzero(w2) == torch.count_nonzero(w2[:, :, 1, 1])


# ------------------------------------------------------------------------------ one-stream STSTNet

def test_ststnet_one_stream_is_the_three_streams_in_training_mode_too():
    """Training mode (batch statistics, no dropout): the one 16-filter stream equals the three
    separate streams built from its weight slices, forward and backward."""
    torch.manual_seed(0)
    m = create_model("ststnet", 3, 3, dropout=0.0).train()
    x = torch.randn(6, 3, 28, 28)
    conv, bn = m.streams[0], m.streams[2]
    outs, a = [], 0
    for c in (3, 5, 8):
        h = torch.relu(F.conv2d(x, conv.weight[a:a + c], conv.bias[a:a + c], padding=1))
        h = F.batch_norm(h, None, None, bn.weight[a:a + c], bn.bias[a:a + c], training=True, eps=bn.eps)
        outs.append(F.max_pool2d(h, 3, 3, 1))
        a += c
    manual = m.fc(F.adaptive_avg_pool2d(torch.cat(outs, 1), 5).flatten(1))
    torch.testing.assert_close(m(x), manual, rtol=1e-5, atol=1e-6)
    assert m.preferred_memory_format == "channels_last"


def test_ststnet_training_is_bitwise_deterministic_in_channels_last():
    (m, p1), (_, p2) = train_twice("ststnet", 3, n=40, epochs=3, batch_size=16, seed=1)
    assert m.streams[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert np.array_equal(p1, p2)


# ------------------------------------------------------------------------------- one-cycle schedule

def test_onecycle_steps_per_batch_and_matches_torch():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    x, y = torch.randn(48, 3, 8, 8), torch.arange(48) % 3
    r = fit(m, x, y, TrainConfig(epochs=4, batch_size=16, lr=0.01, scheduler="onecycle", **CPU))
    # the same schedule built by hand: 3 batches per epoch, 12 steps; the history holds each epoch's last lr
    ref = torch.optim.lr_scheduler.OneCycleLR(torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=0.01),
                                              max_lr=0.01, total_steps=12)
    lrs = []
    for step in range(12):
        if step % 3 == 2:  # the lr each epoch's last batch used
            lrs.append(ref.optimizer.param_groups[0]["lr"])
        ref.optimizer.step()
        ref.step()
    assert [h["lr"] for h in r.history] == pytest.approx(lrs, rel=1e-12)
    assert r.history[-1]["lr"] == pytest.approx(0.01 / 25 / 1e4, rel=1e-6)  # torch's final_div_factor
    assert max(h["lr"] for h in r.history) < 0.01  # warm-up peak falls between epoch ends
    with pytest.raises(ValueError, match="scheduler"):
        TrainConfig(scheduler="one_cycle").validate()


# ------------------------------------------------------------------------------- deterministic mode

def test_deterministic_mode_skips_the_nan_fill_and_restores_it():
    before = torch.utils.deterministic.fill_uninitialized_memory
    with deterministic_mode(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory is False
    assert torch.utils.deterministic.fill_uninitialized_memory == before
