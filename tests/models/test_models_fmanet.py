"""FMANet: each ablation switch changes the graph exactly as models/fmanet.py documents."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn import functional as F

from models import create_model
from models.fmanet import FMANet


def _n(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _make(**kw) -> FMANet:
    torch.manual_seed(0)
    return create_model("fmanet", kw.pop("in_chans", 6), 3, **kw).eval()


X = torch.randn(4, 6, 28, 28, generator=torch.Generator().manual_seed(1))


def test_default_aux_outputs():
    m = _make()
    logits, aux = m(X, return_aux=True)
    assert logits.shape == (4, 3)
    w = aux["fusion_weights"]
    assert w.shape == (4, 2) and (w >= 0).all()
    assert torch.allclose(w.sum(1), torch.ones(4))
    assert aux["attention"].shape == (4, 7, 7)  # cnn encoder, output stride 4
    assert ((aux["attention"] > 0) & (aux["attention"] < 1)).all()
    assert aux["gates"].shape == (4, 2, 28, 28)  # spatial gates at input resolution, one per phase
    assert torch.equal(m(X), logits)
    from bench.training.fold import has_aux

    assert has_aux(m)  # the runner asks predict_aux for what a model's forward(return_aux=True) explains
    assert not has_aux(create_model("ststnet", 3, 3))


@pytest.mark.parametrize("size", [28, 64, 112])
def test_aux_shapes_follow_input_size(size):
    _, aux = _make()(torch.randn(2, 6, size, size), return_aux=True)
    assert aux["attention"].shape == (2, size // 4, size // 4)
    assert aux["gates"].shape == (2, 2, size, size)


def test_modulation_switch():
    none, spatial, se = (_make(modulation=k) for k in ("none", "spatial", "se"))
    gate_params = (1 * 8 * 9 + 8) + (8 * 1 * 9 + 1)  # conv 1->8 3x3, conv 8->1 3x3
    se_params = (32 * 8 + 8) + (8 * 32 + 32)  # C=32 (default widths 8, 16, 32), reduction 4
    assert _n(spatial) - _n(none) == 2 * gate_params
    assert _n(se) - _n(none) == 2 * se_params
    assert none.stream_modules[0].gate is None and none.stream_modules[0].se is None
    assert spatial.stream_modules[0].gate is not None and se.stream_modules[0].se is not None
    assert none(X, return_aux=True)[1]["gates"] is None
    g = se(X, return_aux=True)[1]["gates"]
    assert g.shape == (4, 2, 32) and ((g > 0) & (g < 1)).all()


def test_spatial_gate_multiplies_the_input():
    """With the gate forced to 1 (large bias), spatial modulation equals no modulation."""
    spatial, none = _make(modulation="spatial"), _make(modulation="none")
    none.load_state_dict({k: v for k, v in spatial.state_dict().items() if ".gate." not in k})
    with torch.no_grad():
        for s in spatial.stream_modules:
            s.gate.net[-1].weight.zero_()
            s.gate.net[-1].bias.fill_(50.0)  # sigmoid(50) == 1 in float32
    assert torch.allclose(spatial(X), none(X), atol=1e-6)


def test_fusion_switch():
    att, summ, cat = (_make(fusion=k) for k in ("attention", "sum", "concat"))
    assert summ.fuse is None and att.fuse is not None and cat.fuse is not None
    mlp_params = (2 * 32 * 32 + 32) + (32 * 2 + 2)  # C=32 (default widths 8, 16, 32), 32 hidden
    assert _n(att) - _n(summ) == mlp_params
    assert _n(cat) - _n(summ) == 2 * 32 * 32 + 2 * 32  # 1x1 conv (no bias) + BN
    assert summ(X, return_aux=True)[1]["fusion_weights"] is None
    assert cat(X, return_aux=True)[1]["fusion_weights"] is None


def test_attention_fusion_known_answer():
    """Zeroed scoring layer -> weights exactly (0.5, 0.5) -> logits - b = (sum-fusion logits - b) / 2."""
    att = _make(fusion="attention", spatial_attention=False)
    summ = _make(fusion="sum", spatial_attention=False)
    summ.load_state_dict({k: v for k, v in att.state_dict().items() if not k.startswith("fuse.")})
    with torch.no_grad():
        att.fuse.mlp[-1].weight.zero_()
        att.fuse.mlp[-1].bias.zero_()
        la, aux = att(X, return_aux=True)
        ls = summ(X)
    b = att.classifier.bias
    assert torch.allclose(aux["fusion_weights"], torch.full((4, 2), 0.5))
    assert torch.allclose(la - b, (ls - b) / 2, atol=1e-5)


def test_spatial_attention_switch():
    on, off = _make(spatial_attention=True), _make(spatial_attention=False)
    assert off.spatial_attention is None and on.spatial_attention is not None
    assert _n(on) - _n(off) == 2 * 7 * 7  # conv 2->1, 7x7, no bias
    assert off(X, return_aux=True)[1]["attention"] is None


def test_shared_weights_switch():
    sep, shared = _make(shared_weights=False), _make(shared_weights=True)
    assert len(sep.stream_modules) == 2 and len(shared.stream_modules) == 1
    assert _n(sep) - _n(shared) == _n(sep.stream_modules[1])
    # one stream for both phases: swapping the phases swaps the sum-fusion inputs -> same logits
    m = _make(shared_weights=True, fusion="sum")
    swapped = torch.cat([X[:, 3:], X[:, :3]], dim=1)
    assert torch.allclose(m(X), m(swapped), atol=1e-5)


def test_single_stream_reduces_to_single_phase_model():
    one6 = _make(streams="onset_apex")
    one3 = _make(streams="onset_apex", in_chans=3)
    off6 = _make(streams="apex_offset")
    both = _make()
    assert len(one6.stream_modules) == 1 and one6.fuse is None and one6.fusion == "none"
    assert _n(one6) == _n(one3) < _n(both)
    with torch.no_grad():
        assert torch.equal(one6(X), one3(X[:, :3]))  # from the stack it takes phase 1
        off6.load_state_dict(one3.state_dict())
        assert torch.equal(off6(X), one3(X[:, 3:]))  # ... or phase 2
        x2 = X.clone()
        x2[:, 3:] = torch.randn(4, 3, 28, 28)  # phase 2 is ignored by the onset_apex model
        assert torch.equal(one6(x2), one6(X))
    assert one6(X, return_aux=True)[1]["fusion_weights"] is None
    assert one6(X, return_aux=True)[1]["gates"].shape == (4, 1, 28, 28)


def test_timm_backbone_option():
    m = _make(backbone="timm:resnet18", modulation="se")
    assert m.stream_modules[0].num_features == 512
    logits, aux = m(torch.randn(2, 6, 64, 64), return_aux=True)
    assert logits.shape == (2, 3) and aux["attention"].shape == (2, 2, 2)


@pytest.mark.parametrize(
    "bad, match",
    [({"modulation": "gate"}, "modulation"), ({"fusion": "max"}, "fusion"), ({"streams": "one"}, "streams"),
     ({"backbone": "vgg"}, "backbone"), ({"in_chans": 3}, "two-phase stack"), ({"magnitude_index": 3}, "magnitude")],
)
def test_bad_switch_values_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        _make(**bad)


COMBOS = list(itertools.product(["none", "spatial", "se"], ["attention", "sum", "concat"], [True, False],
                                [False, True]))


@pytest.mark.parametrize("modulation, fusion, spatial_attention, shared", COMBOS)
def test_gradient_reaches_every_parameter_for_every_switch_combination(modulation, fusion, spatial_attention,
                                                                       shared):
    torch.manual_seed(0)
    m = create_model("fmanet", 6, 3, modulation=modulation, fusion=fusion, spatial_attention=spatial_attention,
                     shared_weights=shared).train()
    loss = F.cross_entropy(m(torch.randn(6, 6, 28, 28)), torch.tensor([0, 1, 2, 0, 1, 2]))
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing
