"""Synthetic micro-expressions with known motion: the embedded, licence-free default dataset.

Each subject gets a procedurally drawn grayscale face (oval, brows, eyes, nose, mouth, skin texture,
illumination; geometry drawn per subject). Each class is a local, smooth displacement field composed of
facial "region motions" (brow raise, brow lower/frown, lip-corner pull, ...), scaled to a peak of
0.2-1.5 px. A clip rises from rest at the onset to the full field at the apex and releases by the offset,
with subject-specific intensity, per-clip left/right asymmetry, small global head jitter and sensor noise.

Rendering convention (backward warp). With ``D_t(x)`` the displacement of frame ``t`` (2 x H x W, pixels,
``u`` = x, ``v`` = y) and ``N`` the neutral face, frame ``t`` is ``I_t(x) = N(x - D_t(x))`` computed with
``cv2.remap`` (``map = grid - D_t``, bicubic). For small smooth ``D`` the content at ``N(p)`` moves to
``p + D_t(p)``.

True flow (OpenCV's convention). ``flow_ab`` is defined on frame ``a``'s grid so that
``I_a(y, x) = I_b(y + v, x + u)`` — what ``cv2.calcOpticalFlowFarneback(a, b)`` or TV-L1 estimate. It is the
solution of ``F(x) = D_b(x + F(x)) - D_a(x)``, computed by fixed-point iteration (the fields are smooth
and sub-pixel, so the map is a strong contraction): *exact* up to bilinear sampling of the smooth field
(~1e-4 px) for the noise-free image model. The first-order approximation ``F ~ D_b - D_a`` (the
difference of displacements) differs by ``O(|D| |grad D|)``: up to ~0.15 px at the largest default
amplitudes, because the region motions are local (window sigma 3-8 px at 96 px).
What is *not* exact: rendered frames add bicubic interpolation of ``N`` (a second resampling blurs
sharp features by ~0.5 grey level on average) and sensor noise, so warping the uint8 frames with the
true flow reproduces the other frame only to that level (the tests check it is several times closer
than without the warp, and that the fixed-point equation holds to 1e-3 px).

Variants: ``standard`` — class ``c`` moves by ``D_c`` on the rise and back to rest on the release (both
phases carry the class). ``release`` — every class shares the same onset->apex field ``D_shared`` and the
release goes from ``D_shared`` to a class-specific residual ``D_c`` that stays at the offset, so the
onset->apex phase carries no class information and only the apex->offset phase does.

Difficulty knobs (``SyntheticConfig``): ``amplitude`` (peak px range; each subject has a mean position in
it, ``intensity_spread`` around that), ``noise`` (grey-level std; at the default 3.0 weak subjects at
~0.3 px are hard), ``distractor`` (each clip adds one random other region motion of relative weight up
to this, like co-occurring AUs, so classes overlap), ``jitter`` (global translation std, px),
``n_frames``. Measured with TV-L1 (OpenCV defaults) onset->apex flow pooled to 24x24 and a LOSO
logistic regression on the default set: 90% accuracy, per-subject 58-100% (noise 2 / distractor 0.6
gave 95%, so the defaults were made harder); on ``release`` (defaults) the same onset->apex features are
at chance (27%) while adding apex->offset features gives 85%.

Disk format: the generic folder format (``annotations.csv`` + ``{subject}/{clip}/img{frame:02d}.png``) under
``cache_dir/<config hash>``, written once to a temporary folder and renamed into place (atomic), then read
back by the generic loader, exactly like user data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from bench.data import register_dataset
from bench.data.table import SampleTable

log = logging.getLogger("bench.data")

GENERATOR_VERSION = 2  # bump when the rendering or motion model changes: it invalidates caches

# Region motions: name -> list of (anchor, (du, dv) direction, window sigma (x, y) in face units).
# Anchors are names of points of the subject geometry; "mirror" anchors exist for left/right parts and
# their horizontal direction is mirrored so motions are symmetric before per-clip asymmetry.
PRIMITIVES: dict[str, list[tuple[str, tuple[float, float], tuple[float, float]]]] = {
    "brow_raise": [("brow", (0.0, -1.0), (0.16, 0.09))],
    "brow_lower": [("brow_inner", (0.45, 0.9), (0.10, 0.08))],  # down and toward the midline: a frown
    "lip_corner_pull": [("mouth_corner", (-0.8, -0.6), (0.08, 0.07))],  # outward (mirrored) and up
    "jaw_drop": [("lower_lip", (0.0, 1.0), (0.14, 0.07))],
    "lip_corner_depress": [("mouth_corner", (-0.25, 1.0), (0.08, 0.07))],
    "lid_tighten": [("lower_lid", (0.0, -1.0), (0.10, 0.05))],
    "nose_wrinkle": [("nose_side", (0.2, -1.0), (0.07, 0.08))],
    "lip_press": [("mouth_corner", (1.0, 0.0), (0.07, 0.06))],  # inward (mirrored)
    "upper_lip_raise": [("upper_lip", (0.0, -1.0), (0.14, 0.06))],
}
# The default three classes and what motion expresses them (brows for negative, mouth for positive,
# brows + jaw for surprise); further classes take remaining primitives, then pairs of primitives.
DEFAULT_CLASSES: list[tuple[str, tuple[str, ...]]] = [
    ("negative", ("brow_lower",)),
    ("positive", ("lip_corner_pull",)),
    ("surprise", ("brow_raise", "jaw_drop")),
]
# release variant: the shared onset->apex motion
SHARED_RISE = ("brow_raise", "lip_corner_pull")


@dataclass(frozen=True)
class SyntheticConfig:
    n_subjects: int = 12
    n_classes: int = 3
    clips_per_class: int = 4
    size: int = 96
    n_frames: tuple[int, int] = (10, 30)  # inclusive range of clip lengths
    amplitude: tuple[float, float] = (0.2, 1.5)  # peak displacement, px
    intensity_spread: float = 0.15  # per-clip spread of the amplitude quantile around the subject's mean
    distractor: float = 0.8  # max relative weight of one random extra region motion per clip (AU co-occurrence)
    noise: float = 3.0  # sensor noise std, grey levels
    jitter: float = 0.1  # global head translation std, px (AR(1) over frames)
    seed: int = 0
    variant: str = "standard"  # "standard" | "release"
    class_names: tuple[str, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "n_frames", tuple(int(v) for v in self.n_frames))
        object.__setattr__(self, "amplitude", tuple(float(v) for v in self.amplitude))
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if self.variant not in ("standard", "release"):
            raise ValueError(f"variant must be 'standard' or 'release', not {self.variant!r}")
        if not 32 <= self.size <= 512:
            raise ValueError(f"size {self.size} outside 32..512")
        lo, hi = self.n_frames
        if not 5 <= lo <= hi:
            raise ValueError(f"n_frames {self.n_frames}: need 5 <= min <= max")
        a0, a1 = self.amplitude
        if not 0 < a0 <= a1:
            raise ValueError(f"amplitude {self.amplitude}: need 0 < min <= max")
        if self.n_subjects < 1 or self.clips_per_class < 1 or self.n_classes < 2:
            raise ValueError("need n_subjects >= 1, clips_per_class >= 1, n_classes >= 2")
        if self.n_classes > len(class_motions(self.n_classes)):
            raise ValueError(f"n_classes {self.n_classes} exceeds the {len(class_motions(10**6))} available motions")
        if self.class_names is not None and len(self.class_names) != self.n_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names for {self.n_classes} classes")

    @property
    def classes(self) -> list[str]:
        if self.class_names is not None:
            return list(self.class_names)
        return [n for n, _ in class_motions(self.n_classes)]

    def hash(self) -> str:
        d = dataclasses.asdict(self)
        d["_version"] = GENERATOR_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def class_motions(n: int) -> list[tuple[str, tuple[str, ...]]]:
    """Names and composed primitives of the first ``n`` classes."""
    out = list(DEFAULT_CLASSES)
    used = {p for _, ps in out for p in ps if len(ps) == 1}
    singles = [p for p in PRIMITIVES if p not in used]
    out += [(p, (p,)) for p in singles]
    used_sets = {frozenset(ps) for _, ps in out}
    for a, b in combinations(PRIMITIVES, 2):
        if frozenset((a, b)) not in used_sets:
            out.append((f"{a}+{b}", (a, b)))
    return out[:n] if n <= len(out) else out


@dataclass
class SyntheticClip:
    frames: np.ndarray  # (T, H, W) uint8
    frame_numbers: np.ndarray  # (T,) int, 1-based file numbers
    onset: int
    apex: int
    offset: int
    flow_onset_apex: np.ndarray | None  # (2, H, W) float32, px, OpenCV convention (see module doc)
    flow_apex_offset: np.ndarray | None
    displacement: np.ndarray = field(repr=False)  # (T, 2, H, W) float32: D_t of the backward warp
    subject: int = 0
    cls: int = 0
    index: int = 0
    amplitude: float = 0.0  # peak px of the class (release: the residual) field
    motions: tuple[str, ...] = ()

    def frame(self, number: int) -> np.ndarray:
        return self.frames[int(number) - int(self.frame_numbers[0])]

    def disp(self, number: int) -> np.ndarray:
        return self.displacement[int(number) - int(self.frame_numbers[0])]


# ----------------------------------------------------------------------------------------------- face
def _rng(cfg: SyntheticConfig, *keys: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, *keys])


def subject_geometry(cfg: SyntheticConfig, subject: int) -> dict[str, Any]:
    """Face layout of a subject in face units (x, y in [-1, 1], y down)."""
    r = _rng(cfg, 1, subject)
    g = dict(
        cx=r.normal(0, 0.03), cy=r.normal(0.04, 0.03), ax=r.uniform(0.56, 0.68), ay=r.uniform(0.74, 0.86),
        eye_dx=r.uniform(0.24, 0.32), eye_y=r.uniform(-0.2, -0.1), eye_w=r.uniform(0.09, 0.12),
        eye_h=r.uniform(0.035, 0.05), brow_gap=r.uniform(0.11, 0.16), brow_w=r.uniform(0.12, 0.16),
        brow_t=r.uniform(0.025, 0.04), brow_arch=r.uniform(0.8, 2.0), brow_dark=r.uniform(50, 85),
        nose_y=r.uniform(0.14, 0.24), mouth_y=r.uniform(0.38, 0.48), mouth_w=r.uniform(0.15, 0.22),
        lip_h=r.uniform(0.025, 0.04), skin=r.uniform(120, 175), bg=r.uniform(30, 90),
        light_dir=r.uniform(0, 2 * np.pi), light=r.uniform(0.1, 0.3), intensity=r.uniform(0.15, 0.85),
        texture_seed=int(r.integers(2**31)),
    )
    return g


def _anchors(g: dict[str, Any]) -> dict[str, list[tuple[float, float, float]]]:
    """Anchor points (x, y, mirror sign) in face units; mirror = -1 on the subject's right (image left)."""
    cx, ey, dx = g["cx"], g["cy"] + g["eye_y"], g["eye_dx"]
    by = ey - g["brow_gap"]
    my = g["cy"] + g["mouth_y"]
    mw = g["mouth_w"]
    return {
        "brow": [(cx - dx, by, -1), (cx + dx, by, 1)],
        "brow_inner": [(cx - dx + 0.6 * g["brow_w"], by + 0.01, -1), (cx + dx - 0.6 * g["brow_w"], by + 0.01, 1)],
        "mouth_corner": [(cx - mw, my, -1), (cx + mw, my, 1)],
        "lower_lip": [(cx, my + g["lip_h"] * 1.2, 1)],
        "upper_lip": [(cx, my - g["lip_h"] * 1.2, 1)],
        "lower_lid": [(cx - dx, ey + g["eye_h"] * 1.2, -1), (cx + dx, ey + g["eye_h"] * 1.2, 1)],
        "nose_side": [(cx - 0.08, g["cy"] + g["nose_y"] - 0.06, -1), (cx + 0.08, g["cy"] + g["nose_y"] - 0.06, 1)],
    }


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    return np.meshgrid(c, c)  # X (columns), Y (rows) in face units


