"""Issue 24 (hostile input, round two), the precomputed-flow items 4, 5, 7, 16a-c.

- 4: a precomputed sample's key covers every stored channel (editing only the strain reruns);
- 5: no location in any key (a copied dataset keeps its unit keys);
- 7: flow files over ``MAX_FLOW_PIXELS`` are refused from their headers, before decoding;
- 16a: a directory, a symlink loop, a device or a FIFO is named for what it is, not "missing";
- 16b: sheet values may not lead a path out of its folder (precomputed and the licensed loaders);
- 16c: one file in two (clip, phase) roles is refused, naming both clips.

Fixtures: the MEGC2019 release layouts of ``benchmarks.composite_fixture`` (tiny random PNGs).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from benchmarks.composite_fixture import RELEASE_CSV, RELEASE_DIR, TINY_ROWS, write_png, write_release_fixture
from bench.core.config import compose
from bench.data import flowfiles, load_dataset
from bench.data.flowfiles import FLO_MAGIC, FlowFileSpec, read_flow_file
from bench.data.precomputed import load_precomputed
from bench.data.table import DataError
from bench.flow import compute_flows

PRESET = {"htnet": "megc2019_htnet", "causalnet": "megc2019_causalnet"}


def release(tmp_path: Path, layout: str, rows=TINY_ROWS) -> Path:
    return write_release_fixture(tmp_path / layout, layout, rows=rows, seed=1)


def node(root: Path, layout: str) -> dict:
    cfg = compose([f"dataset={PRESET[layout]}", f"dataset.root={root}"])
    return OmegaConf.to_container(cfg.dataset, resolve=True)


def flow_file(root: Path, sub: str, clip: str, suffix: str = "") -> Path:
    return root / RELEASE_DIR / f"{sub}_{clip}{suffix} .png"


@pytest.fixture(scope="module")
def stored_plan(tmp_path_factory):
    """The plan of the two-phase release x stored x STSTNet, composed once (composing is the slow part).
    Its cells' hashes hold no location, so the plan of a copy differs only in ``dataset.root``."""
    from bench.plan.planner import plan_study

    cache = tmp_path_factory.mktemp("cache")
    return plan_study(["study=megc2019_phases", "dataset=megc2019_causalnet", f"dataset.root={cache}",
                       "study.models=[ststnet]", "study.representations=[stored]", f"paths.cache={cache}",
                       "tracking=none", "report=false"])


def unit_keys(plan, root: Path) -> tuple[list[str], object]:
    """Every unit key of ``plan`` on the release at ``root`` as ``bench.run`` computes them, and the flows."""
    from bench.results.tables import UnitStore
    from bench.runner.prepare import Prepared
    from bench.runner.tasks import RunContext, plan_units

    for cell in plan.cells:
        cell.cfg["dataset"]["root"] = str(root)
    prep = Prepared(plan, progress=False)
    ctx = RunContext(study="megc2019_phases", run_dir=root / "run", commit="", resume=False, audit=False)
    keys = plan_units(plan, prep, UnitStore(ctx.run_dir), ctx).keys
    return keys, prep.flowset(plan.cells[0])[1]


def rewrite_sheet(root: Path, edit) -> None:
    """Apply ``edit(fields) -> fields`` to every data line of the release's sample list."""
    csv = root / RELEASE_CSV
    head, *lines = csv.read_text().splitlines()
    csv.write_text("\n".join([head, *(",".join(edit(line.split(","))) for line in lines)]) + "\n")


# ------------------------------------------------------------------ item 4: the key covers stored channels

def test_editing_only_the_stored_strain_channel_changes_every_key(tmp_path, stored_plan):
    root = release(tmp_path, "causalnet")
    units_before, before = unit_keys(stored_plan, root)
    for png in (root / RELEASE_DIR).glob("*.png"):
        bgr = cv2.imdecode(np.fromfile(str(png), np.uint8), cv2.IMREAD_COLOR)
        bgr[..., 0] = 255 - bgr[..., 0]  # BGR: channel 0 is the RGB image's 3rd channel, the strain
        write_png(png, bgr[..., ::-1])
    units_after, after = unit_keys(stored_plan, root)
    np.testing.assert_array_equal(after.flows, before.flows)  # u, v as decoded: untouched
    assert not np.array_equal(after.stored.values, before.stored.values)  # what `stored` feeds changed
    assert not set(after.keys) & set(before.keys) and len(set(after.keys)) == 12
    assert units_after and not set(units_after) & set(units_before)  # a rerun has every unit to run


