"""Cell parameters as columns (benchopt's p_<axis>_<param>), never parsed back from labels."""

from __future__ import annotations

import json

from bench.results.tables import PARAM_ABSENT, cell_columns, collect, decode_param, encode_param
from bench.plan.planner import plan_study


def test_cell_columns_hold_each_option_and_resolved_parameter():
    cfg = {"dataset": {"name": "synthetic", "n_subjects": 4, "overrides": {}},
           "flow": {"backend": "tvl1", "params": {"tau": 0.25, "useInitialFlow": False}, "size": 112},
           "representation": {"name": "cof", "theta1": 0.3, "theta2": 0.7, "channels": None},
           "model": {"name": "fmanet", "widths": [16, 32], "backbone": "cnn"}}
    cols = cell_columns({"dataset": "synthetic", "flow": "tvl1", "representation": "cof", "model": "fmanet"}, cfg)
    assert cols == {
        "p_dataset": "synthetic", "p_dataset_n_subjects": "4", "p_dataset_overrides": "{}",
        "p_flow": "tvl1", "p_flow_backend": "tvl1", "p_flow_params.tau": "0.25",
        "p_flow_params.useInitialFlow": "false", "p_flow_size": "112",
        "p_representation": "cof", "p_representation_theta1": "0.3", "p_representation_theta2": "0.7",
        "p_representation_channels": "null",
        "p_model": "fmanet", "p_model_widths": "[16, 32]", "p_model_backbone": "cnn",
    }
    assert {k: decode_param(v)[1] for k, v in cols.items() if k.startswith("p_representation_")} == \
        {"p_representation_theta1": 0.3, "p_representation_theta2": 0.7, "p_representation_channels": None}
    assert decode_param(encode_param([16, 32])) == (True, [16, 32])
    assert decode_param(PARAM_ABSENT) == (False, None) and decode_param(float("nan")) == (False, None)


def test_collect_marks_another_options_parameter_absent_not_nan():
    base = {"study": "s", "dataset": "d", "flow": "f", "model": "m", "seed": 0, "fold": "a", "status": "ok"}
    recs = [{"row": {**base, "representation": "cof[theta1=0.3]", "p_representation": "cof",
                     "p_representation_theta1": "0.3"}},
            {"row": {**base, "representation": "single_phase", "p_representation": "single_phase"}}]
    results, _ = collect(recs)
    assert results.set_index("representation")["p_representation_theta1"].to_dict() == \
        {"cof[theta1=0.3]": "0.3", "single_phase": PARAM_ABSENT}


def test_planned_cells_carry_their_item_parameters_as_values():
    """ablation_theta's labelled items: the parameter columns agree with each cell's resolved config."""
    plan = plan_study(["study=ablation_theta"])
    for cell in plan.cells:
        cols = cell_columns({a: getattr(cell, a).option for a in ("dataset", "flow", "representation", "model")},
                            cell.cfg)
        rep = {k: v for k, v in cell.cfg["representation"].items() if k != "name"}
        got = {k[len("p_representation_"):]: decode_param(v)[1] for k, v in cols.items()
               if k.startswith("p_representation_")}
        assert got == json.loads(json.dumps(rep)), cell.label
        assert cols["p_representation"] == cell.representation.option
