"""Each unit records its trained model's size (n_params, flops_per_sample; bench.training.costs), counted
after training and prediction so that nothing the unit records changes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.results.tables import RESULT_COLUMNS, collect
from bench.training import costs
from bench.training.units import run_unit
from models import build_model
from tests.helpers.tasks import make_task as _task


def test_parameters_of_a_known_model():
    # STSTNet on (u1, v1, m1): 3 convs 3->3/5/8 (3x3, bias) + BN (weight, bias) + fc 400->3
    model = build_model({"name": "ststnet"}, in_chans=3, num_classes=3, channels=("u1", "v1", "m1"))
    n = (3 * 3 * 9 + 3 + 6) + (3 * 5 * 9 + 5 + 10) + (3 * 8 * 9 + 8 + 16) + (400 * 3 + 3)
    assert costs.n_params(model) == n == 1683
    # convolutions (16 output channels, 28 x 28, 3 x 3 x 3 each) and the fc layer, 2 per multiply-add
    assert costs.flops_per_sample(model, (3, 28, 28)) == 2 * 28 * 28 * 9 * 3 * 16 + 2 * 400 * 3


@pytest.mark.parametrize("bias", [True, False])
def test_linear_layer_by_hand(bias):
    m = nn.Linear(7, 5, bias=bias)
    assert costs.model_costs(m, (7,)) == {"n_params": 7 * 5 + 5 * bias, "flops_per_sample": 2 * 7 * 5}


@pytest.mark.parametrize("padding, out", [(1, 10), (0, 8)])
def test_conv_layer_by_hand(padding, out):
    m = nn.Conv2d(3, 4, kernel_size=3, padding=padding)
    assert costs.n_params(m) == 4 * 3 * 3 * 3 + 4
    # each output value: 3 x 3 x 3 multiply-adds; 4 x out x out outputs
    assert costs.flops_per_sample(m, (3, 10, 10)) == 2 * (4 * out * out) * (3 * 3 * 3)


def test_counting_changes_no_weight_buffer_mode_or_random_stream():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(), nn.LazyLinear(3))
    model(torch.randn(2, 2, 8, 8))  # materialise the lazy layer, move the BN statistics off their start
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(5)
    costs.model_costs(model, (2, 8, 8))
    after_draw = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after_draw, torch.rand(3))  # the RNG stream is where it was
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_an_uncountable_forward_keeps_the_parameter_count():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            raise RuntimeError("no")

    got = costs.model_costs(Broken(), (2,))
    assert got["n_params"] == 6 and got["flops_per_sample"] != got["flops_per_sample"]  # NaN


def _strip(rec: dict) -> dict:
    """What a unit records, less its clock readings and its size columns."""
    row = {k: v for k, v in rec["row"].items()
           if not k.endswith(("_seconds", "_at")) and k not in costs.COLUMNS}
    hist = [{k: v for k, v in h.items() if k != "seconds"} for h in rec["history"]]
    return {"row": row, "predictions": rec["predictions"], "history": hist}


def test_a_unit_records_its_size_and_nothing_else_changes(tmp_path, monkeypatch):
    task = _task(tmp_path)
    rec = run_unit(task)
    row = rec["row"]
    assert row["status"] == "ok", row["error"]
    model = build_model({"name": "ststnet"}, in_chans=3, num_classes=3, channels=task.channels)
    assert row["n_params"] == costs.n_params(model)
    assert row["flops_per_sample"] == costs.flops_per_sample(model, task.x.shape[1:]) > 0
    assert "config_hash" not in row and row["cell_hash"] == "h"
    monkeypatch.setattr(costs, "model_costs", lambda model, shape: {})  # the same unit, never counted
    plain = run_unit(task)
    assert _strip(plain) == _strip(rec)  # predictions (probabilities), scores and history bit-identical


def test_results_table_has_the_size_columns_and_drops_config_hash():
    assert {"n_params", "flops_per_sample"} <= set(RESULT_COLUMNS) and "config_hash" not in RESULT_COLUMNS
    base = {"study": "s", "dataset": "d", "flow": "f", "representation": "r", "model": "m", "seed": 0,
            "status": "ok"}
    old = {"row": {**base, "fold": "a", "config_hash": "h"}}  # a unit record written before the change
    new = {"row": {**base, "fold": "b", "n_params": 10, "flops_per_sample": 20.0}}
    results, _ = collect([old, new])
    assert "config_hash" not in results.columns
    assert results["n_params"].isna().tolist() == [True, False]
