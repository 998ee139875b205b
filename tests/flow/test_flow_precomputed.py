"""The ``precomputed`` dataset and flow-file readers: .npy / .npz / .flo / 8-bit images (fixed and
minmax normalisation), names with spaces, stacked arrays (MEB layout), errors naming the sample."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.data.precomputed import load_precomputed
from bench.data.table import DataError
from bench.flow import compute_flows
from bench.data.flowfiles import FlowFileSpec, read_flo, read_flow_file, write_flo
from representations import annotate_exactness

# subject and clip names cannot hold spaces (the MEGC2019 log could not hold them: bench.data.table.
# name_problem); the file names still do, through the templates' " .npy" (see load below)
SUBJECTS = ["s_1", "s_1", "s2", "s2"]
CLIPS = ["a", "b_b", "a", "c"]
LABELS = ["happiness", "surprise", "surprise", "happiness"]
H, W = 10, 12


def flows_for(i):
    rng = np.random.default_rng(i)
    return rng.normal(scale=2.0, size=(2, 2, H, W)).astype(np.float32)  # phase, (u, v), H, W


def write_csv(root: Path, extra_cols: str = "", extra=lambda i: ""):
    lines = ["subject,clip,label" + extra_cols]
    for i, (s, c, l) in enumerate(zip(SUBJECTS, CLIPS, LABELS)):
        lines.append(f"{s},{c},{l}{extra(i)}")
    (root / "annotations.csv").write_text("\n".join(lines) + "\n")


def write_files(root: Path, ext: str, writer):
    for i, (s, c) in enumerate(zip(SUBJECTS, CLIPS)):
        f = flows_for(i)
        writer(root / f"{s}_{c} {ext}", f[0])  # note the space before the extension's dot
        writer(root / f"{s}_{c}_1 {ext}", f[1])
    write_csv(root)


def load(root, ext, **kw):
    """Load as the runner does: the table, then each representation's exactness on its files."""
    t = load_precomputed(root, phase1_template="{subject}_{clip} " + ext,
                         phase2_template="{subject}_{clip}_1 " + ext, **kw)
    annotate_exactness(t)
    return t


@pytest.mark.parametrize("fmt", ["npy", "npy_hwc", "npz", "npz_uv", "flo"])
def test_float_formats_roundtrip_exactly(tmp_path, fmt, caplog):
    ext = {"npy_hwc": ".npy", "npz_uv": ".npz"}.get(fmt, "." + fmt)
    writers = {
        "npy": lambda p, f: np.save(p, f),
        "npy_hwc": lambda p, f: np.save(p, np.moveaxis(f, 0, -1)),
        "npz": lambda p, f: np.savez(p, flow=f, other=np.zeros(3)),
        "npz_uv": lambda p, f: np.savez(p, u=f[0], v=f[1]),
    }
    # np.save/np.savez append their extension when missing: write to the exact name via a handle
    def writer(p, f):
        if fmt == "flo":
            return write_flo(p, f)
        with open(p, "wb") as fh:
            writers[fmt](fh, f)

    write_files(tmp_path, ext, writer)
    with caplog.at_level(logging.INFO, logger="bench.data"):
        t = load(tmp_path, ext)
    assert len(t) == 4 and t.classes == ["happiness", "surprise"]
    assert set(t.df.columns) >= {"flow1_path", "flow2_path", "flow1_index", "flow2_index"}
    assert t.meta["exactness"]["mm_cof"] == "exact" and "every representation is exact" in caplog.text
    fs = compute_flows(t, size=None, progress=False)
    assert fs.params["backend"] == "precomputed" and fs.flags == [""] * 4
    for i in range(4):
        k = int(np.flatnonzero((t.df["subject"] == SUBJECTS[i]) & (t.df["clip"] == CLIPS[i]))[0])
        np.testing.assert_array_equal(fs.flows[k], flows_for(i))


def test_flo_reader_rejects_bad_files(tmp_path):
    f = flows_for(0)[0]
    p = tmp_path / "x.flo"
    write_flo(p, f)
    raw = p.read_bytes()
    np.testing.assert_array_equal(read_flo(p), f)
    assert np.frombuffer(raw[:4], "<f4")[0] == np.float32(202021.25)
    assert tuple(np.frombuffer(raw[4:12], "<i4")) == (W, H)
    (tmp_path / "t.flo").write_bytes(raw[:-8])
    with pytest.raises(ValueError, match="header says"):
        read_flo(tmp_path / "t.flo")
    assert raw[:4] == b"PIEH"  # the magic float's bytes spell "PIEH"
    (tmp_path / "m.flo").write_bytes(b"HEIP" + raw[4:])
    with pytest.raises(ValueError, match="magic"):
        read_flo(tmp_path / "m.flo")


def _png(flow, scale, offset):
    """u, v, strain-ish third channel as an 8-bit RGB image with value = pixel * scale + offset."""
    third = np.hypot(flow[0], flow[1])
    rgb = np.stack([flow[0], flow[1], third], -1)
    return np.clip(np.round((rgb - offset) / scale), 0, 255).astype(np.uint8)


def test_images_fixed_normalisation_recover_pixels_up_to_quantisation(tmp_path):
    scale, offset = 10 / 127.5, -10.0  # [-10, 10] px over 0..255
    def writer(p, f):
        ok, buf = cv2.imencode(".png", cv2.cvtColor(_png(f, scale, offset), cv2.COLOR_RGB2BGR))
        p.write_bytes(buf.tobytes())
    write_files(tmp_path, ".png", writer)
    spec = {"channels": ["u", "v", "strain"], "normalisation": "fixed", "scale": scale, "offset": offset}
    t = load(tmp_path, ".png", flow_file=spec)
    assert t.meta["exactness"]["cof"].startswith("exact up to")
    fs = compute_flows(t, size=None, progress=False)
    k = int(np.flatnonzero((t.df["subject"] == "s_1") & (t.df["clip"] == "b_b"))[0])
    np.testing.assert_allclose(fs.flows[k], flows_for(1), atol=scale / 2 + 1e-6)


