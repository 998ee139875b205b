"""FlowAugment: flips negate u, rotations rotate the vectors (checked against exact 90° rotations
and an analytic linear field), scalars are only resampled, determinism per generator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from representations import create_representation
from representations.augment import FlowAugment

CH = ("u1", "v1", "m1", "u2", "v2", "mc")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def rand_x(n=4, h=16, w=16, c=len(CH)):
    return torch.randn(n, c, h, w, generator=gen(99))


def test_hflip_mirrors_and_negates_every_u_channel():
    x = rand_x()
    y = FlowAugment(CH, hflip=1.0)(x, gen())
    exp = torch.flip(x, dims=[-1]).clone()
    exp[:, [0, 3]] *= -1
    assert torch.equal(y, exp)
    assert torch.equal(FlowAugment(CH, hflip=0.0)(x, gen()), x)


def test_hflip_probability_is_per_sample_and_deterministic():
    x = rand_x(n=64)
    aug = FlowAugment(CH, hflip=0.5)
    a, b = aug(x, gen(7)), aug(x, gen(7))
    assert torch.equal(a, b)
    flipped = [(not torch.equal(a[i], x[i])) for i in range(64)]
    assert 15 < sum(flipped) < 49  # ~half
    assert not torch.equal(a, aug(x, gen(8)))


def test_hflip_matches_representation_of_mirrored_flow():
    """Augmenting the representation == computing it from the physically mirrored flow."""
    rng = np.random.default_rng(0)
    f = rng.normal(size=(2, 2, 12, 12)).astype(np.float32)
    mirror = lambda g: np.stack([-g[0][:, ::-1], g[1][:, ::-1]])
    rep = create_representation("mm_cof", modulation="soft", channels=["u1g", "v1g", "mcg", "u2g", "v2g"])
    x = rep(f[0], f[1]).tensor[None]
    y = FlowAugment(rep.channels, hflip=1.0)(x, gen())
    z = rep(mirror(f[0]), mirror(f[1])).tensor[None]
    torch.testing.assert_close(y, z, rtol=1e-5, atol=1e-6)


def test_rotation_by_90_degrees_is_exact():
    """+90° (counter-clockwise on screen, y down): np.rot90 of the maps, and (u, v) -> (v, -u):
    a vector pointing right (u=1, v=0) points up (u=0, v=-1) afterwards."""
    x = rand_x(n=2)
    aug = FlowAugment(CH, hflip=0.0)
    n = x.shape[0]
    y = aug.apply(x, torch.zeros(n, dtype=torch.bool), torch.full((n,), math.pi / 2), torch.zeros(n, 2))
    xn = x.numpy()
    exp = np.rot90(xn, k=1, axes=(-2, -1)).copy()  # counter-clockwise as displayed
    for iu, iv in ((0, 1), (3, 4)):
        u, v = exp[:, iu].copy(), exp[:, iv].copy()
        exp[:, iu], exp[:, iv] = v, -u
    np.testing.assert_allclose(y.numpy(), exp, atol=1e-5)
    right = torch.zeros(1, 6, 8, 8)
    right[:, 0] = 1.0
    up = aug.apply(right, torch.zeros(1, dtype=torch.bool), torch.full((1,), math.pi / 2), torch.zeros(1, 2))
    assert torch.allclose(up[0, 0, 2:-2, 2:-2], torch.zeros(4, 4), atol=1e-6)
    assert torch.allclose(up[0, 1, 2:-2, 2:-2], -torch.ones(4, 4), atol=1e-6)


def test_small_rotation_of_a_linear_field_matches_the_analytic_answer():
    """f(p) = B p + c (p about the centre); rotated by A: f'(p') = A B A^-1 p' + A c."""
    h = w = 33
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    px, py = xx - (w - 1) / 2, yy - (h - 1) / 2
    B = np.array([[0.02, -0.01], [0.015, 0.03]])
    c = np.array([0.4, -0.2])
    f = np.stack([B[0, 0] * px + B[0, 1] * py + c[0], B[1, 0] * px + B[1, 1] * py + c[1]])
    m = np.hypot(f[0], f[1])
    x = torch.from_numpy(np.stack([f[0], f[1], m])[None]).float()
    a = math.radians(20)
    A = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])  # CCW on screen, y down
    y = FlowAugment(("u1", "v1", "m1"), hflip=0).apply(x, torch.zeros(1, dtype=torch.bool), torch.tensor([a]), torch.zeros(1, 2))
    M = A @ B @ np.linalg.inv(A)
    d = A @ c
    eu = M[0, 0] * px + M[0, 1] * py + d[0]
    ev = M[1, 0] * px + M[1, 1] * py + d[1]
    inner = (slice(8, -8), slice(8, -8))  # away from the zero-padded corners
    np.testing.assert_allclose(y[0, 0].numpy()[inner], eu[inner], atol=2e-5)
    np.testing.assert_allclose(y[0, 1].numpy()[inner], ev[inner], atol=2e-5)
    # the magnitude (a scalar) is only resampled: |f'| at p' equals |f| at A^-1 p'
    np.testing.assert_allclose(y[0, 2].numpy()[inner], np.hypot(eu, ev)[inner], atol=2e-3)


def test_translation_shifts_maps_and_keeps_vectors():
    x = rand_x(n=1, c=3)
    aug = FlowAugment(("u1", "v1", "mc"), hflip=0)
    y = aug.apply(x, torch.zeros(1, dtype=torch.bool), torch.zeros(1), torch.tensor([[2.0, -3.0]]))
    # content moves 2 px right and 3 px up: y[:, :, r, c] = x[:, :, r + 3, c - 2]
    torch.testing.assert_close(y[..., 0:13, 2:16], x[..., 3:16, 0:14], atol=1e-5, rtol=0)
    assert torch.all(y[..., :, 0:2] == 0)  # zero padding = no motion


def test_random_rotation_deterministic_and_on_device_of_batch():
    x = rand_x(n=3)
    aug = FlowAugment(CH, hflip=0.5, rotate_deg=15, translate_px=2)
    a, b = aug(x, gen(3)), aug(x, gen(3))
    assert torch.equal(a, b) and a.dtype == x.dtype and a.device == x.device
    # magnitude-like scalar channels stay non-negative... up to bilinear mixing of non-negative values
    xpos = x.clone()
    xpos[:, 2] = xpos[:, 2].abs()
    assert float(aug(xpos, gen(3))[:, 2].min()) >= 0


def test_validation():
    with pytest.raises(ValueError, match="partner"):
        FlowAugment(("u1", "m1"))
    with pytest.raises(ValueError, match="probability"):
        FlowAugment(CH, hflip=1.5)
    with pytest.raises(ValueError, match="expects"):
        FlowAugment(CH)(torch.zeros(1, 3, 4, 4), gen())
