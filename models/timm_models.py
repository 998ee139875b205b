"""Any timm architecture as ``timm:<arch>``: ``create_model("timm:resnet18", in_chans, num_classes)``.

* ``pretrained=False`` by default: the suite runs without network. ``pretrained=True`` asks timm for
  ImageNet weights (download or local HF cache); timm then adapts the first convolution to
  ``in_chans`` (it sums/repeats the RGB filters), which is a weak prior for flow channels anyway.
* ``small_input_stem`` (default False): ImageNet stems downsample 4x before the first stage, so a
  28x28 flow map reaches ResNet's last stage as 1x1. With ``True`` the stem keeps full resolution
  (ResNet family: stem conv stride 1 and no stem max-pool, the usual CIFAR adaptation;
  EfficientNet/MobileNet family: ``conv_stem`` stride 1). It costs ~16x the compute, so it is an
  option for 28-48 px studies rather than the default; other architectures raise a clear error.
* Any other keyword (``drop_rate``, ``drop_path_rate``, ...) is passed to ``timm.create_model``.
"""

from __future__ import annotations

import difflib

from bench.compat import ensure_torchvision_importable
from bench.registry import UnknownNameError
from models.registry import register_model

ensure_torchvision_importable()  # before timm imports torchvision (see bench/compat.py)

import timm  # noqa: E402
from torch import nn  # noqa: E402


def _first_conv(module: nn.Module) -> nn.Conv2d:
    if isinstance(module, nn.Conv2d):
        return module
    for m in module.modules():  # deep stems (resnet10t, resnet*d) are Sequentials of convs
        if isinstance(m, nn.Conv2d):
            return m
    raise TypeError(f"no Conv2d found in stem module {type(module).__name__}")


def _reduce_stem_stride(model: nn.Module, arch: str) -> None:
    if hasattr(model, "conv1") and hasattr(model, "maxpool"):  # timm ResNet / ResNet-D / ResNet-T
        _first_conv(model.conv1).stride = (1, 1)
        model.maxpool = nn.Identity()
    elif hasattr(model, "conv_stem"):  # timm EfficientNet / MobileNetV3 / MixNet family
        model.conv_stem.stride = (1, 1)
    else:
        raise ValueError(
            f"small_input_stem is implemented for timm ResNet and EfficientNet/MobileNet families; "
            f"{arch!r} ({type(model).__name__}) has neither 'conv1'+'maxpool' nor 'conv_stem'"
        )


@register_model("timm")  # the family of every timm:<arch>; its function name is timm_model
def timm_model(
    arch: str,
    in_chans: int,
    num_classes: int,
    pretrained: bool = False,
    small_input_stem: bool = False,
    **kwargs,
) -> nn.Module:
    """Create ``timm.create_model(arch, pretrained, in_chans, num_classes, **kwargs)``."""
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        hint = f" Did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown timm architecture {arch!r}.{hint} (see timm.list_models())")
    model = timm.create_model(
        arch, pretrained=bool(pretrained), in_chans=int(in_chans), num_classes=int(num_classes), **kwargs
    )
    if small_input_stem:
        _reduce_stem_stride(model, arch)
    return model
