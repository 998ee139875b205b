"""Issue 12, data side: names the MEGC2019 log cannot hold are refused at load, ``classes: null``
typos are flagged, ``bench.score`` streams a log in bounded memory and refuses broken sample lines,
empty / complex flow and frame files are named, and an unwritable flow cache is a warning."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import bench.evaluation.prediction_files as pf
from bench.data import DataError, load_dataset
from bench.data.__main__ import main as data_main
from bench.data.precomputed import load_precomputed
from bench.flow import compute_flows
from bench.flow import pipeline
from bench.flow.pipeline import FlowError
from bench.data.flowfiles import FlowFileSpec, read_flow_file, write_flo
from bench.evaluation.metrics import pooled_scores
from bench.evaluation.prediction_files import PredictionFileError, read_megc_log, write_megc_log
from bench.score import main as score_main, score_file

HEADER = "subject,clip,onset,apex,offset,label"


def write_generic(root: Path, rows: list[tuple[str, str, str]]) -> Path:
    """An annotations.csv of ``rows`` (subject, clip, label), onset/apex/offset 1/3/5, quoted as needed."""
    import csv

    root.mkdir(parents=True, exist_ok=True)
    with open(root / "annotations.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER.split(","))
        for s, c, lab in rows:
            w.writerow([s, c, 1, 3, 5, lab])
    return root / "annotations.csv"


def generic(root: Path, **kw):
    return load_dataset({"name": "generic", "root": str(root), "frame_template": "{subject}/{clip}/f{frame}.png",
                         **kw})


GOOD = [("s1", "c1", "happiness"), ("s1", "c2", "surprise"), ("s2", "c3", "happiness"), ("s2", "c4", "surprise")]


def _generic_frames(root: Path, rows) -> None:
    """Frames at ``{subject}/{clip}/f{n}.png`` for the generic template above."""
    rng = np.random.default_rng(1)
    for s, c, _ in rows:
        d = root / s / c
        d.mkdir(parents=True, exist_ok=True)
        for n in range(1, 6):
            cv2.imwrite(str(d / f"f{n}.png"), rng.integers(0, 255, (16, 16), dtype=np.uint8))


# ------------------------------------------------------------------------------------ item 3: names


@pytest.mark.parametrize("subject, clip, what, value, says", [
    ("sub 01", "c9", "subject", "sub 01", "a space"),
    ("s2", "EP 02", "clip", "EP 02", "a space"),
    ("s2", "EP\t02", "clip", "EP\t02", "a tab"),
    ("s2", "EP02\nx", "clip", "EP02\nx", "a newline"),
    ("s2", "EP\u00a002", "clip", "EP\u00a002", "no-break space"),
    ("s2", "#EP02", "clip", "#EP02", "comment"),
    ("s,2", "c9", "subject", "s,2", "CSV"),
])
def test_a_name_the_megc_log_cannot_hold_is_refused_at_load(tmp_path, subject, clip, what, value, says):
    rows = [*GOOD, (subject, clip, "surprise")]
    ann = write_generic(tmp_path, rows)
    with pytest.raises(DataError) as e:
        generic(tmp_path, check_frames=False)
    msg = str(e.value)
    line = 7 if "\n" in clip else 6  # the quoted newline makes the CSV row two physical lines
    assert f"{ann}, row {line}" in msg and repr(value) in msg and f"{what} {value!r}" in msg
    assert says in msg and "overrides" in msg  # says what is wrong and how to fix it without the sheet


def test_dataset_name_with_a_space_is_refused(tmp_path):
    write_generic(tmp_path, GOOD)
    with pytest.raises(DataError, match=r"dataset name 'my data' contains a space.*dataset= option"):
        generic(tmp_path, check_frames=False, dataset="my data")


def test_overrides_rename_clips_and_whole_subjects_and_the_log_round_trips(tmp_path):
    rows = [("sub 01", "EP 01", "happiness"), ("sub 01", "EP02", "surprise"), *GOOD[2:]]
    write_generic(tmp_path, rows)
    _generic_frames(tmp_path, rows)
    t = generic(tmp_path, overrides={"sub 01/*": {"subject": "sub01"}, "sub 01/EP 01": {"clip": "EP01"}})
    assert t.df["subject"].tolist()[:2] == ["sub01", "sub01"] and t.df["clip"].tolist()[:2] == ["EP01", "EP02"]
    assert t.df["flags"].iat[0] == "override:subject;override:clip"
    assert any("override applied" in p and "'sub 01'" in p for p in t.problems)
    # frames still resolve to the files as named in the sheet
    assert t.key_frame_paths(0)[0] == (tmp_path / "sub 01" / "EP 01" / "f1.png").resolve()
    # and every loaded name survives the MEGC2019 log
    pred = t.df.assign(y_true=t.df["label"], y_pred=t.df["label"], source_dataset=t.df["dataset"],
                       fold=t.df["subject"])
    back = read_megc_log(write_megc_log(pred, tmp_path / "x.log"))
    assert back["clip"].tolist() == t.df["clip"].tolist()
    with pytest.raises(DataError, match=r"override for 'sub 01/\*' sets \['onset'\]; a '<subject>/\*' "
                                        r"override can only rename the subject"):
        generic(tmp_path, overrides={"sub 01/*": {"subject": "sub01", "onset": 2}})
    with pytest.raises(DataError, match=r"override for unknown subject 'nobody/\*'"):
        generic(tmp_path, overrides={"nobody/*": {"subject": "x"}})


def test_precomputed_flows_follow_a_renamed_row(tmp_path):
    (tmp_path / "annotations.csv").write_text("subject,clip,label\ns 1,a,happiness\ns 1,b,surprise\n"
                                              "s2,a,happiness\ns2,b,surprise\n")
    rng = np.random.default_rng(0)
    arrays = {}
    for s, c in (("s 1", "a"), ("s 1", "b"), ("s2", "a"), ("s2", "b")):
        arrays[s, c] = rng.normal(size=(2, 6, 6)).astype(np.float32)
        np.save(tmp_path / f"{s}_{c}.npy", arrays[s, c])
    kw = dict(phase1_template="{subject}_{clip}.npy")
    with pytest.raises(DataError, match=r"row 2 \('s 1'/'a'\): subject 's 1' contains a space"):
        load_precomputed(tmp_path, **kw)
    t = load_precomputed(tmp_path, overrides={"s 1/*": {"subject": "s1"}, "s2/a": {"clip": "a2"}}, **kw)
    assert t.df["subject"].tolist() == ["s1", "s1", "s2", "s2"] and t.df["clip"].tolist() == ["a", "b", "a2", "b"]
    fs = compute_flows(t, size=None, progress=False)
    for k, key in enumerate(arrays):
        np.testing.assert_array_equal(fs.flows[k, 0], arrays[key])


def test_writer_refuses_the_other_separators_too(tmp_path):
    pred = pd.DataFrame({"subject": ["a,b", "c"], "clip": ["x", "y"], "y_true": [0, 1], "y_pred": [0, 1]})
    with pytest.raises(ValueError, match=r"row 0: subject 'a,b' contains ','"):
        write_megc_log(pred, tmp_path / "x.log")
    with pytest.raises(ValueError, match=r"row 1: clip '#y' starts with '#'"):
        write_megc_log(pred.assign(subject=["a", "c"], clip=["x", "#y"]), tmp_path / "x.log")


# ------------------------------------------------------------------------ item 10: classes: null


def test_inferred_classes_are_listed_and_likely_typos_flagged(tmp_path, caplog):
    rows = [*GOOD, ("s2", "c5", "hapiness"), ("s1", "c6", "fear"), ("s1", "c7", "fear")]
    ann = write_generic(tmp_path, rows)
    with caplog.at_level(logging.WARNING, logger="bench.data"):
        t = generic(tmp_path, check_frames=False)
    assert t.classes == ["fear", "hapiness", "happiness", "surprise"]  # still loaded: a warning, not an error
    first = [r.message for r in caplog.records if r.name == "bench.data"][0]  # before the flags
    assert "classes: null, so every distinct label is a class; found 4: " in first
    for c, n, s in (("fear", 2, 1), ("hapiness", 1, 1), ("happiness", 2, 2), ("surprise", 2, 2)):
        assert f"'{c}': {n} clip(s) / {s} subject(s)" in first
    assert "likely typos: 'fear', 'hapiness'" in first
    assert t.meta["inferred_classes"]["suspect"] == {"hapiness": "only 1 clip",
                                                     "fear": "2 clips, all from subject 's1'"}
    typo = next(p for p in t.problems if "'hapiness'" in p)
    assert f"{ann}, row 6 (s2/c5)" in typo and "classes=[...]" in typo
    assert any("'fear'" in p and "row 7 (s1/c6)" in p for p in t.problems)
    with pytest.raises(DataError, match=r"(?s)class 'hapiness' has only 1 clip.*strict mode"):
        generic(tmp_path, check_frames=False, strict=True)
    # a named class set is not inferred: no listing, no flag
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bench.data"):
        t = generic(tmp_path, check_frames=False, classes=["happiness", "surprise"])
    assert "inferred_classes" not in t.meta and "distinct label" not in caplog.text


def test_integer_labels_without_classes_are_checked_too(tmp_path):
    write_generic(tmp_path, [("s1", "a", "0"), ("s2", "b", "0"), ("s1", "c", "1"), ("s2", "d", "1"),
                             ("s2", "e", "2")])
    t = generic(tmp_path, check_frames=False)
    assert t.classes == ["0", "1", "2"] and t.meta["inferred_classes"]["suspect"] == {"2": "only 1 clip"}


def test_summary_marks_the_likely_typos(tmp_path, capsys):
    ann = write_generic(tmp_path, [*GOOD, ("s2", "c5", "hapiness")])
    lines = ann.read_text().splitlines()
    ann.write_text("\n".join([lines[0] + ",frame_template"] + [ln + ",{subject}/{clip}/f{frame}.png"
                                                              for ln in lines[1:]]) + "\n")
    assert data_main(["summary", "dataset=generic", f"dataset.root={tmp_path}"]) == 0  # generic: classes: null
    out = capsys.readouterr().out
    assert "classes: null, every distinct label is a class" in out
    line = next(ln for ln in out.splitlines() if " hapiness " in ln)
    assert "only 1 clip: a label typo?" in line
    assert "class 'hapiness' has only 1 clip" in out  # and in the problems list


# ---------------------------------------------------------------------------- item 13: bench.score


@pytest.mark.parametrize("text, line", [
    ("casme2 sub01\nEP01 0 1\nEP02 x\n", 3),     # was read as a fold header "EP02 x"
    ("casme2 sub01\nEP01 0 1\nEP02 1.5\n", 3),
    ("casme2 sub01\nEP01 0 1\nEP02 one\nEP03 0 0\n", 3),
])
def test_a_broken_sample_line_is_not_a_fold_header(tmp_path, capsys, text, line):
    p = tmp_path / "bad.log"
    p.write_text(text)
    with pytest.raises(PredictionFileError, match="a sample line needs 3 fields") as e:
        read_megc_log(p)
    assert e.value.line == line
    assert score_main([str(p)]) == 2
    assert capsys.readouterr().err.startswith(f"bench.score: error: {p}:{line}: 2 fields")


def test_fold_headers_of_known_and_seen_databases_still_work(tmp_path):
    p = tmp_path / "ok.log"
    p.write_text("casme2 sub01\na 0 0\nSAMM 006\nb 1 1\nmmew s1\nc 2 2\nmmew s2\nd 0 1\nCASME_II sub02\ne 1 1\n")
    assert read_megc_log(p)["subject"].tolist() == ["casme2/sub01", "samm/006", "mmew/s1", "mmew/s2",
                                                    "casme2/sub02"]


def _random_log(path: Path, n_subjects: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lines, rows = [], []
    for s in range(n_subjects):
        db = ("smic", "casme2", "samm")[s % 3]
        lines.append(f"{db} sub{s}")
        for j in range(int(rng.integers(1, 6))):
            t, p = (int(x) for x in rng.integers(0, 3, 2))
            lines.append(f"c{s}_{j} {t} {p}")
            rows.append((db, t, p))
    path.write_text("\n".join(lines) + "\n")
    return pd.DataFrame(rows, columns=["dataset", "y_true", "y_pred"])


def test_scoring_a_log_builds_no_frame_and_matches_the_frame_scores(tmp_path, monkeypatch):
    truth = _random_log(tmp_path / "r.log")
    monkeypatch.setattr(pf, "read_megc_log", lambda *a, **k: pytest.fail("scoring built the DataFrame"))
    res = score_file(tmp_path / "r.log")
    exp = pooled_scores(truth.y_true, truth.y_pred, 3)
    assert {k: res["overall"][k] for k in exp} == pytest.approx(exp) and res["n"] == len(truth)
    for ds, g in truth.groupby("dataset"):
        assert res["per_dataset"][ds]["uf1"] == pytest.approx(pooled_scores(g.y_true, g.y_pred, 3)["uf1"])


def test_repeated_clip_and_malformed_line_the_first_in_file_order_wins(tmp_path):
    p = tmp_path / "d.log"
    body = "".join(f"c{j} 0 1\n" for j in range(50))
    p.write_text("casme2 s1\n" + body + "samm 006\nx 0 0\ncasme2 s1\nc7 1 1\nbroken\n")
    with pytest.raises(PredictionFileError, match=r"^.*:55: clip 'c7' of casme2 s1 is listed twice "
                                                  r"\(first on line 9\)"):
        score_file(p)
    p.write_text("casme2 s1\n" + body + "broken\ncasme2 s1\nc7 1 1\n")
    with pytest.raises(PredictionFileError, match=r":52: 1 fields"):
        score_file(p)
    p.write_text(("casme2 s1\n" + body + "samm 006\nx 0 0\n") * 2)  # a 53-line log concatenated twice
    with pytest.raises(PredictionFileError, match=r":55: clip 'c0' of casme2 s1 is listed twice \(first on line 2\)"):
        score_file(p)


def test_a_hash_collision_is_not_a_repeated_clip(tmp_path, monkeypatch):
    monkeypatch.setattr(pf, "hash", lambda key: 7, raising=False)  # every key collides
    p = tmp_path / "c.log"
    p.write_text("smic s1\na 0 0\nb 1 1\nsamm 006\na 2 2\n")
    assert score_file(p)["n"] == 3
    p.write_text("smic s1\na 0 0\nb 1 1\na 2 2\n")
    with pytest.raises(PredictionFileError, match=r":4: clip 'a' of smic s1 is listed twice \(first on line 2\)"):
        score_file(p)


_PEAK = textwrap.dedent("""
    import resource, subprocess, sys
    r = subprocess.run([sys.executable, "-m", "bench.score", sys.argv[1]], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB on Linux
""")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss units and accounting are Linux's")
def test_score_memory_stays_bounded_on_a_big_log(tmp_path):
    """Benchmark-style check, not a timing: peak RSS of ``python -m bench.score`` on a ~30 MB log
    (1.7 M samples) minus that on a one-line log. Reading the log into a DataFrame cost ~34 bytes of
    RSS per byte of log (about 1 GB here); streaming costs 8 bytes a sample (the repeated-clip
    hashes), ~15 MB here. The bound leaves room for allocator noise, not for a frame of all lines."""
    big, tiny = tmp_path / "big.log", tmp_path / "tiny.log"
    tiny.write_text("casme2 sub01\nEP01 0 0\n")
    with open(big, "w") as f:
        for s in range(42_000):
            f.write(f"{('smic', 'casme2', 'samm')[s % 3]} sub{s:06d}\n")
            f.write("".join(f"EP{s:06d}_{j:02d}f {j % 3} {(j * 7) % 3}\n" for j in range(40)))
    assert 25e6 < big.stat().st_size < 40e6

    def peak_kib(path):
        r = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parents[2], timeout=600)
        assert r.returncode == 0, r.stderr
        return int(r.stdout.split()[-1])

    growth_mb = (peak_kib(big) - peak_kib(tiny)) / 1024
    assert growth_mb < 100, f"bench.score grew by {growth_mb:.0f} MB on a {big.stat().st_size / 1e6:.0f} MB log"


# --------------------------------------------------------------------- item 14: empty/complex files


def test_an_empty_frame_names_the_file(tmp_path):
    _generic_frames(tmp_path, GOOD)
    write_generic(tmp_path, GOOD)
    t = generic(tmp_path)
    (tmp_path / "s2" / "c3" / "f3.png").write_bytes(b"")  # the apex frame, 0 bytes
    with pytest.raises(FlowError, match=r"s2/c3 .*frame .*s2/c3/f3\.png is an empty file \(0 bytes\)"):
        compute_flows(t, backend="dis", size=16, progress=False)
    (tmp_path / "s2" / "c3" / "f3.png").write_bytes(b"not a png at all")
    with pytest.raises(FlowError, match=r"cannot decode image .*s2/c3/f3\.png \(16 bytes"):
        compute_flows(t, backend="dis", size=16, progress=False)


@pytest.mark.parametrize("ext", [".npy", ".npz", ".flo", ".png"])
def test_an_empty_flow_file_is_a_value_error_naming_it(tmp_path, ext):
    p = tmp_path / f"empty{ext}"
    p.write_bytes(b"")
    spec = FlowFileSpec(normalisation="minmax", channels=("u", "v", "m")) if ext == ".png" else FlowFileSpec()
    with pytest.raises(ValueError, match=rf"{p.name}: empty file \(0 bytes\)"):
        read_flow_file(p, spec)
    if ext == ".npy":  # a sample of a stacked array: the memory-mapped path
        with pytest.raises(ValueError, match=rf"{p.name}: empty file \(0 bytes\)"):
            read_flow_file(p, spec, index=0)


def test_a_truncated_npy_is_named(tmp_path):
    p = tmp_path / "t.npy"
    np.save(p, np.zeros((2, 4, 4), np.float32))
    p.write_bytes(p.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"t\.npy: not a readable \.npy array"):
        read_flow_file(p, FlowFileSpec())


def _precomputed(tmp_path, flow=lambda i: np.ones((2, 5, 5), np.float32)):
    (tmp_path / "annotations.csv").write_text("subject,clip,label\ns1,a,happiness\ns1,b,surprise\n"
                                              "s2,a,happiness\ns2,b,surprise\n")
    for i, (s, c) in enumerate((("s1", "a"), ("s1", "b"), ("s2", "a"), ("s2", "b"))):
        np.save(tmp_path / f"{s}_{c}.npy", flow(i))
    return dict(phase1_template="{subject}_{clip}.npy")


def test_empty_precomputed_files_are_refused_at_load(tmp_path):
    kw = _precomputed(tmp_path)
    (tmp_path / "s2_a.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"row 4 \(s2/a\): phase-1 flow file is empty \(0 bytes\): .*s2_a\.npy"):
        load_precomputed(tmp_path, **kw)
    np.save(tmp_path / "stack.npy", np.zeros((4, 2, 3, 3), np.float32))
    (tmp_path / "stack.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"phase1_array: .*stack\.npy: empty file \(0 bytes\)"):
        load_precomputed(tmp_path, phase1_array="stack.npy")
    (tmp_path / "annotations.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"annotations\.csv: the annotation file is empty \(0 bytes\)"):
        load_precomputed(tmp_path, **kw)


def test_complex_flows_are_refused_not_made_real(tmp_path):
    kw = _precomputed(tmp_path, lambda i: (np.ones((2, 5, 5)) * (1 + 1j if i == 2 else 1)).astype(
        np.complex64 if i == 2 else np.float32))
    t = load_precomputed(tmp_path, **kw)
    with pytest.raises(DataError, match=r"sample s2/a .*s2_a\.npy: flow array is complex \(complex64\)"):
        compute_flows(t, size=None, progress=False)
    np.savez(tmp_path / "uv.npz", u=np.zeros((3, 3), np.complex128), v=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"uv\.npz\[u\]: flow array is complex"):
        read_flow_file(tmp_path / "uv.npz", FlowFileSpec())
    np.save(tmp_path / "stack.npy", np.zeros((4, 2, 3, 3), np.complex64))
    with pytest.raises(DataError, match=r"phase1_array: .*stack\.npy: flow array is complex"):
        load_precomputed(tmp_path, phase1_array="stack.npy")
    np.save(tmp_path / "s.npy", np.array([[["a"] * 3] * 3] * 2))
    with pytest.raises(ValueError, match=r"s\.npy: flow array has dtype <U1; expected real numbers"):
        read_flow_file(tmp_path / "s.npy", FlowFileSpec())


def test_write_flo_round_trip_unaffected(tmp_path):
    f = np.random.default_rng(0).normal(size=(2, 4, 5)).astype(np.float32)
    write_flo(tmp_path / "x.flo", f)
    np.testing.assert_array_equal(read_flow_file(tmp_path / "x.flo", FlowFileSpec()), f)


@pytest.fixture
def frames_table(tmp_path):
    _generic_frames(tmp_path / "d", GOOD)
    write_generic(tmp_path / "d", GOOD)
    return generic(tmp_path / "d")


def test_an_unwritable_flow_cache_is_a_warning_and_the_flows_are_kept(frames_table, tmp_path, caplog):
    kw = dict(backend="dis", crop={"method": "none"}, size=16, progress=False)
    ref = compute_flows(frames_table, **kw)
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")  # root ignores chmod; this cannot be written
    with caplog.at_level(logging.WARNING, logger="bench.flow.pipeline"):
        fs = compute_flows(frames_table, cache_dir=blocked, **kw)
    np.testing.assert_array_equal(fs.flows, ref.flows)
    msg = next(r.message for r in caplog.records if "cannot be written" in r.message)
    assert str(blocked) in msg and "Errno" in msg and "continuing without caching" in msg
    assert "flow extraction failed" not in caplog.text
    assert fs.stats["cache_error"].startswith(str(blocked)) and fs.stats["uncached"] == 4


def test_a_cache_write_failing_mid_run_is_reported_as_such(frames_table, tmp_path, caplog, monkeypatch):
    def full(path, flows, flags=""):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pipeline, "save_entry", full)
    kw = dict(backend="dis", crop={"method": "none"}, size=16, progress=False)
    with caplog.at_level(logging.WARNING, logger="bench.flow.pipeline"):
        fs = compute_flows(frames_table, cache_dir=tmp_path / "c", **kw)
    np.testing.assert_array_equal(fs.flows, compute_flows(frames_table, **kw).flows)
    per_sample = [r.message for r in caplog.records if r.message.startswith("flow cache: cannot write")]
    assert len(per_sample) == 4 and all(str(tmp_path / "c") in m and "No space left on device" in m
                                        for m in per_sample)
    assert any("4 of 4 computed flows could not be written" in r.message for r in caplog.records)
    assert fs.stats["uncached"] == 4 and "flow extraction failed" not in caplog.text
    assert not any(f.endswith(".npz") for _, _, files in os.walk(tmp_path / "c") for f in files)
