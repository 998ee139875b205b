"""Make ``import timm`` work beside the CPU build of torch.

timm imports torchvision. The torchvision 0.28.0 wheel on PyPI is built against the CUDA torch
2.13.0, so its C extension (``torchvision/_C.so``) does not load beside the CPU wheel, and
``torchvision/_meta_registrations.py`` then fails at import with
"operator torchvision::nms does not exist" while registering fake kernels for ``nms``/``qnms``.
No CPU torchvision wheel is published on PyPI for this torch, so instead of pulling a multi-GB CUDA
torch we declare the two op schemas ourselves when (and only when) the C extension cannot be loaded.
Nothing here uses torchvision's detection ops; calling ``torchvision.ops.nms`` would still raise.
"""

from __future__ import annotations

import importlib.util
import os

_DONE = False
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIB = None  # keep the Library alive: its definitions vanish when it is garbage collected


def ensure_torchvision_importable() -> None:
    """Idempotent; call before the first ``import timm`` / ``import torchvision``."""
    global _DONE, _LIB
    if _DONE:
        return
    _DONE = True
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    import torch

    so = os.path.join(list(spec.submodule_search_locations)[0], "_C.so")
    if os.path.exists(so):
        try:
            torch.ops.load_library(so)
            return  # a matching torchvision: its own ops are registered, nothing to shim
        except (OSError, RuntimeError):
            pass
    try:
        lib = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            lib.define(schema)
        _LIB = lib
    except RuntimeError:
        # Namespace already defined elsewhere (e.g. a second interpreter-level import path).
        pass
