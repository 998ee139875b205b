"""timm (and so torchvision) imports beside the CPU torch wheel, in a clean interpreter."""

from __future__ import annotations

import subprocess
import sys


def _py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_timm_through_the_shim_in_a_clean_interpreter():
    r = _py("import bench.compat as c; c.ensure_torchvision_importable(); import timm, torchvision, torch; "
            "m = timm.create_model('resnet18', pretrained=False, in_chans=6, num_classes=3); "
            "print(tuple(m(torch.zeros(2, 6, 28, 28)).shape))")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("(2, 3)")


def test_importing_models_is_enough():
    r = _py("import models, timm; print(models.create_model('timm:resnet10t', 3, 5).__class__.__name__)")
    assert r.returncode == 0, r.stderr[-2000:]


def test_shim_is_idempotent_and_harmless_twice():
    r = _py("import bench.compat as c; c.ensure_torchvision_importable(); c.ensure_torchvision_importable(); "
            "import torch, torchvision; print(hasattr(torch.ops.torchvision, 'nms'))")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "True"