def test_a_stacked_sample_key_covers_its_own_values_only(tmp_path):
    (tmp_path / "annotations.csv").write_text("subject,clip,label\ns1,a,happiness\ns2,a,surprise\n")
    stack = np.random.default_rng(0).normal(size=(2, 3, 4, 4)).astype(np.float32)  # u, v, a stored 3rd channel
    np.save(tmp_path / "per_of.npy", stack)
    kw = dict(phase1_array="per_of.npy", flow_file={"channels": ["u", "v", "strain"]})
    before = compute_flows(load_precomputed(tmp_path, **kw), size=None, progress=False).keys
    stack[1, 2] += 1.0  # only sample 1's 3rd channel
    np.save(tmp_path / "per_of.npy", stack)
    after = compute_flows(load_precomputed(tmp_path, **kw), size=None, progress=False).keys
    assert after[0] == before[0] and after[1] != before[1]


# ------------------------------------------------------------------ item 5: no location in any key

def test_a_copied_release_keeps_its_flow_and_unit_keys(tmp_path, stored_plan):
    root = release(tmp_path, "causalnet")
    moved = shutil.copytree(root, tmp_path / "elsewhere" / "clone")
    (units, flows), (moved_units, moved_flows) = unit_keys(stored_plan, root), unit_keys(stored_plan, moved)
    assert moved_flows.keys == flows.keys and moved_units == units  # a rerun there: "0 to run"


# ------------------------------------------------------------------ item 7: size caps from headers

def png_claiming(path: Path, width: int, height: int) -> None:
    """A valid 1x1 RGB PNG whose IHDR (CRC fixed) claims ``width`` x ``height``: a few bytes on disk."""
    ok, buf = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))
    b = bytearray(buf.tobytes())
    b[16:24] = struct.pack(">II", width, height)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    path.write_bytes(bytes(b))


def test_a_tiny_png_claiming_15000x15000_is_refused_at_load_without_decoding(tmp_path, monkeypatch):
    root = release(tmp_path, "htnet")
    bomb = flow_file(root, "s01", "s01_po_01")
    png_claiming(bomb, 15000, 15000)
    assert bomb.stat().st_size < 100

    def no_decoding(*a, **k):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    want = (f"{RELEASE_CSV}, row 7 (s01/s01_po_01): phase-1 flow: {bomb.resolve()}: a flow sample of "
            "15000x15000 (225,000,000 pixels) is over the cap of 16,777,216 pixels")
    with pytest.raises(DataError, match=re.escape(want)):
        load_dataset(node(root, "htnet"))
    with pytest.raises(ValueError, match="MAX_FLOW_PIXELS"):
        read_flow_file(bomb, FlowFileSpec(channels=("u", "v", "strain"), normalisation="minmax"))


def test_the_default_cap_refuses_a_real_4097x4097_png(tmp_path):
    root = release(tmp_path, "htnet")
    big = flow_file(root, "006", "006_1_2")
    write_png(big, np.zeros((4097, 4097, 3), np.uint8))  # zeros: ~50 KB on disk
    assert flowfiles.MAX_FLOW_PIXELS == 4096 * 4096
    with pytest.raises(DataError, match=r"row 10 \(006/006_1_2\): phase-1 flow: .*4097x4097 .* over the cap"):
        load_dataset(node(root, "htnet"))


def _array_set(root: Path, ext: str, write) -> dict:
    """Two rows (s1/a, s2/a) of per-sample files written by ``write(path, i)``; the loader's arguments."""
    (root / "annotations.csv").write_text("subject,clip,label\ns1,a,happiness\ns2,a,surprise\n")
    for i, s in enumerate(("s1", "s2")):
        write(root / f"{s}_a{ext}", i)
    return dict(phase1_template="{subject}_{clip}" + ext)


