"""``python -m benchmarks.roofline``: its floor logic has known answers, and it runs on a tiny setting
(no timing asserts: a shared machine makes every time noise)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks import roofline


def _linear_step(batch: int, n_in: int, n_out: int, input_grad: bool):
    torch.manual_seed(0)
    layer = nn.Linear(n_in, n_out)
    x = torch.randn(batch, n_in, requires_grad=input_grad)

    def step():
        layer.zero_grad(set_to_none=True)
        layer(x).sum().backward()
    return step


def test_one_linear_layer_counts_forward_and_both_backward_products():
    b, i, o = 8, 24, 40
    ops, flops = roofline.capture_step(_linear_step(b, i, o, input_grad=True))
    assert flops == 2 * b * i * o * 3  # forward, grad of the input, grad of the weight
    assert sorted(op.name for op in ops) == ["addmm", "mm", "mm"]
    floor = roofline.compute_floor(ops, repeats=1)
    assert floor["flops"] == flops and floor["n_ops"] == 3 and floor["seconds"] > 0
    assert set(floor["by_op"]) == {"addmm", "mm"}


def test_an_input_without_grad_skips_its_product():
    b, i, o = 4, 16, 8
    ops, flops = roofline.capture_step(_linear_step(b, i, o, input_grad=False))
    assert flops == 2 * b * i * o * 2 and len(ops) == 2


def test_a_convolution_is_replayed_with_its_backward():
    conv = nn.Conv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    ops, flops = roofline.capture_step(lambda: conv(x).sum().backward())
    assert [op.name for op in ops] == ["convolution", "convolution_backward"]
    fwd = 2 * 2 * 8 * 8 * 5 * 3 * 9
    assert flops == fwd * 2  # weight grad only: the input needs none
    assert roofline.compute_floor(ops, repeats=1)["flops"] == flops
    replayed = roofline._materialise(ops[0].args, torch.Generator().manual_seed(0))[0]
    assert replayed.shape == x.shape and replayed.stride() == x.stride()  # the layout travels


def test_every_op_of_a_step_is_replayed_alone_and_sorted_into_kinds():
    """One Linear + ReLU + sum, forward and backward: every aten op is captured (not only the floor's
    products), each replayed on its own, and the GEMMs' share is the floor ops' own."""
    torch.manual_seed(0)
    layer = nn.Linear(16, 8)
    x = torch.randn(4, 16)

    def step():
        layer.zero_grad(set_to_none=True)
        torch.relu(layer(x)).sum().backward()
    alone = roofline.kernels_alone(step, repeats=1)
    floor_ops, _ = roofline.capture_step(step)
    assert alone["n_ops"] > len(floor_ops) == 2  # addmm forward, mm for the weight grad
    assert alone["not_replayed"] == 0 and alone["seconds"] == pytest.approx(sum(alone["by_kind"].values()))
    assert alone["seconds"] > 0
    assert {"gemm/conv", "activation"} <= set(alone["by_kind"])


def test_the_composite_extrapolation_counts_cells_folds_epochs_and_seeds():
    """One ms per step everywhere: the 13 cells x 68 folds x the recipes' epochs x 14 steps x 3 seeds
    on 2 cores, in minutes; the floor and the target line scale with it."""
    rows = [{"model": m, "representation": rep, "achieved_s": 1e-3, "floor_s": 0.5e-3}
            for m, cells in roofline.COMPOSITE.items() for rep, _ in cells]
    epochs = {"off_apexnet": 40, "fmanet": 30, "ststnet": 20}
    t = roofline.composite_minutes(rows, epochs, steps_per_epoch=14)
    steps = 68 * 14 * (5 * 40 + 3 * 30 + 5 * 20)
    assert t["achieved"] == pytest.approx(steps * 1e-3 * 3 / 2 / 60)
    assert t["floor"] == pytest.approx(t["achieved"] / 2) and t["at_target"] == pytest.approx(t["floor"] * 1.5)
    assert {m: roofline.recipe_epochs(m) for m in epochs} == epochs  # the models' own recipes today
    with pytest.raises(ValueError, match="no measured row for ststnet on stored"):
        roofline.composite_minutes([r for r in rows if r["model"] != "ststnet"], epochs)


def test_adam_moves_seven_floats_per_parameter():
    assert roofline.optimizer_bytes(2_664_775, "adam") == 7 * 4 * 2_664_775  # OFF-ApexNet: ~74.6 MB
    assert round(roofline.optimizer_bytes(2_664_775) / 1e6, 1) == 74.6
    assert roofline.optimizer_bytes(10, "sgd") == 200
    bw = roofline.copy_bandwidth(4096, repeats=1, inner=1)
    assert bw["best"] == max(bw["copy"], bw["inplace"]) > 0


def test_profiler_events_fall_into_kinds():
    kinds = {e: roofline.kind_of(e) for e in (
        "aten::mm", "aten::convolution_backward", "aten::native_batch_norm_backward", "aten::bernoulli_",
        "aten::max_pool2d_with_indices", "aten::threshold_backward", "aten::_fused_adam_", "aten::empty",
        "aten::t", "autograd::engine::evaluate_function: AddmmBackward0", "aten::tanh", "aten::mul")}
    assert kinds == {
        "aten::mm": "gemm/conv", "aten::convolution_backward": "gemm/conv",
        "aten::native_batch_norm_backward": "normalisation", "aten::bernoulli_": "dropout",
        "aten::max_pool2d_with_indices": "pooling", "aten::threshold_backward": "activation",
        "aten::_fused_adam_": "optimizer", "aten::empty": "allocation", "aten::t": "Python/autograd",
        "autograd::engine::evaluate_function: AddmmBackward0": "Python/autograd",
        "aten::tanh": "other elementwise", "aten::mul": "other elementwise"}


def test_the_benchmark_runs_on_a_tiny_setting(capsys):
    rows = roofline.main(["--models", "ststnet", "--size", "16", "--batch-size", "8", "--steps-per-epoch", "2",
                          "--epochs", "1", "--repeats", "1", "--profile-steps", "2"])
    (r,) = rows
    assert r["representation"] == "stored" and r["channels"] == ["u1", "v1", "strain1"]
    assert r["replayed_flops"] == r["step_flops"] > 0  # every counted FLOP was replayed
    assert r["floor_s"] == r["compute_floor_s"] + r["memory_floor_s"]
    assert r["optimizer_bytes"] == 7 * 4 * r["params"]
    assert r["step_ops"] > r["floor_ops"] and r["kernels_alone_s"] > 0  # the whole step's ops, alone
    assert r["between_ops_s"] == max(0.0, r["achieved_s"] - r["kernels_alone_s"])
    assert r["achieved_vs_floor"] == r["achieved_s"] / r["floor_s"]
    assert "outside any op" in r["profile_s"]
    text = capsys.readouterr().out
    assert "achieved / floor x" in text and "profiled self time by kind" in text
