"""Model families, each registered by name: ``create_model(name, in_chans, num_classes, **params)``.

Families: ``timm:<arch>`` (models/timm_models.py), ``ststnet``, ``off_apexnet``, ``fmanet``.
"""

from bench.compat import ensure_torchvision_importable

ensure_torchvision_importable()  # must precede the first `import timm` (timm_models imports it)

from models.registry import MODELS, create_model, list_models, register_model  # noqa: E402
from models import fmanet, off_apexnet, ststnet, timm_models  # noqa: E402,F401  (registers families)

__all__ = ["MODELS", "create_model", "list_models", "register_model"]
