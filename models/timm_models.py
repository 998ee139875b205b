"""Any timm architecture as ``timm:<arch>``: ``create_model("timm:resnet18", in_chans, num_classes)``.

* ``pretrained=False`` by default: the suite runs without network. ``pretrained=True`` asks timm for
  ImageNet weights (download or local HF cache); timm then adapts the first convolution to
  ``in_chans`` (it sums/repeats the RGB filters), which is a weak prior for flow channels anyway.
* ``small_input_stem`` (default False): ImageNet stems downsample 4x before the first stage, so a
  28x28 flow map reaches ResNet's last stage as 1x1. With ``True`` the stem keeps full resolution
  (ResNet family: stem conv stride 1 and no stem max-pool, the usual CIFAR adaptation;
  EfficientNet/MobileNet family: ``conv_stem`` stride 1). It costs ~16x the compute, so it is an
  option for 28-48 px studies rather than the default; other architectures raise a clear error.
* ``stage_widths`` (ResNet family): the four stages' widths, timm's ``channels`` argument under
  another name (``channels`` names the input maps in this suite). ``timm_resnet10t_half.yaml`` uses
  it with ``stem_width: 16`` for the main study's half-width ResNet-10-T.
* Any other keyword (``drop_rate``, ``drop_path_rate``, ...) is passed to ``timm.create_model``.
* ``trim_padding_taps`` (default True): every plain ``nn.Conv2d`` skips the kernel taps that, at the
  input size it is called with, only ever multiply zero padding. Exact (the same function and the
  same gradients up to float rounding: a dropped tap's gradient is a sum of zeros), but not free to
  skip: at 28 px a ResNet's last stage sees 2x2 and 1x1 maps, where a 3x3 convolution is one 1x1
  (or 2x2) convolution plus eight (five) taps of zeros, and oneDNN computes those zeros: the
  512->512 3x3 convolution on 1x1 maps costs ~10x its 1x1 equivalent. A ResNet-10-T fold trains in
  ~0.89x the CPU time with the trim (``python -m benchmarks.engine --changes``). Parameters and
  state dict are unchanged (the module's class is swapped, not its weights).
"""

from __future__ import annotations

import difflib
import functools

from bench.compat import ensure_torchvision_importable
from bench.core.registry import UnknownNameError
from models.registry import register_model

ensure_torchvision_importable()  # before timm imports torchvision (see bench/compat.py)

import timm  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402


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


@functools.lru_cache(maxsize=4096)
def used_taps(n: int, k: int, s: int, p: int, d: int) -> tuple[int, int, int, int] | None:
    """Along one axis of a zero-padded convolution (input length ``n``, kernel ``k``, stride ``s``,
    padding ``p``, dilation ``d``): ``(first, last + 1, pad_before, pad_after)`` of the smallest tap
    range that holds every tap reading a real input element for some output, with the padding that
    gives the same outputs from that range (negative = crop); None when every tap is needed.
    Taps outside the range only ever read padding, so dropping them is exact."""
    out = (n + 2 * p - d * (k - 1) - 1) // s + 1
    if out < 1:
        return None
    used = [i for i in range(k) if any(0 <= o * s - p + i * d < n for o in range(out))]
    if not used or (used[0] == 0 and used[-1] == k - 1):
        return None
    i0, i1 = used[0], used[-1]
    before = p - i0 * d  # output 0's first tap now sits at input position -before
    length = (out - 1) * s + (i1 - i0) * d + 1  # padded length the trimmed kernel needs for `out` outputs
    return i0, i1 + 1, before, length - before - n


class _Taps(torch.autograd.Function):
    """``weight[:, :, r0:r1, c0:c1]`` as a contiguous tensor, with a backward that writes the slice's
    gradient into one zero tensor (autograd's two nested slices cost two zero-fills and two copies
    of the whole kernel's gradient)."""

    @staticmethod
    def forward(ctx, weight, r0: int, r1: int, c0: int, c1: int):  # noqa: D102
        ctx.shape, ctx.taps = weight.shape, (r0, r1, c0, c1)
        return weight[:, :, r0:r1, c0:c1].contiguous()

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        r0, r1, c0, c1 = ctx.taps
        out = grad.new_zeros(ctx.shape)
        out[:, :, r0:r1, c0:c1] = grad
        return out, None, None, None, None


class TapTrimmedConv2d(nn.Conv2d):
    """``nn.Conv2d`` that skips the kernel taps which only read zero padding at the input's size
    (see the module docstring); same parameters, same function.

    The trim is used where it pays on CPU: when the kept taps cover the whole input and give one
    output position (a 3x3/2 convolution on a 2x2 map), the convolution is a matrix product over the
    flattened input; when one tap is kept (a 3x3 convolution on a 1x1 map), a 1x1 convolution. Other
    trims (a smaller kernel still sliding) measured slower than oneDNN's full convolution, so
    there the full one runs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str) or x.ndim != 4:
            return super().forward(x)
        h, w = int(x.shape[-2]), int(x.shape[-1])
        rows = used_taps(h, self.kernel_size[0], self.stride[0], self.padding[0], self.dilation[0])
        cols = used_taps(w, self.kernel_size[1], self.stride[1], self.padding[1], self.dilation[1])
        if rows is None or cols is None:
            return super().forward(x)
        (r0, r1, top, bottom), (c0, c1, left, right) = rows, cols
        if self.groups == 1 and (top, bottom, left, right) == (0, 0, 0, 0) and (r1 - r0, c1 - c0) == (h, w) \
                and self.dilation == (1, 1):
            # the kept taps lie exactly over the input and produce one output: a matrix product
            weight = _Taps.apply(self.weight, r0, r1, c0, c1).view(self.out_channels, -1)
            return F.linear(x.flatten(1), weight, self.bias)[:, :, None, None]
        if (r1 - r0, c1 - c0) == (1, 1) and top == bottom >= 0 and left == right >= 0:
            weight = _Taps.apply(self.weight, r0, r1, c0, c1)
            return F.conv2d(x, weight, self.bias, self.stride, (top, left), 1, self.groups)
        return super().forward(x)


def _trim(model: nn.Module) -> int:
    """Turn every plain ``nn.Conv2d`` of ``model`` into a :class:`TapTrimmedConv2d` in place (same
    parameters); returns how many. Subclasses (timm's same-padding convs, ...) are left alone."""
    n = 0
    for m in model.modules():
        if type(m) is nn.Conv2d:
            m.__class__ = TapTrimmedConv2d
            n += 1
    return n


@register_model("timm")  # the family of every timm:<arch>; its function name is timm_model
def timm_model(
    arch: str,
    in_chans: int,
    num_classes: int,
    pretrained: bool = False,
    small_input_stem: bool = False,
    trim_padding_taps: bool = True,
    stage_widths: list[int] | None = None,
    **kwargs,
) -> nn.Module:
    """Create ``timm.create_model(arch, pretrained, in_chans, num_classes, **kwargs)``;
    ``stage_widths`` is timm's ResNet ``channels`` (renamed: ``channels`` names the input maps here)."""
    if stage_widths is not None:
        kwargs["channels"] = tuple(int(w) for w in stage_widths)
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        hint = f" Did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown timm architecture {arch!r}.{hint} (see timm.list_models())")
    model = timm.create_model(
        arch, pretrained=bool(pretrained), in_chans=int(in_chans), num_classes=int(num_classes), **kwargs
    )
    if small_input_stem:
        _reduce_stem_stride(model, arch)
    if trim_padding_taps:
        _trim(model)
    return model