def test_images_minmax_are_flagged_approximate(tmp_path, caplog):
    def writer(p, f):
        rgb = np.stack([f[0], f[1], np.hypot(f[0], f[1])], -1)
        lo, hi = rgb.min(axis=(0, 1)), rgb.max(axis=(0, 1))
        img = np.round((rgb - lo) / (hi - lo) * 255).astype(np.uint8)
        cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    write_files(tmp_path, ".png", writer)
    with caplog.at_level(logging.WARNING, logger="bench.data"):
        t = load(tmp_path, ".png", flow_file={"channels": ["u", "v", "strain"], "normalisation": "minmax"})
    # every representation recomputing from u, v is approximate; `stored` feeds the files' own pixels
    assert all(v.startswith("approximate") for k, v in t.meta["exactness"].items() if k != "stored")
    assert t.meta["exactness"]["stored"].startswith("exact: the stored channels")
    assert "lost the sign and scale" in caplog.text
    fs = compute_flows(t, size=8, progress=False)
    assert fs.flows.shape == (4, 2, 2, 8, 8) and np.isfinite(fs.flows).all()
    # decoded to [-1, 1] (then vector-scaled by the resize 12 -> 8 / 10 -> 8)
    assert fs.flows.min() >= -1.0 - 1e-6 and fs.flows.max() <= 1.0 + 1e-6


def test_image_without_declared_normalisation_is_an_error(tmp_path):
    write_files(tmp_path, ".png", lambda p, f: cv2.imwrite(str(p), _png(f, 0.1, -10)))
    with pytest.raises(DataError, match="normalisation"):
        load(tmp_path, ".png", flow_file={"channels": ["u", "v", "strain"]})


def test_nan_file_error_names_the_sample(tmp_path):
    def writer(p, f):
        if "s2_c_1" in p.name:
            f = f.copy()
            f[0, 2, 2] = np.nan
        with open(p, "wb") as fh:
            np.save(fh, f)
    write_files(tmp_path, ".npy", writer)
    t = load(tmp_path, ".npy")
    with pytest.raises(DataError, match=r"sample s2/c .*phase-2 flow .*s2_c_1 \.npy has 1 NaN/inf"):
        compute_flows(t, size=None, progress=False)


def test_missing_file_lists_row_and_path(tmp_path):
    def writer(p, f):
        with open(p, "wb") as fh:
            np.save(fh, f)
    write_files(tmp_path, ".npy", writer)
    (tmp_path / "s_1_b_b_1 .npy").unlink()
    with pytest.raises(DataError, match=r"row 3 \(s_1/b_b\): phase-2 flow file missing: .*s_1_b_b_1 \.npy"):
        load(tmp_path, ".npy")


def test_integer_labels_and_frame_numbers_and_single_phase(tmp_path):
    for i, (s, c) in enumerate(zip(SUBJECTS, CLIPS)):
        np.save(tmp_path / f"{s}-{c}.npy", flows_for(i)[0])
    lines = ["subject,clip,label,onset,apex,offset"] + [
        f"{s},{c},{i % 2},{10 * i},{10 * i + 3},{10 * i + 7}" for i, (s, c) in enumerate(zip(SUBJECTS, CLIPS))]
    (tmp_path / "ann.csv").write_text("\n".join(lines) + "\n")
    t = load_precomputed(tmp_path, annotation="ann.csv", phase1_template="{subject}-{clip}.npy", classes=["neg", "pos"])
    annotate_exactness(t)
    assert t.classes == ["neg", "pos"] and t.df["apex"].tolist() == [3, 13, 23, 33]
    assert t.meta["exactness"]["two_phase_stack"].startswith("unavailable")
    fs = compute_flows(t, size=None, progress=False)
    assert fs.flags == ["phase2_missing:zeros"] * 4 and not fs.flows[:, 1].any()


def test_meb_fixture_stacked_array(tmp_path):
    fixture = Path("/work/shared/data/meb_test_fixture/per_of.npy")
    if not fixture.is_file():
        pytest.skip("MEB test fixture not present")
    (tmp_path / "per.csv").write_text("subject,clip,label\ng1,f01,happiness\ng2,f3,surprise\n")
    t = load_precomputed(fixture.parent, annotation=str(tmp_path / "per.csv"), phase1_array="per_of.npy",
                         flow_file={"channels": ["u", "v", "strain"]})
    assert t.df["flow1_index"].tolist() == [0, 1] and t.df["flags"].tolist() == ["no_frame_numbers"] * 2
    fs = compute_flows(t, size=None, progress=False)
    ref = np.load(fixture)
    assert fs.flows.shape == (2, 2, 2, 106, 95)
    np.testing.assert_array_equal(fs.flows[:, 0], ref[:, :2])


def test_read_flow_file_spec_errors(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.zeros((3, 4, 5), np.float32))
    with pytest.raises(ValueError, match="no axis of 2 channels"):
        read_flow_file(p, FlowFileSpec())
    assert read_flow_file(p, FlowFileSpec(channels=("v", "u", "strain"))).shape == (2, 4, 5)
    with pytest.raises(ValueError, match="must include"):
        FlowFileSpec(channels=("u", "strain"))
    q = tmp_path / "a.txt"
    q.write_text("x")
    with pytest.raises(ValueError, match="unsupported"):
        read_flow_file(q, FlowFileSpec())
