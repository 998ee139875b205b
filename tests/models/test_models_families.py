"""Every model family: registration, configs, output shapes at 28/64/112 px, gradients reach every parameter."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from bench.core.registry import UnknownNameError
from models import MODELS, build_model, create_model, list_models, model_skip

from tests.helpers.registry_specs import CONF, model_config, model_specs  # noqa: E402  (model × input specs from the registries)

SPECS = model_specs()


def _ids(spec):
    return spec[0]


def test_all_families_registered():
    assert {"ststnet", "off_apexnet", "fmanet", "timm:<arch>"} <= set(list_models())


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
@pytest.mark.parametrize("size", [28, 64, 112, (28, 40)])
def test_output_shape(spec, size):
    _, node, channels = spec
    c = len(channels)
    h, w = (size, size) if isinstance(size, int) else size
    torch.manual_seed(0)
    model = build_model(node, in_chans=c, num_classes=5, channels=channels).eval()
    with torch.no_grad():
        out = model(torch.randn(2, c, h, w))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()


def _assert_all_grads(model, x, y):
    """Every parameter gets a finite, non-zero gradient. Two steps: timm zero-initialises the last BN
    of each residual block, which blocks the gradient of the conv before it until gamma moves."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, f"parameters outside the graph: {missing}"
        opt.step()
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not bad and not zero, f"non-finite: {bad}; zero: {zero}"


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_gradient_reaches_every_parameter(spec):
    _, node, channels = spec
    c = len(channels)
    torch.manual_seed(0)
    model = build_model(node, in_chans=c, num_classes=3, channels=channels).train()
    _assert_all_grads(model, torch.randn(6, c, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2]))


@pytest.mark.parametrize("path", sorted(CONF.glob("[!_]*.yaml")), ids=lambda p: p.stem)
def test_every_model_config_builds(path):
    from representations import create_representation, list_representations

    node = model_config(path.stem)  # composed: a preset has its parent's keys; named for its registry key
    cfg = dict(node)
    name = cfg.pop("name")
    taken = [r for r in map(create_representation, list_representations()) if not model_skip(node, r)[0]]
    assert taken, f"{path.stem} takes no registered representation"
    c = len(taken[0].channels)
    model = create_model(name, c, 3, channels=taken[0].channels, **cfg).eval()
    with torch.no_grad():
        assert model(torch.randn(2, c, 28, 28)).shape == (2, 3)


def test_model_configs_cover_every_family():
    names = {model_config(p.stem)["name"] for p in CONF.glob("[!_]*.yaml")}
    assert {"ststnet", "off_apexnet", "fmanet", "timm:resnet18", "timm:resnet10t"} <= names
    assert {n.split(":")[0] for n in names} >= set(MODELS.names())  # every registered family has a config


def test_specs_cover_every_family_and_channel_count():
    """The registry-drawn specs reach every family, the 3- and 6-channel inputs and the study variants."""
    families = {s[1]["name"].split(":")[0] for s in SPECS}
    assert families == set(MODELS.names())
    assert {len(s[2]) for s in SPECS} >= {3, 6}
    assert any(s[1]["name"] == "fmanet" and s[1].get("streams") == "onset_apex" and len(s[2]) == 3 for s in SPECS)


# --------------------------------------------------------------------------------- STSTNet

def test_ststnet_matches_paper_layout_at_28px():
    """At 28 px: 3+5+8 maps of 10x10 after the 3/3 max-pool, 2x2 average pool -> 400 features."""
    torch.manual_seed(0)
    m = create_model("ststnet", 3, 3)
    m.train()(torch.randn(8, 3, 28, 28))  # non-trivial BatchNorm running statistics
    m.eval()
    assert m.branch_channels == (3, 5, 8) and m.streams[0].out_channels == 16
    assert m.fc.in_features == 400
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        # the three streams computed separately (each from its own filters), as the paper draws them
        h = torch.cat([m.stream(k, x) for k in range(3)], dim=1)
        assert h.shape == (2, 16, 10, 10)
        manual = m.fc(F.avg_pool2d(h, 2).flatten(1))  # the paper's fixed pool
        assert torch.allclose(m(x), manual, atol=1e-6)


# ----------------------------------------------------------------------------- OFF-ApexNet

def test_off_apexnet_stream_channels_auto():
    from models.off_apexnet import resolve_stream_channels

    assert resolve_stream_channels(2, "auto") == [[0], [1]]
    assert resolve_stream_channels(3, "auto") == [[0, 2], [1, 2]]
    assert resolve_stream_channels(6, None) == [[0, 3, 2, 5], [1, 4, 2, 5]]
    with pytest.raises(ValueError, match="in_chans=4"):
        resolve_stream_channels(4, "auto")
    with pytest.raises(ValueError, match="out of range"):
        resolve_stream_channels(3, [[0], [3]])
    with pytest.raises(ValueError, match="two non-empty"):
        resolve_stream_channels(3, [[0]])


def test_off_apexnet_paper_layout_and_explicit_channels():
    torch.manual_seed(0)
    m = create_model("off_apexnet", 3, 3, stream_channels=[[0], [1]]).eval()
    assert m.classifier[0].in_features == 2 * 16 * 7 * 7  # 1568, as in the paper at 28 px
    assert [l.out_features for l in m.classifier if isinstance(l, torch.nn.Linear)] == [1024, 1024, 3]
    x = torch.randn(2, 3, 28, 28)
    x2 = x.clone()
    x2[:, 2] = torch.randn(2, 28, 28)  # channel 2 is not routed to any stream
    with torch.no_grad():
        assert torch.equal(m(x), m(x2))
        x3 = x.clone()
        x3[:, 1] += 1.0
        assert not torch.equal(m(x), m(x3))


# ------------------------------------------------------------------------------------ timm

def test_timm_unknown_arch_suggests():
    with pytest.raises(UnknownNameError, match="resnet18"):
        create_model("timm:resnet18x", 3, 3)


def test_timm_small_input_stem_keeps_resolution():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        plain = create_model("timm:resnet18", 3, 3).eval().forward_features(x)
        small = create_model("timm:resnet18", 3, 3, small_input_stem=True).eval().forward_features(x)
        mnet = create_model("timm:mobilenetv3_small_050", 3, 3, small_input_stem=True).eval()
        assert mnet.conv_stem.stride == (1, 1)
        assert mnet(x).shape == (1, 3)
    assert plain.shape[-2:] == (1, 1) and small.shape[-2:] == (4, 4)
    with pytest.raises(ValueError, match="small_input_stem"):
        create_model("timm:convnext_atto", 3, 3, small_input_stem=True)


def test_timm_in_chans_and_no_pretrained_by_default():
    import inspect

    from models.timm_models import timm_model

    assert inspect.signature(timm_model).parameters["pretrained"].default is False  # offline by default
    m = create_model("timm:resnet18", 6, 4)
    assert m.conv1.in_channels == 6 and m.fc.out_features == 4


def test_unknown_model_lists_families():
    with pytest.raises(UnknownNameError, match="ststnet"):
        create_model("ststnett", 3, 3)
