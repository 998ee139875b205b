"""Every representation against an independent, deliberately plain NumPy computation of its formula
(explicit loops over pixels where the formula is local), on random and hand-made inputs."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from representations import create_representation, list_representations, vector_pairs
from representations.base import RepresentationOutput

RNG = np.random.default_rng(1234)
H, W = 9, 11


def rand_flows(n=3, h=H, w=W, scale=1.5):
    return RNG.normal(scale=scale, size=(n, 2, 2, h, w)).astype(np.float32)


# ---------------------------------------------------------------- independent references


def ref_mag(u, v):
    out = np.zeros(u.shape)
    for y in range(u.shape[0]):
        for x in range(u.shape[1]):
            out[y, x] = math.sqrt(float(u[y, x]) ** 2 + float(v[y, x]) ** 2)
    return out


def ref_minmax(m):
    lo, hi = float(np.min(m)), float(np.max(m))
    if hi == lo:
        return np.zeros(m.shape)
    return (m - lo) / (hi - lo)


def ref_d(f, axis):
    """Derivative along axis (0 = y, 1 = x): central inside, one-sided at the two borders."""
    f = f.astype(np.float64)
    out = np.zeros(f.shape)
    n = f.shape[axis]
    for i in range(n):
        if i == 0:
            a, b, den = 1, 0, 1.0
        elif i == n - 1:
            a, b, den = n - 1, n - 2, 1.0
        else:
            a, b, den = i + 1, i - 1, 2.0
        if axis == 0:
            out[i, :] = (f[a, :] - f[b, :]) / den
        else:
            out[:, i] = (f[:, a] - f[:, b]) / den
    return out


def ref_strain(u, v):
    ux, uy, vx, vy = ref_d(u, 1), ref_d(u, 0), ref_d(v, 1), ref_d(v, 0)
    out = np.zeros(u.shape)
    for y in range(u.shape[0]):
        for x in range(u.shape[1]):
            exy = 0.5 * (uy[y, x] + vx[y, x])
            out[y, x] = math.sqrt(ux[y, x] ** 2 + vy[y, x] ** 2 + 2 * exy**2)
    return out


def ref_mc(f1, f2, t1=0.5, t2=0.5):
    return t1 * ref_minmax(ref_mag(*f1)) + t2 * ref_minmax(ref_mag(*f2))


def ref_gate(mc, modulation, tau=0.3, p=75.0):
    if modulation == "threshold":
        return (mc >= tau).astype(float)
    if modulation == "percentile":
        vals = np.sort(mc.ravel())
        pos = p / 100 * (len(vals) - 1)  # linear interpolation between closest ranks
        lo = int(math.floor(pos))
        hi = min(lo + 1, len(vals) - 1)
        t = vals[lo] + (pos - lo) * (vals[hi] - vals[lo])
        return (mc >= t).astype(float)
    if modulation == "soft":
        return mc.copy()
    return np.ones_like(mc)


def reference(name, f1, f2, **p):
    u1, v1 = f1.astype(np.float64)
    u2, v2 = f2.astype(np.float64)
    if name == "single_phase":
        return [u1, v1, ref_mag(u1, v1)]
    if name == "single_phase_offset":
        return [u2, v2, ref_mag(u2, v2)]
    if name == "two_phase_stack":
        return [u1, v1, ref_mag(u1, v1), u2, v2, ref_mag(u2, v2)]
    if name == "strain":
        return [u1, v1, ref_strain(u1, v1)]
    if name == "cof":
        return [u1, v1, ref_mc(f1, f2, p.get("theta1", 0.5), p.get("theta2", 0.5))]
    if name == "mm_cof":
        mc = ref_mc(f1, f2, p.get("theta1", 0.5), p.get("theta2", 0.5))
        g = ref_gate(mc, p.get("modulation", "threshold"), p.get("tau", 0.3), p.get("percentile", 75.0))
        return [u1 * g, v1 * g, mc * g]
    raise KeyError(name)


CASES = [
    ("single_phase", {}), ("single_phase_offset", {}), ("two_phase_stack", {}), ("strain", {}),
    ("cof", {}), ("cof", {"theta1": 0.8, "theta2": 0.2}), ("cof", {"theta1": 1.0, "theta2": 0.0}),
    ("mm_cof", {}), ("mm_cof", {"modulation": "threshold", "tau": 0.55}),
    ("mm_cof", {"modulation": "percentile", "percentile": 75}),
    ("mm_cof", {"modulation": "percentile", "percentile": 40}),
    ("mm_cof", {"modulation": "soft"}), ("mm_cof", {"modulation": "none"}),
]


def test_every_issue_representation_is_registered():
    assert set(list_representations()) >= {"single_phase", "single_phase_offset", "strain", "cof", "mm_cof",
                                           "two_phase_stack"}


@pytest.mark.parametrize("name,params", CASES)
def test_matches_reference_on_random_flows(name, params):
    flows = rand_flows()
    rep = create_representation(name, **params)
    x, flags = rep.batch(flows)
    assert x.dtype == torch.float32 and x.shape == (3, len(rep.channels), H, W)
    for i in range(len(flows)):
        ref = np.stack(reference(name, flows[i, 0], flows[i, 1], **params))
        np.testing.assert_allclose(x[i].numpy(), ref, rtol=1e-5, atol=1e-6)
        one = rep(flows[i, 0], flows[i, 1])  # __call__ == the batch's row, bit for bit
        assert isinstance(one, RepresentationOutput) and one.channels == rep.channels
        assert torch.equal(one.tensor, x[i]) and one.flags == flags[i]


def test_cof_theta_weights_hand_made():
    # phase 1 magnitude 0 at one pixel, 5 at another (3-4-5 triangle); phase 2 magnitude 0..2
    f = np.zeros((2, 2, 1, 3), np.float32)
    f[0, 0] = [[0, 3, 0]]
    f[0, 1] = [[0, 4, 0]]  # M1 = [0, 5, 0] -> M1n = [0, 1, 0]
    f[1, 0] = [[0, 0, 2]]  # M2 = [0, 0, 2] -> M2n = [0, 0, 1]
    out = create_representation("cof", theta1=0.7, theta2=0.3)(f[0], f[1])
    np.testing.assert_allclose(out.tensor[2].numpy(), [[0.0, 0.7, 0.3]], atol=1e-7)
    allc = create_representation("cof", channels=["u1", "v1", "u2", "v2", "m1n", "m2n", "mc"])(f[0], f[1])
    np.testing.assert_allclose(allc.tensor[4].numpy(), [[0, 1, 0]])
    np.testing.assert_allclose(allc.tensor[5].numpy(), [[0, 0, 1]])
    np.testing.assert_allclose(allc.tensor[6].numpy(), [[0, 0.5, 0.5]])


def test_mm_cof_threshold_edges_exactly_at_tau():
    # M1n = [0, 0.25, 0.5, 0.75, 1] (exact binary fractions), M2 flat zero -> Mc = 0.5 * M1n
    f = np.zeros((2, 2, 1, 5), np.float32)
    f[0, 0] = [[0, 1, 2, 3, 4]]  # v1 = 0, so M1 = |u1|
    rep = create_representation("mm_cof", modulation="threshold", tau=0.25,
                                channels=["u1g", "v1g", "mcg", "mc", "g"])
    out = rep(f[0], f[1])
    mc = out.tensor[3].numpy()
    np.testing.assert_array_equal(mc, [[0, 0.125, 0.25, 0.375, 0.5]])
    # Mc == tau exactly is kept (>=), below is dropped
    np.testing.assert_array_equal(out.tensor[4].numpy(), [[0, 0, 1, 1, 1]])
    np.testing.assert_array_equal(out.tensor[0].numpy(), [[0, 0, 2, 3, 4]])
    np.testing.assert_array_equal(out.tensor[2].numpy(), [[0, 0, 0.25, 0.375, 0.5]])
    assert "flat:m2" in out.flags and "zero_flow:phase2" in out.flags
    # tau above every value: empty gate, flagged, zero tensor channels
    empty = create_representation("mm_cof", tau=0.75)(f[0], f[1])
    assert "empty_gate" in empty.flags and float(empty.tensor.abs().sum()) == 0.0


def test_mm_cof_percentile_keeps_top_quarter():
    f = np.zeros((2, 2, 4, 4), np.float32)
    f[0, 0] = np.arange(16, dtype=np.float32).reshape(4, 4)  # 16 distinct magnitudes
    f[1, 0] = np.arange(16, dtype=np.float32).reshape(4, 4)
    out = create_representation("mm_cof", modulation="percentile", percentile=75, channels=["g"])(f[0], f[1])
    g = out.tensor[0].numpy()
    # 75th percentile of 0..15/15 lies between ranks 11 and 12 -> values 12..15 kept
    assert g.sum() == 4 and g.ravel()[12:].all()


def test_mm_cof_soft_is_mc_scaling():
    flows = rand_flows(1)
    out = create_representation("mm_cof", modulation="soft", channels=["u1g", "v1g", "mcg", "mc"])(flows[0, 0], flows[0, 1])
    mc = out.tensor[3].numpy().astype(np.float64)
    np.testing.assert_allclose(out.tensor[0].numpy(), flows[0, 0, 0] * mc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.tensor[2].numpy(), mc * mc, rtol=1e-5, atol=1e-6)


def test_strain_of_linear_fields_is_exact():
    # u = a x + b y, v = c x + d y: ux = a, uy = b, vx = c, vy = d everywhere (even on borders)
    a, b, c, d = 0.1, -0.3, 0.2, 0.05
    y, x = np.mgrid[0:7, 0:6].astype(np.float32)
    f1 = np.stack([a * x + b * y, c * x + d * y])
    out = create_representation("strain")(f1, np.zeros_like(f1))
    expected = math.sqrt(a * a + d * d + 0.5 * (b + c) ** 2)
    np.testing.assert_allclose(out.tensor[2].numpy(), expected, rtol=1e-5)
    # a pure rotation field (b = -c, a = d = 0) has zero strain
    rot = np.stack([-0.2 * y, 0.2 * x])
    assert float(create_representation("strain")(rot, rot).tensor[2].abs().max()) < 1e-6


def test_degenerate_inputs_are_defined():
    zero = np.zeros((2, 2, 6, 6), np.float32)
    for name in list_representations():
        out = create_representation(name)(zero[0], zero[1])
        assert float(out.tensor.abs().sum()) == 0.0, name
        assert torch.isfinite(out.tensor).all(), name
    cof = create_representation("cof")(zero[0], zero[1])
    assert set(cof.flags) >= {"flat:m1", "flat:m2", "zero_flow:phase1", "zero_flow:phase2"}
    # a constant non-zero flow: flat magnitude -> normalised zeros (flag), u, v kept
    const = np.ones((2, 2, 6, 6), np.float32)
    out = create_representation("cof", channels=["u1", "v1", "m1n", "mc"])(const[0], const[1])
    assert float(out.tensor[2].abs().sum()) == 0 and float(out.tensor[0].min()) == 1.0
    assert "flat:m1" in out.flags and "zero_flow:phase1" not in out.flags


def test_nan_or_inf_names_the_sample():
    flows = rand_flows(4)
    flows[2, 1, 0, 3, 3] = np.nan
    flows[2, 1, 1, 0, 0] = np.inf
    rep = create_representation("two_phase_stack")
    with pytest.raises(ValueError, match=r"sample casme2/sub03/EP01: phase-2 flow has 2 NaN/inf"):
        rep.batch(flows, sample_ids=["a", "b", "casme2/sub03/EP01", "d"])
    with pytest.raises(ValueError, match="sample #2"):
        rep.batch(flows)
    with pytest.raises(ValueError, match="sample clipX"):
        rep(flows[2, 0], flows[2, 1], sample_id="clipX")


def test_size_resizes_flows_with_vector_scaling_before_the_formula():
    flows = rand_flows(2, h=24, w=32)
    rep = create_representation("cof", size=16, channels=["u1", "v1", "m1", "mc"])
    x, _ = rep.batch(flows)
    assert x.shape == (2, 4, 16, 16)
    for i in range(2):
        rs = [np.stack([cv2.resize(flows[i, p, 0], (16, 16), interpolation=cv2.INTER_AREA) * 16 / 32,
                        cv2.resize(flows[i, p, 1], (16, 16), interpolation=cv2.INTER_AREA) * 16 / 24]) for p in (0, 1)]
        np.testing.assert_allclose(x[i, 0].numpy(), rs[0][0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(x[i, 2].numpy(), ref_mag(*rs[0]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(x[i, 3].numpy(), ref_mc(rs[0], rs[1]), rtol=1e-5, atol=1e-6)


def test_sign_of_u_follows_a_horizontal_flip_of_the_flow():
    flows = rand_flows(1)
    f1, f2 = flows[0, 0], flows[0, 1]
    flip = lambda f: np.stack([-f[0][:, ::-1], f[1][:, ::-1]])  # mirrored flow: u negated
    for name in list_representations():
        rep = create_representation(name)
        a, b = rep(f1, f2).tensor.numpy(), rep(flip(f1), flip(f2)).tensor.numpy()
        for k, c in enumerate(rep.channels):
            sign = -1.0 if c.startswith("u") else 1.0
            # strain uses one-sided border differences, which mirror exactly too
            np.testing.assert_allclose(b[k], sign * a[k][:, ::-1], rtol=1e-5, atol=1e-5, err_msg=f"{name}:{c}")


def test_channel_validation_and_pairs():
    assert vector_pairs(("u1", "v1", "mc", "u2", "v2")) == [(0, 1), (3, 4)]
    assert vector_pairs(("u1g", "v1g", "mcg")) == [(0, 1)]
    with pytest.raises(ValueError, match="partner"):
        vector_pairs(("u1", "m1"))
    with pytest.raises(ValueError, match="partner"):
        create_representation("cof", channels=["u1", "mc"])
    with pytest.raises(ValueError, match="unknown channels"):
        create_representation("cof", channels=["u1", "v1", "strain1"])
    with pytest.raises(ValueError, match="theta"):
        create_representation("cof", theta1=-0.1)
    with pytest.raises(ValueError, match="modulation"):
        create_representation("mm_cof", modulation="sigmoid")
    with pytest.raises(KeyError, match="Available"):
        create_representation("optical_flow_magic")
