"""Model families, each registered by name: ``create_model(name, in_chans, num_classes, **params)``.

Families: ``timm:<arch>`` (models/timm_models.py), ``ststnet``, ``off_apexnet``, ``fmanet``. Every
module of this package is imported, so a new family is one file plus its
``bench/conf/model/<name>.yaml``.
"""

from bench.compat import ensure_torchvision_importable
from bench.core.registry import import_plugins

ensure_torchvision_importable()  # must precede the first `import timm` (timm_models imports it)

from models.registry import MODELS, build_model, create_model, list_models, model_skip, register_model  # noqa: E402
import_plugins(__name__, __path__)  # registers every family

__all__ = ["MODELS", "build_model", "create_model", "list_models", "model_skip", "register_model"]
