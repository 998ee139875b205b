"""compute_flows: known flow through crop + resize, cache hits / corruption / invalidation,
parallel == serial bit-for-bit, errors naming the sample, crop boxes and fallbacks."""

from __future__ import annotations

import json
import logging
import os

import cv2
import numpy as np
import pandas as pd
import pytest

from bench.data.table import DataError, SampleTable
from bench.flow import cache as cache_mod
from bench.flow import compute_flows, crop as crop_mod, pipeline
from bench.flow.cache import CacheCorrupt, entry_path, load_entry, save_entry
from bench.flow.crop import center_box, crop_resize, face_box, find_box, resolve_crop
from bench.flow.ops import resize_flow

FAST = {"nscales": 3, "warps": 3, "outerIterations": 5}  # keep the tests quick; accuracy is not the point


def _texture(seed, n):
    r = np.random.default_rng(seed).normal(size=(n + 32, n + 32))
    r = cv2.GaussianBlur(r, (0, 0), 2.0)
    return (r - r.min()) / (r.max() - r.min()) * 220 + 20


def _shift(img, dx, dy):
    return cv2.warpAffine(img, np.float64([[1, 0, dx], [0, 1, dy]]), img.shape[::-1], flags=cv2.INTER_CUBIC)


def make_table(root, n_samples=3, n=96, shifts=((0, 0), (0.5, 0.25), (0.5, 0.25))) -> SampleTable:
    """Samples whose frames are shifted copies of a texture; file names contain spaces."""
    rows = []
    for s in range(n_samples):
        base = _texture(s, n)
        d = root / f"sub {s:02d}" / "clip A"
        d.mkdir(parents=True, exist_ok=True)
        for k, (dx, dy) in enumerate(shifts, start=1):
            img = np.clip(np.round(_shift(base, dx, dy)[16:-16, 16:-16]), 0, 255).astype(np.uint8)
            cv2.imwrite(str(d / f"img {k}.png"), img)
        rows.append(dict(dataset="t", subject=f"sub {s:02d}", clip="clip A", onset=1, apex=2, offset=3, label=0,
                         emotion="x", au="", frame_template=str(d / "img {frame}.png"), apex_source="annotated",
                         flags=""))
    return SampleTable(pd.DataFrame(rows), ["x"], "t", source=str(root))


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return make_table(tmp_path_factory.mktemp("frames"))


def run(table, cache_dir=None, **kw):
    kw.setdefault("backend_params", FAST)
    kw.setdefault("crop", {"method": "none"})
    kw.setdefault("size", 48)
    return compute_flows(table, cache_dir=cache_dir, progress=False, **kw)


def test_known_shift_through_resize(tmp_path):
    # 96 px frames resized to 48: a 0.5 px right / 0.25 px down shift becomes 0.25 / 0.125 px.
    t = make_table(tmp_path, n_samples=1, shifts=((0, 0), (0.5, 0.25), (0.5, 0.25)))
    fs = compute_flows(t, size=48, crop={"method": "none"}, progress=False)
    assert fs.flows.shape == (1, 2, 2, 48, 48) and fs.flows.dtype == np.float32
    inner = fs.flows[0, :, :, 6:-6, 6:-6].mean(axis=(-2, -1))
    np.testing.assert_allclose(inner[0], [0.25, 0.125], atol=0.03)  # onset->apex
    np.testing.assert_allclose(inner[1], [0.0, 0.0], atol=0.03)  # apex->offset: no motion
    assert fs.params["backend_params"]["lambda"] == 0.15 and fs.params["size"] == 48
    assert fs.flags == [""]


def test_cache_hit_on_rerun_without_decoding(table, tmp_path, monkeypatch):
    first = run(table, tmp_path)
    assert first.stats["hits"] == 0 and first.stats["misses"] == 3
    assert all(entry_path(tmp_path, k).is_file() for k in first.keys)

    def no_decode(path):  # a cache hit must not decode images
        raise AssertionError(f"decoded {path} on a cache hit")

    monkeypatch.setattr(pipeline, "_read_gray", no_decode)
    second = run(table, tmp_path)
    assert second.stats["hits"] == 3 and second.stats["misses"] == 0
    assert np.array_equal(first.flows, second.flows) and second.keys == first.keys


