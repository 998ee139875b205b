"""The synthetic generator: determinism, true flow, both variants, the on-disk dataset."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from bench.data import load_dataset
from bench.data import synthetic as syn

SMALL = dict(n_subjects=3, clips_per_class=2, size=64, n_frames=(8, 10))


def _grid(S):
    return np.meshgrid(np.arange(S, dtype=np.float32), np.arange(S, dtype=np.float32))


def test_deterministic_for_a_seed_and_seeds_differ():
    cfg = syn.SyntheticConfig(size=64)
    a, b = syn.generate_clip(cfg, 1, 2, 0), syn.generate_clip(cfg, 1, 2, 0)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.flow_onset_apex, b.flow_onset_apex)
    assert (a.onset, a.apex, a.offset) == (b.onset, b.apex, b.offset)
    c = syn.generate_clip(syn.SyntheticConfig(size=64, seed=1), 1, 2, 0)
    assert c.frames.shape[1:] == a.frames.shape[1:]
    assert not np.array_equal(c.frames[0], a.frames[0])  # a different face, not just different noise
    # different subjects have different faces
    assert np.abs(syn.neutral_face(cfg, 0) - syn.neutral_face(cfg, 1)).mean() > 5


def test_clip_shape_timing_and_amplitude():
    cfg = syn.SyntheticConfig()
    for s, c, i in [(0, 0, 0), (3, 1, 2), (7, 2, 3)]:
        k = syn.generate_clip(cfg, s, c, i)
        T = len(k.frames)
        assert 10 <= T <= 30 and k.frames.dtype == np.uint8 and k.frames.shape[1:] == (96, 96)
        assert 1 <= k.onset < k.apex < k.offset <= T
        assert k.flow_onset_apex.shape == (2, 96, 96) and k.flow_onset_apex.dtype == np.float32
        assert 0.2 <= k.amplitude <= 1.5
        # the phase-1 field's peak is the clip amplitude (plus at most jitter)
        peak = np.hypot(*k.flow_onset_apex).max()
        assert abs(peak - k.amplitude) < 0.6


def test_true_flow_solves_the_warp_equation():
    """F(x) = D_b(x + F(x)) - D_a(x) holds to 1e-3 px: I_a(x) = N(x - D_a(x)) = I_b(x + F(x))."""
    cfg = syn.SyntheticConfig(jitter=0.2)
    k = syn.generate_clip(cfg, 2, 2, 1)
    for a, b, F in [(k.onset, k.apex, k.flow_onset_apex), (k.apex, k.offset, k.flow_apex_offset)]:
        Da, Db = k.disp(a), k.disp(b)
        gx, gy = _grid(Da.shape[-1])
        # exact float bilinear sampling (cv2.remap quantises sample positions to 1/32 px)
        coords = np.stack([gy + F[1], gx + F[0]]).astype(np.float64)
        Db_at = np.stack([map_coordinates(Db[c].astype(np.float64), coords, order=1, mode="nearest") for c in (0, 1)])
        assert np.abs(F - (Db_at - Da)).max() < 1e-3
        # the first-order approximation is close but not exact, as documented
        assert np.abs(F - (Db - Da)).max() < 0.25


def test_warping_with_true_flow_reproduces_the_next_frame():
    cfg = syn.SyntheticConfig(noise=0.0)
    k = syn.generate_clip(cfg, 1, 0, 1)
    for a, b, F in [(k.onset, k.apex, k.flow_onset_apex), (k.apex, k.offset, k.flow_apex_offset)]:
        fa, fb = k.frame(a).astype(np.float32), k.frame(b).astype(np.float32)
        gx, gy = _grid(fa.shape[0])
        # OpenCV convention: prev(y, x) = next(y + v, x + u)
        warped = cv2.remap(fb, gx + F[0], gy + F[1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
        moving = np.hypot(*F) > 0.3
        moving[:4], moving[-4:], moving[:, :4], moving[:, -4:] = False, False, False, False
        assert moving.sum() > 50
        err_true = np.abs(warped - fa)[moving].mean()
        err_none = np.abs(fb - fa)[moving].mean()
        assert err_true < 1.0 and err_true < 0.25 * err_none


def test_standard_variant_phases_carry_the_class():
    cfg = syn.SyntheticConfig(jitter=0.0, distractor=0.0)
    f = [syn.generate_clip(cfg, 0, c, 0) for c in range(3)]
    # rise: region motions differ between classes; release returns to rest, F2 ~ -F1 at first order
    assert np.abs(f[0].flow_onset_apex - f[1].flow_onset_apex).max() > 0.2
    for k in f:
        assert np.abs(k.flow_apex_offset + k.flow_onset_apex).max() < 0.3
        assert np.abs(k.disp(k.offset)).max() == 0.0


def test_release_variant_shares_phase_one_and_differs_in_phase_two():
    cfg = syn.SyntheticConfig(variant="release", jitter=0.0)
    clips = [syn.generate_clip(cfg, 4, c, 1) for c in range(3)]
    for k in clips[1:]:
        assert np.array_equal(k.flow_onset_apex, clips[0].flow_onset_apex)
        assert np.abs(k.flow_apex_offset - clips[0].flow_apex_offset).max() > 0.2
    # the offset state is the class residual, not rest
    assert all(np.abs(k.disp(k.offset)).max() > 0.1 for k in clips)


def test_more_classes_compose_region_motions():
    cfg = syn.SyntheticConfig(n_classes=12, size=64)
    assert cfg.classes[:3] == ["negative", "positive", "surprise"]
    assert len(set(cfg.classes)) == 12 and any("+" in c for c in cfg.classes)
    with pytest.raises(ValueError, match="class_names"):
        syn.SyntheticConfig(n_classes=3, class_names=("a", "b"))
    with pytest.raises(ValueError, match="variant"):
        syn.SyntheticConfig(variant="nope")


def test_dataset_on_disk_counts_cache_and_generic_format(tmp_path, monkeypatch):
    t = load_dataset({"name": "synthetic", "cache_dir": str(tmp_path), **SMALL, "n_classes": 4})
    assert len(t) == 3 * 4 * 2 and t.classes == syn.SyntheticConfig(n_classes=4).classes
    assert t.df.groupby("label").size().tolist() == [6, 6, 6, 6]
    assert t.subjects == ["s01", "s02", "s03"] and set(t.df["dataset"]) == {"synthetic"}
    assert t.problems == []
    p = t.key_frame_paths(0)[1]
    assert p.is_file() and cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).shape == (64, 64)
    # frames on disk are the generator's frames
    r = t.df.iloc[5]
    s, c, i = int(r["subject"][1:]) - 1, int(r["clip"].split("_c")[1][0]), int(r["clip"][-2:])
    k = syn.generate_clip(syn.SyntheticConfig(**SMALL, n_classes=4), s, c, i, with_flow=False)
    assert (r["onset"], r["apex"], r["offset"]) == (k.onset, k.apex, k.offset)
    assert np.array_equal(cv2.imread(str(t.frame_path(5, r["apex"])), cv2.IMREAD_GRAYSCALE), k.frame(r["apex"]))
    # cached: a second load generates nothing; no temporary folders remain
    monkeypatch.setattr(syn, "generate_clip", lambda *a, **k: (_ for _ in ()).throw(AssertionError("regenerated")))
    t2 = load_dataset({"name": "synthetic", "cache_dir": str(tmp_path), **SMALL, "n_classes": 4})
    assert t2.df.equals(t.df)
    assert [p.name for p in tmp_path.iterdir()] == [t.meta["cache"].rsplit("/", 1)[1]]


def test_release_loader_and_config_hash(tmp_path):
    t = load_dataset({"name": "synthetic_release", "cache_dir": str(tmp_path), **SMALL})
    assert set(t.df["dataset"]) == {"synthetic_release"} and t.meta["synthetic"]["variant"] == "release"
    assert syn.SyntheticConfig(seed=1).hash() != syn.SyntheticConfig(seed=2).hash()
    with pytest.raises(ValueError, match="variant"):
        load_dataset({"name": "synthetic_release", "cache_dir": str(tmp_path), "variant": "standard"})
    with pytest.raises(TypeError, match="n_subject"):
        load_dataset({"name": "synthetic", "cache_dir": str(tmp_path), "n_subject": 3})