def _npy_header_only(path, i):
    with open(path, "wb") as f:  # the header claims 2x5000x5000 float32; no data follows
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (2, 5000, 5000) if i else (2, 4, 4)})
        if not i:
            f.write(np.zeros((2, 4, 4), np.float32).tobytes())


def _flo_header_only(path, i):
    w = h = 5000 if i else 4
    path.write_bytes(FLO_MAGIC.astype("<f4").tobytes() + np.array([w, h], "<i4").tobytes()
                     + (b"" if i else np.zeros((h, w, 2), "<f4").tobytes()))


def _npz_big_member(path, i):
    if not i:
        with open(path, "wb") as f:
            np.savez(f, flow=np.zeros((2, 4, 4), np.float32))
        return
    header = io.BytesIO()  # a member whose header claims 2x5000x5000 float32: nothing is inflated
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2, 5000, 5000)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("flow.npy", header.getvalue())


@pytest.mark.parametrize("ext,write", [(".npy", _npy_header_only), (".flo", _flo_header_only),
                                       (".npz", _npz_big_member)], ids=["npy", "flo", "npz"])
def test_arrays_over_the_cap_are_refused_from_their_headers(tmp_path, ext, write):
    kw = _array_set(tmp_path, ext, write)
    with pytest.raises(DataError, match=r"annotations\.csv, row 3 \(s2/a\): phase-1 flow: .*s2_a\.\w+: a flow sample "
                                        r"of .* \(25,000,000 pixels\) is over the cap"):
        load_precomputed(tmp_path, **kw)


def test_a_stacked_array_and_npz_members_obey_a_lowered_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(flowfiles, "MAX_FLOW_PIXELS", 24)
    (tmp_path / "annotations.csv").write_text("subject,clip,label\ns1,a,happiness\ns2,a,surprise\n")
    np.save(tmp_path / "per_of.npy", np.zeros((2, 2, 5, 5), np.float32))  # 25 pixels per sample
    with pytest.raises(DataError, match=r"phase1_array: .*per_of\.npy: a flow sample of 5x5 per sample"):
        load_precomputed(tmp_path, phase1_array="per_of.npy")
    np.savez(tmp_path / "uv.npz", u=np.zeros((5, 5)), v=np.zeros((5, 5)))
    with pytest.raises(ValueError, match=r"uv\.npz: a flow sample of [uv] of shape \(5, 5\)"):
        read_flow_file(tmp_path / "uv.npz", FlowFileSpec())
    np.savez(tmp_path / "ok.npz", u=np.zeros((4, 6)), v=np.zeros((4, 6)), other=np.zeros((50, 50)))
    assert read_flow_file(tmp_path / "ok.npz", FlowFileSpec()).shape == (2, 4, 6)  # unread members: not counted


# ------------------------------------------------------------------ item 16a: file kinds

def test_a_directory_a_symlink_loop_a_device_and_a_fifo_are_named_for_what_they_are(tmp_path):
    root = release(tmp_path, "htnet")
    kinds = {("sub01", "EP02_01f"): "is a directory", ("sub02", "EP01_11f"): "is a symlink loop",
             ("s01", "s01_ne_01"): "is not a regular file (a character device)",
             ("s02", "s02_sur_01"): "is not a regular file (a FIFO)",
             ("006", "006_1_3"): "is a dangling symlink (its target is missing)"}
    paths = {k: flow_file(root, *k) for k in kinds}
    for p in paths.values():
        p.unlink()
    paths["sub01", "EP02_01f"].mkdir()
    os.symlink(paths["sub02", "EP01_11f"].name, paths["sub02", "EP01_11f"])  # links to itself
    os.symlink("/dev/zero", paths["s01", "s01_ne_01"])
    os.mkfifo(paths["s02", "s02_sur_01"])  # reading it would block forever
    os.symlink("gone .png", paths["006", "006_1_3"])
    with pytest.raises(DataError) as e:
        load_dataset(node(root, "htnet"))
    msg = str(e.value)
    assert msg.startswith("5 flow file error(s):") and "missing:" not in msg
    for (sub, clip), why in kinds.items():
        assert f"({sub}/{clip}): phase-1 flow {root.resolve() / RELEASE_DIR / f'{sub}_{clip} .png'} {why}" in msg