@pytest.mark.parametrize("damage", ["garbage", "truncated", "checksum", "nan", "shape", "empty"])
def test_corrupt_cache_entry_is_detected_and_recomputed(table, tmp_path, damage, caplog):
    ref = run(table, tmp_path)
    path = entry_path(tmp_path, ref.keys[1])
    raw = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all" * 10)
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with np.load(path) as z:
            flows, meta = z["flows"].copy(), json.loads(str(z["meta"]))
        if damage == "checksum":
            flows[0, 0, 3, 3] += 1.0  # data changed, checksum not
        elif damage == "nan":
            flows[0, 1, 0, 0] = np.nan
            meta["checksum"] = cache_mod._checksum(flows)  # consistent checksum: NaN still caught
        elif damage == "shape":
            flows = np.ascontiguousarray(flows[:, :, :8])
            meta["checksum"] = cache_mod._checksum(flows)
        with open(path, "wb") as f:
            np.savez(f, flows=flows, meta=np.array(json.dumps(meta)))
    with pytest.raises(CacheCorrupt):
        load_entry(path, (2, 2, 48, 48))
    with caplog.at_level(logging.WARNING, logger="bench.flow.pipeline"):
        again = run(table, tmp_path)
    assert again.stats["corrupt"] == [str(path)]
    assert again.stats["hits"] == 2 and again.stats["misses"] == 1
    assert "corrupt" in caplog.text and "sub 01/clip A" in caplog.text
    assert np.array_equal(again.flows, ref.flows)
    load_entry(path, (2, 2, 48, 48))  # rewritten, valid again


def test_any_parameter_change_is_a_miss(table, tmp_path):
    base = run(table, tmp_path)
    for kw in ({"backend_params": {**FAST, "lambda": 0.2}}, {"size": 40}, {"crop": {"method": "center"}},
               {"backend": "farneback", "backend_params": {}}):
        other = run(table, tmp_path, **kw)
        assert other.stats["hits"] == 0, kw
        assert set(other.keys).isdisjoint(base.keys), kw
    assert run(table, tmp_path).stats["hits"] == 3  # the original entries are still valid


def test_frame_content_change_is_a_miss(tmp_path):
    t = make_table(tmp_path / "f", n_samples=2)
    a = run(t, tmp_path / "c")
    p = t.frame_path(0, 2)
    img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
    img[0, 0] ^= 1
    cv2.imwrite(str(p), img)
    b = run(t, tmp_path / "c")
    assert b.keys[0] != a.keys[0] and b.keys[1] == a.keys[1]
    assert b.stats["hits"] == 1 and b.stats["misses"] == 1


def test_parallel_equals_serial_bit_for_bit(table, tmp_path):
    serial = run(table, workers=1, crop={"method": "center", "center_frac": 0.9})
    parallel = run(table, tmp_path, workers=2, crop={"method": "center", "center_frac": 0.9})
    assert parallel.stats["misses"] == 3 and parallel.stats["workers"] == 2
    assert np.array_equal(serial.flows, parallel.flows)
    assert serial.keys == parallel.keys and serial.flags == parallel.flags
    # workers wrote the cache: a serial rerun reads the very same arrays
    assert np.array_equal(run(table, tmp_path, crop={"method": "center", "center_frac": 0.9}).flows, serial.flows)


def test_missing_frame_names_sample_and_file(tmp_path):
    t = make_table(tmp_path, n_samples=2)
    missing = t.frame_path(1, 3)
    os.unlink(missing)
    with pytest.raises(DataError, match=r"sub 01/clip A.*img 3\.png"):
        run(t)


def test_undecodable_frame_names_sample(tmp_path):
    t = make_table(tmp_path, n_samples=2)
    t.frame_path(0, 2).write_bytes(b"\x89PNG garbage")
    with pytest.raises(pipeline.FlowError, match=r"sub 00/clip A.*img 2\.png"):
        run(t)


def test_empty_table():
    t = SampleTable(pd.DataFrame(columns=["subject", "clip", "frame_template"]), [], "empty")
    fs = compute_flows(t, size=32, progress=False)
    assert fs.flows.shape == (0, 2, 2, 32, 32) and fs.keys == []


def test_atomic_save_leaves_no_temp_files(tmp_path):
    p = tmp_path / "ab" / "abc.npz"
    f = np.random.default_rng(0).normal(size=(2, 2, 4, 4)).astype(np.float32)
    save_entry(p, f, "face_not_found:center")
    got, flags = load_entry(p, (2, 2, 4, 4))
    assert np.array_equal(got, f) and flags == "face_not_found:center"
    assert [q.name for q in p.parent.iterdir()] == ["abc.npz"]


# ------------------------------------------------------------------------------------ crop


def test_box_geometry():
    assert center_box((100, 60)) == (0, 20, 60, 80)
    assert center_box((100, 100), 0.5) == (25, 25, 75, 75)
    # face 20x20 at (10, 30) with 10 % margin -> 24 px square around the centre (20, 40)
    assert face_box((10, 30, 20, 20), (100, 100), 0.1) == (8, 28, 32, 52)
    # near the border: shifted inside, never cut
    assert face_box((0, 0, 30, 30), (100, 100), 0.2) == (0, 0, 42, 42)
    # larger than the image: capped at the short side
    assert face_box((0, 0, 90, 90), (60, 80), 0.5) == (15, 0, 75, 60)


