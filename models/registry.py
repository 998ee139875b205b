"""Registry of model families: ``create_model(name, in_chans, num_classes, **params)``.

``timm:<arch>`` names are resolved by the timm family (models/timm_models.py).
"""

from bench.registry import Registry

MODELS = Registry("model")
register_model = MODELS.register


def create_model(name: str, in_chans: int, num_classes: int, **params):
    if name.startswith("timm:"):
        return MODELS.get("timm")(arch=name.split(":", 1)[1], in_chans=in_chans, num_classes=num_classes, **params)
    return MODELS.get(name)(in_chans=in_chans, num_classes=num_classes, **params)


def list_models() -> list[str]:
    return [n if n != "timm" else "timm:<arch>" for n in MODELS.names()]
