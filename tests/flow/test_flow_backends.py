"""Flow backends against known motion: a global sub-pixel shift and a smooth local field.

Bounds are mean end-point errors (EPE, px) over the interior (8 px border excluded), set from
measurement over 4 texture seeds with ~2x margin (measured: shift tvl1 0.006-0.008, farneback 0.045,
dis-medium 0.08-0.09, dis-ultrafast 0.10-0.13; local field tvl1 0.039-0.042, farneback 0.022-0.025,
dis-medium 0.038-0.047). Each bound is well below the EPE of predicting zero motion (asserted).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.flow.backends import create_backend, list_backends

N = 112
INNER = (slice(None), slice(8, -8), slice(8, -8))


def _u8(img):
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def blurred_noise(seed, n=N, pad=16):
    r = np.random.default_rng(seed).normal(size=(n + 2 * pad, n + 2 * pad))
    r = cv2.GaussianBlur(r, (0, 0), 2.0)
    return (r - r.min()) / (r.max() - r.min()) * 220 + 20


def shifted_pair(seed, dx=0.5, dy=0.25, n=N, pad=16):
    """(prev, next) where next's content moved right by dx and down by dy (cv2.warpAffine, bicubic)."""
    r = blurred_noise(seed, n, pad)
    moved = cv2.warpAffine(r, np.float64([[1, 0, dx], [0, 1, dy]]), r.shape[::-1], flags=cv2.INTER_CUBIC)
    return _u8(r[pad:-pad, pad:-pad]), _u8(moved[pad:-pad, pad:-pad])


def sinusoid_texture(seed, k=40, fmax=0.2):
    """A smooth analytic texture T(x, y): sampled at any point, so no interpolation error."""
    rng = np.random.default_rng(seed)
    fx, fy, ph = rng.uniform(-fmax, fmax, k), rng.uniform(-fmax, fmax, k), rng.uniform(0, 2 * np.pi, k)

    def T(x, y):
        s = np.zeros_like(x)
        for i in range(k):
            s += np.cos(2 * np.pi * (fx[i] * x + fy[i] * y) + ph[i])
        return 128 + s / np.sqrt(k) * 40

    return T


def local_field(x, y):
    """Smooth local displacement (two bumps per component, peak 0.8 px)."""
    u = 0.8 * np.exp(-((x - 40) ** 2 + (y - 48) ** 2) / (2 * 14**2)) - 0.4 * np.exp(-((x - 80) ** 2 + (y - 70) ** 2) / (2 * 16**2))
    v = -0.6 * np.exp(-((x - 70) ** 2 + (y - 40) ** 2) / (2 * 15**2)) + 0.3 * np.exp(-((x - 40) ** 2 + (y - 80) ** 2) / (2 * 12**2))
    return u, v


def local_pair(seed):
    """next(q) = T(q - f(q)); the true OpenCV-convention flow F solves prev(p) = next(p + F), F = f(p + F)."""
    T = sinusoid_texture(seed)
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float64)
    fu, fv = local_field(xx, yy)
    prev, nxt = T(xx, yy), T(xx - fu, yy - fv)
    Fu, Fv = fu.copy(), fv.copy()
    for _ in range(30):  # contraction: |grad f| << 1
        Fu, Fv = local_field(xx + Fu, yy + Fv)
    return _u8(prev), _u8(nxt), np.stack([Fu, Fv])


def mean_epe(flow, true):
    d = (flow - true)[INNER]
    return float(np.hypot(d[0], d[1]).mean())


SHIFT_BOUNDS = [("tvl1", {}, 0.02), ("farneback", {}, 0.08), ("dis", {"preset": "medium"}, 0.15),
                ("dis", {"preset": "ultrafast"}, 0.25)]


@pytest.mark.parametrize("name,params,bound", SHIFT_BOUNDS)
def test_known_subpixel_shift(name, params, bound):
    prev, nxt = shifted_pair(seed=1)
    flow = create_backend(name, **params)(prev, nxt)
    assert flow.shape == (2, N, N) and flow.dtype == np.float32
    true = np.broadcast_to(np.array([0.5, 0.25], np.float32)[:, None, None], flow.shape)
    epe = mean_epe(flow, true)
    assert epe < bound, f"{name} {params}: mean EPE {epe:.4f} px >= {bound}"
    assert mean_epe(np.zeros_like(flow), true) > 2 * bound  # the bound is meaningful (zero flow: 0.56)
    # sign convention: content moved right and down -> u > 0, v > 0
    assert flow[0][INNER[1:]].mean() > 0.4 and flow[1][INNER[1:]].mean() > 0.15


LOCAL_BOUNDS = [("tvl1", 0.07), ("farneback", 0.05), ("dis", 0.08)]


@pytest.mark.parametrize("name,bound", LOCAL_BOUNDS)
def test_smooth_local_displacement(name, bound):
    prev, nxt, true = local_pair(seed=2)
    flow = create_backend(name)(prev, nxt)
    epe = mean_epe(flow, true)
    assert epe < bound, f"{name}: mean EPE {epe:.4f} px >= {bound}"
    assert mean_epe(np.zeros_like(flow), true) > 2.5 * bound


def test_horizontal_flip_of_frames_negates_u():
    """Mirroring both frames mirrors the flow and flips the sign of u (what FlowAugment assumes)."""
    prev, nxt = shifted_pair(seed=3)
    be = create_backend("tvl1")
    f = be(prev, nxt)
    g = be(np.ascontiguousarray(prev[:, ::-1]), np.ascontiguousarray(nxt[:, ::-1]))
    assert g[0][INNER[1:]].mean() < -0.4  # moved left in the mirrored frames
    expected = np.stack([-f[0][:, ::-1], f[1][:, ::-1]])
    assert mean_epe(g, expected) < 0.03


def test_params_are_validated_and_resolved():
    assert set(list_backends()) >= {"tvl1", "farneback", "dis"}
    be = create_backend("tvl1", tau=0.2)
    assert be.params["tau"] == 0.2 and be.params["lambda"] == 0.15  # defaults made explicit
    with pytest.raises(ValueError, match="unknown parameter.*lamda"):
        create_backend("tvl1", lamda=0.1)
    with pytest.raises(ValueError, match="preset"):
        create_backend("dis", preset="slow")
    with pytest.raises(ValueError, match="uint8"):
        create_backend("dis")(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32))


def test_dis_overrides_and_tvl1_initial_flow_run():
    prev, nxt = shifted_pair(seed=4, n=64)
    f = create_backend("dis", preset="fast", variational_refinement_iterations=10)(prev, nxt)
    assert np.isfinite(f).all() and f[0][8:-8, 8:-8].mean() > 0.3
    f = create_backend("tvl1", useInitialFlow=True, nscales=3)(prev, nxt)
    assert mean_epe(f, np.broadcast_to(np.array([0.5, 0.25], np.float32)[:, None, None], f.shape)) < 0.05