def test_crop_resize_uses_area_when_shrinking():
    img = np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)
    out = crop_resize(img, (0, 0, 32, 32), 16)
    np.testing.assert_array_equal(out, cv2.resize(img[:32, :32], (16, 16), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(crop_resize(img, None, 64), img)  # right size already: untouched


def test_haar_without_cascade_falls_back_to_center(monkeypatch, table, caplog):
    monkeypatch.setattr(crop_mod, "find_cascade", lambda explicit=None: None)
    with caplog.at_level(logging.WARNING, logger="bench.flow.crop"):
        spec = resolve_crop({"method": "haar", "margin": 0.1})
    assert spec.effective_method == "center" and "falls back to a center crop" in caplog.text
    fs = run(table, crop={"method": "haar"})
    assert fs.flags == ["face_detector_unavailable:center"] * 3
    assert fs.stats["fallbacks"] == {"face_detector_unavailable:center": 3}
    assert fs.params["crop"]["effective_method"] == "center"
    assert np.array_equal(fs.flows, run(table, crop={"method": "center"}).flows)
    with pytest.raises(FileNotFoundError, match="haarcascade"):
        resolve_crop({"method": "haar", "require_detector": True})


def test_detector_hook_box_applied_to_all_three_frames(tmp_path):
    """A registered detector runs on the onset only; its box crops onset, apex and offset alike."""
    calls = []

    @crop_mod.register_face_detector("fixed_box_for_test")
    def fixed(gray, **params):
        calls.append(gray.shape)
        return [(20, 10, 40, 40)]  # x, y, w, h

    t = make_table(tmp_path, n_samples=1)
    fs = run(t, crop={"method": "fixed_box_for_test", "margin": 0.0}, size=40)
    assert len(calls) == 1 and fs.flags == [""]
    # the same flow computed by hand on the box (20..60, 10..50) of each frame
    frames = [cv2.imread(str(t.frame_path(0, k)), cv2.IMREAD_GRAYSCALE)[10:50, 20:60] for k in (1, 2, 3)]
    from bench.flow.backends import create_backend

    be = create_backend("tvl1", **FAST)
    cv2.setNumThreads(1)
    expected = np.stack([be(frames[0], frames[1]), be(frames[1], frames[2])])
    assert np.array_equal(fs.flows[0], expected)


def test_detector_finding_no_face_falls_back_and_flags(tmp_path):
    @crop_mod.register_face_detector("never_finds_for_test")
    def never(gray, **params):
        return []

    t = make_table(tmp_path, n_samples=1)
    fs = run(t, crop={"method": "never_finds_for_test"})
    assert fs.flags == ["face_not_found:center"]


def test_crop_validation():
    with pytest.raises(ValueError, match="crop.method"):
        resolve_crop({"method": "dlib"})
    with pytest.raises(ValueError, match="margin"):
        resolve_crop({"method": "center", "margin": 2})
    with pytest.raises(ValueError, match="detector parameters"):
        resolve_crop({"method": "none", "min_neighbors": 3})


@pytest.mark.skipif(crop_mod.find_cascade() is None, reason="no Haar cascade xml in this OpenCV build")
def test_haar_finds_the_face_in_a_real_video():
    video = "/work/shared/data/generic_face_video/single_face.mp4"
    if not os.path.exists(video):
        pytest.skip("generic_face_video not present")
    cap = cv2.VideoCapture(video)
    ok, frame = cap.read()
    cap.release()
    assert ok
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    box, flags = find_box(gray, resolve_crop({"method": "haar", "margin": 0.1}))
    assert flags == [] and box is not None
    x0, y0, x1, y1 = box
    assert x1 - x0 == y1 - y0 and 60 <= x1 - x0 <= 360


# ------------------------------------------------------------------------------------ resize


def test_resize_flow_scales_vectors():
    f = np.zeros((2, 64, 80), np.float32)
    f[0], f[1] = 1.0, -2.0
    r = resize_flow(f, (32, 20))
    assert r.shape == (2, 32, 20)
    np.testing.assert_allclose(r[0], 0.25, atol=1e-6)  # u *= 20 / 80
    np.testing.assert_allclose(r[1], -1.0, atol=1e-6)  # v *= 32 / 64
    up = resize_flow(f[None, None].repeat(3, 0).repeat(2, 1), 128)  # (3, 2, 2, 128, 128), INTER_LINEAR
    np.testing.assert_allclose(up[..., 0, :, :], 1.6, atol=1e-5)
    np.testing.assert_allclose(up[..., 1, :, :], -4.0, atol=1e-5)