def test_readers_refuse_a_device_instead_of_reading_it(tmp_path):
    link = tmp_path / "zero.npy"
    os.symlink("/dev/zero", link)
    with pytest.raises(ValueError, match=r"zero\.npy is not a regular file \(a character device\)"):
        read_flow_file(link, FlowFileSpec())
    (tmp_path / "annotations.csv").write_text("subject,clip,label\ns1,a,happiness\n")
    (tmp_path / "stack.npy").mkdir()
    with pytest.raises(DataError, match=r"phase1_array .*stack\.npy must be an existing stacked \.npy file "
                                        r"\(it is a directory\)"):
        load_precomputed(tmp_path, phase1_array="stack.npy")


# ------------------------------------------------------------------ item 16b: names stay in their folder

def test_a_subject_climbing_out_of_the_release_is_refused_even_when_the_file_exists(tmp_path):
    root = release(tmp_path, "htnet")
    outside = tmp_path / "evil"
    outside.mkdir()
    write_png(outside / "sub01_EP02_01f .png", np.zeros((28, 28, 3), np.uint8))
    assert (root / RELEASE_DIR / "../../../evil/sub01_EP02_01f .png").resolve().is_file()  # it would be read
    rewrite_sheet(root, lambda f: [f[0], "../../../evil/sub01", *f[2:]] if f[2] == "EP02_01f" else f)
    with pytest.raises(DataError, match=re.escape(f"{RELEASE_CSV}, row 2 (../../../evil/sub01/EP02_01f): "
                                                  "subject '../../../evil/sub01' holds a '..' component")):
        load_dataset(node(root, "htnet"))


@pytest.mark.parametrize("sub,clip,why", [
    ("sub01", "/etc/passwd", "clip '/etc/passwd' is an absolute path"),
    ("../STSNet_other/sub01", "EP02_01f", "subject '../STSNet_other/sub01' holds a '..' component"),
])
def test_absolute_or_climbing_clip_values_are_refused(tmp_path, sub, clip, why):
    root = release(tmp_path, "htnet")
    rewrite_sheet(root, lambda f: [f[0], sub, clip, *f[3:]] if f[2] == "EP02_01f" else f)
    with pytest.raises(DataError, match=re.escape(f"row 2 ({sub}/{clip}): {why}")):
        load_dataset(node(root, "htnet"))


def test_a_template_naming_its_own_folder_outside_root_still_works(tmp_path):
    flows, data = tmp_path / "flows", tmp_path / "data"
    flows.mkdir()
    data.mkdir()
    (data / "annotations.csv").write_text("subject,clip,label\ns1,a,happiness\ns2,a,surprise\n")
    for s in ("s1", "s2"):
        np.save(flows / f"{s}_a.npy", np.zeros((2, 3, 3), np.float32))
    t = load_precomputed(data, phase1_template=str(flows) + "/{subject}_{clip}.npy")  # absolute: the user's own
    assert list(t.df["flow1_path"]) == [str(flows / "s1_a.npy"), str(flows / "s2_a.npy")]


def _sheet(root: Path, name: str, header: str, row: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(f"{header}\n{row}\n")


LICENSED = {
    "casme2": ("CASME2-coding.csv", "Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Estimated Emotion",
               "1,../../../x,1,2,3,happiness", "row 2 (sub01/../../../x): clip '../../../x' holds a '..' component"),
    "samm": ("SAMM_Micro_FACS_Codes.csv", "Subject,Filename,Onset Frame,Apex Frame,Offset Frame,Estimated Emotion",
             "/etc,006_1_2,1,2,3,happiness", "row 2 (/etc/006_1_2): subject '/etc' is an absolute path"),
    "mmew": ("MMEW.csv", "Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Estimated Emotion",
             "S01,S01-01-001,1,2,3,../../x", "row 2 (S01/S01-01-001): emotion_folder '../../x' holds a '..' component"),
    "casme3": ("part_A.csv", "Subject,Filename,Onset,Apex,Offset,emotion",
               "../spNO.1,a,1,2,3,happy", "row 2 (../spNO.1/a): subject '../spNO.1' holds a '..' component"),
}


@pytest.mark.parametrize("loader", sorted(LICENSED))
def test_licensed_loaders_refuse_sheet_values_leading_out_of_the_frames_folder(tmp_path, loader):
    name, header, row, why = LICENSED[loader]
    _sheet(tmp_path, name, header, row)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / name}, {why}")):
        load_dataset({"name": loader, "root": str(tmp_path), "check_frames": False})


