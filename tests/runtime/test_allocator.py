"""bench/runtime/allocator.py: a process that trains model after model reuses freed blocks instead of
faulting in fresh zeroed pages (counted as minor page faults, in a fresh interpreter each)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")

# Like a training worker: build a ResNet-10-T, train it 10 steps, drop it; three times after a
# warm-up unit. Prints whether the settings took and the minor page faults of those three units.
CODE = """
import resource, sys
import torch
from bench.runtime.allocator import keep_freed_memory
ok = keep_freed_memory()
torch.set_num_threads(1)
from models.registry import create_model
x, y = torch.randn(32, 4, 28, 28), torch.arange(32) % 3
def unit():
    torch.manual_seed(0)
    m = create_model("timm:resnet10t", in_chans=4, num_classes=3)
    opt = torch.optim.Adam(m.parameters(), 1e-3, fused=True)
    for _ in range(10):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
unit()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    unit()
print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(**env) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True,
                         env={**{k: v for k, v in os.environ.items() if k != "DUALFLOW_MALLOC"}, **env})
    ok, faults = out.stdout.split()
    return ok, int(faults)


def test_worker_allocations_are_reused_instead_of_faulted_in_again():
    ok, tuned = _faults()
    off, default = _faults(DUALFLOW_MALLOC="default")  # glibc's own thresholds, for comparison
    assert (ok, off) == ("True", "False")
    # measured: ~53 000 faults (200 MB of fresh pages) with glibc's defaults, ~800 with the settings
    assert default > 10 * tuned and tuned < 5000, (tuned, default)