def _soft(d: np.ndarray, w: float) -> np.ndarray:
    """Smooth step: 1 inside (d < 0), 0 outside, transition width ``w`` (face units)."""
    return 0.5 * (1 - np.tanh(d / w))


def neutral_face(cfg: SyntheticConfig, subject: int) -> np.ndarray:
    """The subject's neutral face, (H, W) float32 grey levels (not yet quantised or noisy)."""
    g = subject_geometry(cfg, subject)
    S = cfg.size
    X, Y = _grid(S)
    px = 2.0 / S  # one pixel in face units
    tr = np.random.default_rng(g["texture_seed"])
    # background: gradient + blurry blotches
    img = g["bg"] + 25 * (X * np.cos(g["light_dir"]) + Y * np.sin(g["light_dir"]))
    img += cv2.GaussianBlur(tr.normal(0, 12, (S, S)).astype(np.float32), (0, 0), S / 12)
    # face oval with illumination and shading
    rr = np.sqrt(((X - g["cx"]) / g["ax"]) ** 2 + ((Y - g["cy"]) / g["ay"]) ** 2)
    face = _soft(rr - 1, 1.5 * px / g["ax"])
    shade = g["skin"] * (1 + g["light"] * (X * np.cos(g["light_dir"]) + Y * np.sin(g["light_dir"])))
    shade *= 1 - 0.25 * np.clip(rr, 0, 1) ** 2
    # skin texture at two scales: gives the flow estimator something to lock on in smooth regions
    tex = cv2.GaussianBlur(tr.normal(0, 1, (S, S)).astype(np.float32), (0, 0), 0.8) * 10
    tex += cv2.GaussianBlur(tr.normal(0, 1, (S, S)).astype(np.float32), (0, 0), 2.5) * 14
    img = img * (1 - face) + (shade + tex) * face
    A = _anchors(g)
    ey = g["cy"] + g["eye_y"]
    for (bx, by, s) in A["brow"]:  # arched brows: distance to a parabola, thick stroke
        xx = X - bx
        arc = by - g["brow_arch"] * 0.05 * (1 - (xx / g["brow_w"]) ** 2) + 0.01 * s * xx / g["brow_w"]
        d = np.abs(Y - arc) - g["brow_t"] * (1 - 0.5 * (xx / g["brow_w"]) ** 2)
        m = _soft(d, px) * _soft(np.abs(xx) - g["brow_w"], 1.5 * px)
        img -= g["brow_dark"] * m * face
    for (ex, _, _) in A["brow"]:
        er = np.sqrt(((X - ex) / g["eye_w"]) ** 2 + ((Y - ey) / g["eye_h"]) ** 2)
        sclera = _soft(er - 1, 1.2 * px / g["eye_h"])
        img += 35 * sclera
        ir = np.sqrt((X - ex) ** 2 + (Y - ey) ** 2)
        img -= 110 * _soft(ir - 0.8 * g["eye_h"], px) * sclera
        img -= 40 * _soft(np.abs(er - 1) - 0.12, 0.6 * px / g["eye_h"])  # lid line
    ny = g["cy"] + g["nose_y"]
    for s in (-1, 1):  # nostrils and the nose-side shading
        nr = np.sqrt(((X - g["cx"] - s * 0.055) / 0.035) ** 2 + ((Y - ny) / 0.02) ** 2)
        img -= 55 * _soft(nr - 1, 1.5 * px / 0.02)
        img -= 18 * np.exp(-(((X - g["cx"] - s * 0.07) / 0.03) ** 2 + ((Y - ny + 0.12) / 0.1) ** 2))
    img += 14 * np.exp(-(((X - g["cx"]) / 0.025) ** 2 + ((Y - ny + 0.1) / 0.12) ** 2))  # ridge highlight
    my = g["cy"] + g["mouth_y"]
    lr = np.sqrt(((X - g["cx"]) / g["mouth_w"]) ** 2 + ((Y - my) / g["lip_h"]) ** 2)
    img -= 45 * _soft(lr - 1, 1.2 * px / g["lip_h"])
    img -= 60 * _soft(np.abs(Y - my) - 0.6 * px, 0.6 * px) * _soft(np.abs(X - g["cx"]) - g["mouth_w"], 1.5 * px)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.5)  # optics: no aliasing for the warp
    return np.clip(img, 0, 255).astype(np.float32)