@pytest.mark.parametrize("row,template,why", [
    ("../x,c1,1,2,3,happiness,", "{subject}/{clip}/f{frame}.png", "subject '../x' holds a '..' component"),
    ("s1,c1,1,2,3,happiness,../outside/{frame}.png", None,
     "frame_template '../outside/{frame}.png' (from the sheet) leads to"),
])
def test_generic_refuses_values_and_sheet_templates_leaving_root(tmp_path, row, template, why):
    _sheet(tmp_path, "annotations.csv", "subject,clip,onset,apex,offset,label,frame_template", row)
    params = {"name": "generic", "root": str(tmp_path), "check_frames": False}
    if template:
        params["frame_template"] = template
    with pytest.raises(DataError, match=re.escape(f"annotations.csv, row 2 ({row.split(',')[0]}/c1): {why}")):
        load_dataset(params)
    good = {**params, "frame_template": str(tmp_path.parent / "frames/{subject}/{clip}/f{frame}.png")}
    rewrite = row.replace("../x", "s1").replace("../outside/{frame}.png", "")
    _sheet(tmp_path, "annotations.csv", "subject,clip,onset,apex,offset,label,frame_template",
           rewrite + "\n" + rewrite.replace("s1,c1", "s2,c2"))
    t = load_dataset(good)  # an absolute parameter is the user's own location: still allowed
    assert t.frame_path(0, 1) == tmp_path.parent / "frames/s1/c1/f1.png"


# ------------------------------------------------------------------ item 16c: one file, two roles

def test_a_phase2_template_colliding_with_another_clips_phase1_file_is_refused(tmp_path):
    rows = [*TINY_ROWS, ("samm", "007", "007_3", 0)]  # 007_3's "_1" file is 007_3_1's onset->apex file
    root = release(tmp_path, "causalnet", rows)
    shared = flow_file(root, "007", "007_3_1").resolve()
    with pytest.raises(DataError, match=re.escape(
            f"{RELEASE_CSV}, row 14 (007/007_3): phase-2 flow {shared} is also the phase-1 flow of "
            f"{root.resolve() / RELEASE_CSV}, row 12 (007/007_3_1)")):
        load_dataset(node(root, "causalnet"))
    assert load_dataset(node(root, "htnet"))  # single-phase: no file has two roles


def test_one_template_for_both_phases_is_refused(tmp_path):
    kw = _array_set(tmp_path, ".npy", lambda p, i: np.save(p, np.zeros((2, 3, 3), np.float32)))
    with pytest.raises(DataError, match=r"2 flow file error\(s\):\n  .*row 2 \(s1/a\): phase-2 flow .*s1_a\.npy "
                                        r"is also the phase-1 flow of .*row 2 \(s1/a\)"):
        load_precomputed(tmp_path, phase2_template=kw["phase1_template"], **kw)


# ------------------------------------------------------------------ one error line, exit 2, before training

def test_a_refused_release_is_one_error_line_and_exit_2(tmp_path, capsys):
    from bench.run import main

    root = release(tmp_path, "htnet")
    rewrite_sheet(root, lambda f: [f[0], "/abs", *f[2:]] if f[2] == "EP02_01f" else f)
    rc = main(["study=megc2019_phases", "dataset=megc2019_htnet", f"dataset.root={root}", "study.models=[ststnet]",
               "study.representations=[single_phase]", "tracking=none", "report=false", "progress=false",
               f"paths.runs={tmp_path / 'runs'}", f"paths.cache={tmp_path / 'cache'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and "subject '/abs' is an absolute path" in err[0]
    assert not list((tmp_path / "runs").rglob("units/*.json"))