def motion_field(cfg: SyntheticConfig, subject: int, motions: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """A smooth displacement field (2, H, W), px, of peak magnitude 1, composed of region motions.

    Per-clip randomness: left/right asymmetry (x0.75..1.25) and +-1 px anchor jitter.
    """
    g = subject_geometry(cfg, subject)
    A = _anchors(g)
    S = cfg.size
    X, Y = _grid(S)
    D = np.zeros((2, S, S), np.float32)
    for name in motions:
        for anchor, (du, dv), (sx, sy) in PRIMITIVES[name]:
            for ax, ay, mirror in A[anchor]:
                w = rng.uniform(0.75, 1.25)
                ax, ay = ax + rng.normal(0, 1.0 / S), ay + rng.normal(0, 1.0 / S)
                win = np.exp(-0.5 * (((X - ax) / sx) ** 2 + ((Y - ay) / sy) ** 2))
                # mirror: the primitive's du is written for the subject's right side (image left)
                D[0] += w * win * du * (-mirror)
                D[1] += w * win * dv
    peak = float(np.sqrt(D[0] ** 2 + D[1] ** 2).max())
    return D / peak if peak > 0 else D


def warp_backward(img: np.ndarray, D: np.ndarray) -> np.ndarray:
    """``I(x) = img(x - D(x))`` (bicubic, reflecting borders)."""
    S = img.shape[0]
    gx, gy = np.meshgrid(np.arange(S, dtype=np.float32), np.arange(S, dtype=np.float32))
    D = D.astype(np.float32, copy=False)
    return cv2.remap(img, gx - D[0], gy - D[1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)


def flow_between(D_a: np.ndarray, D_b: np.ndarray, iterations: int = 50) -> np.ndarray:
    """True flow a -> b in OpenCV's convention: ``I_a(x) = I_b(x + F(x))``, solving ``F = D_b(x+F) - D_a``."""
    S = D_a.shape[-1]
    gx, gy = np.meshgrid(np.arange(S, dtype=np.float32), np.arange(S, dtype=np.float32))
    D_a, D_b = D_a.astype(np.float32), D_b.astype(np.float32)
    F = D_b - D_a
    # scipy's bilinear sampling in float64, not cv2.remap: remap quantises sample positions to 1/32 px
    # (differently across OpenCV releases), which would stall the fixed point at ~4e-3 px.
    from scipy.ndimage import map_coordinates

    for _ in range(iterations):
        coords = np.stack([gy + F[1], gx + F[0]]).astype(np.float64)
        Db = np.stack([map_coordinates(D_b[k].astype(np.float64), coords, order=1, mode="nearest") for k in (0, 1)])
        F_new = Db - D_a
        if float(np.abs(F_new - F).max()) < 1e-6:
            F = F_new
            break
        F = F_new
    return F.astype(np.float32)


def _timing(cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[int, int, int, int]:
    T = int(rng.integers(cfg.n_frames[0], cfg.n_frames[1] + 1))
    pre = int(rng.integers(0, 3)) if T >= 9 else 0
    post = int(rng.integers(0, 3)) if T >= 9 else 0
    onset, offset = 1 + pre, T - post
    apex = onset + int(round(rng.uniform(0.3, 0.6) * (offset - onset)))
    apex = min(max(apex, onset + 1), offset - 1)
    return T, onset, apex, offset


def _amplitude(cfg: SyntheticConfig, g: dict[str, Any], rng: np.random.Generator) -> float:
    q = float(np.clip(g["intensity"] + rng.normal(0, cfg.intensity_spread), 0, 1))
    lo, hi = cfg.amplitude
    return lo + q * (hi - lo)


def _class_field(cfg: SyntheticConfig, subject: int, motions: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """Unit-peak field of a class's motions plus one random distractor motion of weight U(0, distractor)."""
    D = motion_field(cfg, subject, motions, rng)
    if cfg.distractor > 0:
        others = [p for p in PRIMITIVES if p not in motions]
        extra = others[int(rng.integers(len(others)))]
        D = D + rng.uniform(0, cfg.distractor) * motion_field(cfg, subject, (extra,), rng)
        D /= float(np.sqrt(D[0] ** 2 + D[1] ** 2).max())
    return D


def generate_clip(cfg: SyntheticConfig, subject: int, cls: int, index: int, with_flow: bool = True) -> SyntheticClip:
    """One clip, deterministic in ``(cfg, subject, cls, index)``; see the module docstring for conventions."""
    if not 0 <= cls < cfg.n_classes:
        raise ValueError(f"class {cls} outside 0..{cfg.n_classes - 1}")
    g = subject_geometry(cfg, subject)
    N = neutral_face(cfg, subject)
    rng = _rng(cfg, 2, subject, cls, index)
    T, onset, apex, offset = _timing(cfg, rng)
    motions = class_motions(cfg.n_classes)[cls][1]
    if cfg.variant == "standard":
        amp = _amplitude(cfg, g, rng)
        D_rise = amp * _class_field(cfg, subject, motions, rng)
        D_end = np.zeros_like(D_rise)
    else:
        # shared rise: drawn from a stream that does not depend on the class, so its statistics (and, for
        # a given subject/index, its exact field) are identical across classes
        srng = _rng(cfg, 3, subject, index)
        D_rise = _amplitude(cfg, g, srng) * motion_field(cfg, subject, SHARED_RISE, srng)
        amp = _amplitude(cfg, g, rng)
        D_end = amp * _class_field(cfg, subject, motions, rng)
    S = cfg.size
    # AR(1) head jitter: smooth, stationary std cfg.jitter
    jit = np.zeros((T, 2), np.float32)
    if cfg.jitter > 0:  # AR(1) so that head motion is smooth across frames, like a real head
        e = rng.normal(0, cfg.jitter * np.sqrt(1 - 0.7**2), (T, 2))
        jit[0] = rng.normal(0, cfg.jitter, 2)
        for t in range(1, T):
            jit[t] = 0.7 * jit[t - 1] + e[t]
    disp = np.empty((T, 2, S, S), np.float32)
    frames = np.empty((T, S, S), np.uint8)
    numbers = np.arange(1, T + 1)
    for k, t in enumerate(numbers):
        if t <= onset:
            D = np.zeros_like(D_rise)
        elif t <= apex:
            s = float(np.sin(0.5 * np.pi * (t - onset) / (apex - onset)) ** 2)
            D = s * D_rise
        elif t < offset:
            r = float(np.sin(0.5 * np.pi * (t - apex) / (offset - apex)) ** 2)
            D = (1 - r) * D_rise + r * D_end
        else:
            D = D_end
        D = D + jit[k][:, None, None]
        disp[k] = D
        img = warp_backward(N, D)
        if cfg.noise > 0:
            img = img + rng.normal(0, cfg.noise, img.shape).astype(np.float32)
        frames[k] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    f1 = f2 = None
    if with_flow:
        f1 = flow_between(disp[onset - 1], disp[apex - 1])
        f2 = flow_between(disp[apex - 1], disp[offset - 1])
    return SyntheticClip(
        frames=frames, frame_numbers=numbers, onset=onset, apex=apex, offset=offset,
        flow_onset_apex=f1, flow_apex_offset=f2, displacement=disp, subject=subject, cls=cls, index=index,
        amplitude=float(amp), motions=tuple(motions),
    )


# ------------------------------------------------------------------------------------------- on disk
def subject_name(i: int) -> str:
    return f"s{i + 1:02d}"


def write_dataset(cfg: SyntheticConfig, cache_dir: str | Path) -> Path:
    """Generate the dataset into ``cache_dir/<hash>`` unless it is already there; return that folder."""
    cache_dir = Path(cache_dir).expanduser()
    final = cache_dir / f"{cfg.variant}-{cfg.hash()}"
    if (final / "annotations.csv").is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=cache_dir))
    try:
        rows = ["subject,clip,onset,apex,offset,label,au,frame_template"]
        classes = cfg.classes
        for s in range(cfg.n_subjects):
            sn = subject_name(s)
            for c in range(cfg.n_classes):
                for i in range(cfg.clips_per_class):
                    clip = generate_clip(cfg, s, c, i, with_flow=False)
                    name = f"{sn}_c{c}_{i:02d}"
                    d = tmp / sn / name
                    d.mkdir(parents=True)
                    for n, fr in zip(clip.frame_numbers, clip.frames):
                        cv2.imwrite(str(d / f"img{n:02d}.png"), fr)
                    rows.append(
                        f"{sn},{name},{clip.onset},{clip.apex},{clip.offset},{classes[c]},"
                        f"{'+'.join(clip.motions)},{{subject}}/{{clip}}/img{{frame:02d}}.png"
                    )
        (tmp / "annotations.csv").write_text("\n".join(rows) + "\n")
        (tmp / "config.json").write_text(
            json.dumps({**dataclasses.asdict(cfg), "generator_version": GENERATOR_VERSION, "classes": classes}, indent=1)
        )
        try:
            os.replace(tmp, final)  # atomic on one filesystem; fails if another process won the race
        except OSError:
            if not (final / "annotations.csv").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("synthetic dataset written to %s", final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


_CFG_FIELDS = {f.name for f in dataclasses.fields(SyntheticConfig)}


def _load(name: str, cache_dir: str | Path, params: dict[str, Any]) -> SampleTable:
    from bench.data.generic import load_generic
    from bench.data.validate import OPTION_NAMES

    cfg_kw = {k: v for k, v in params.items() if k in _CFG_FIELDS}
    opts = {k: v for k, v in params.items() if k in OPTION_NAMES}
    unknown = [k for k in params if k not in _CFG_FIELDS and k not in OPTION_NAMES]
    if unknown:
        raise TypeError(
            f"dataset {name!r}: unknown parameter(s) {unknown}. Accepted: cache_dir, "
            f"{', '.join(sorted(_CFG_FIELDS))}, {', '.join(OPTION_NAMES)}"
        )
    for k in ("n_frames", "amplitude", "class_names"):
        if cfg_kw.get(k) is not None:
            cfg_kw[k] = tuple(cfg_kw[k])
    cfg = SyntheticConfig(**cfg_kw)
    root = write_dataset(cfg, cache_dir)
    table = load_generic(root, classes=cfg.classes, dataset=name, **opts)
    # precropped: the generated face fills the frame, so flow.crop.method=auto skips face detection.
    table.meta.update(synthetic=dataclasses.asdict(cfg), generator_version=GENERATOR_VERSION, cache=str(root),
                      precropped=True)
    return table


@register_dataset(synthetic=True)
def load_synthetic(cache_dir: str | Path = "~/.cache/dualflow-bench/synthetic", **params: Any) -> SampleTable:
    """The synthetic dataset (``variant: standard`` by default); params are ``SyntheticConfig`` fields."""
    name = "synthetic_release" if params.get("variant") == "release" else "synthetic"
    return _load(name, cache_dir, params)


@register_dataset(synthetic=True)
def load_synthetic_release(cache_dir: str | Path = "~/.cache/dualflow-bench/synthetic", **params: Any) -> SampleTable:
    """The release variant: classes differ only in the apex->offset phase."""
    if params.setdefault("variant", "release") != "release":
        raise ValueError("synthetic_release has variant 'release'; use dataset=synthetic for other variants")
    return _load("synthetic_release", cache_dir, params)
