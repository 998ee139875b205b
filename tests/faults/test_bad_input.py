"""Bad input, end to end through the public entry points (issue 7): every bad input the loaders and
representations name gives a clear error naming the file and row (or sample), or its documented,
recorded fallback. One compact table per entry point; the per-module tests go deeper:
tests/data/test_data_validate.py (every row check, strict and collect modes), tests/flow/test_flow_pipeline.py
(every kind of cache damage), tests/flow/test_flow_precomputed.py (flow-file formats),
tests/representations/test_repr_formulas.py (degenerate maps per formula), tests/plan/test_run_plan.py (config errors).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.core.config import ConfigError
from bench.data import DataError, load_dataset
from bench.flow import compute_flows
from bench.flow.cache import entry_path
from bench.core.registry import UnknownNameError
from bench.run import main
from models import create_model
from representations import create_representation, list_representations

HEADER = "subject,clip,onset,apex,offset,label"
GOOD = ["a,c1,1,3,5,happiness", "a,c2,1,3,5,surprise", "b,c3,2,4,6,happiness", "b,c4,2,4,6,surprise"]
TPL = "{subject}/{clip}/f{frame:03d}.png"


def write_generic(root: Path, rows: list[str], frames: bool = True) -> Path:
    (root / "annotations.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    if frames:
        rng = np.random.default_rng(0)
        for r in rows:
            s, c = r.split(",")[:2]
            d = root / (s or "_") / c
            d.mkdir(parents=True, exist_ok=True)
            for n in range(10):
                cv2.imwrite(str(d / f"f{n:03d}.png"), rng.integers(0, 255, (16, 16), dtype=np.uint8))
    return root / "annotations.csv"


def generic(root: Path, **kw):
    return load_dataset({"name": "generic", "root": str(root), "frame_template": TPL, **kw})


# (rows, loader kwargs, expected error regex after "<file>": row errors ", row N (<subject>/<clip>): ...", table errors ": ...")
ERRORS = {
    "empty onset key frame": ([*GOOD, "b,c5,,4,6,happiness"], {}, r", row 6 \(b/c5\): onset frame is missing"),
    "'/' offset key frame": ([*GOOD, "b,c5,2,4,/,happiness"], {}, r", row 6 \(b/c5\): offset frame is missing"),
    "unknown emotion": ([*GOOD, "b,c5,2,4,6,hapiness"], {"classes": "megc3"},
                        r", row 6 \(b/c5\): unknown emotion 'hapiness' for class set 'megc3'"),
    "a class with no samples": (GOOD, {"classes": "megc3"},
                                r": class\(es\) \['negative'\] of class set 'megc3' have no samples"),
    "one subject only": (GOOD[:2], {}, r": 1 subject\(s\); leave-one-subject-out needs at least 2"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_loader_errors_name_file_and_row(tmp_path, case):
    rows, kw, msg = ERRORS[case]
    ann = write_generic(tmp_path, rows)
    with pytest.raises(DataError, match=re.escape(str(ann)) + msg):
        generic(tmp_path, **kw)


def test_missing_frame_file_names_row_and_file(tmp_path):
    ann = write_generic(tmp_path, GOOD)
    (tmp_path / "b" / "c4" / "f004.png").unlink()
    with pytest.raises(DataError, match=re.escape(f"{ann}, row 5 (b/c4): frame file missing: {tmp_path.resolve()}/b/c4/f004.png")):
        generic(tmp_path)
    # deleted after loading: compute_flows names the sample and the file instead
    (tmp_path / "b" / "c4" / "f004.png").write_bytes(b"")
    table = generic(tmp_path)
    (tmp_path / "b" / "c4" / "f004.png").unlink()
    with pytest.raises(DataError, match=r"sample b/c4 \(row 3\): cannot read key frame .*b/c4/f004\.png"):
        compute_flows(table, backend="dis", crop={"method": "none"}, size=8, progress=False)


# apex fallbacks: (apex cell, expected apex, apex_source); onset 2, offset 6 -> middle frame 4
FALLBACKS = {
    "'/' apex": ("/", "fallback:missing_apex"),
    "empty apex": ("", "fallback:missing_apex"),
    "apex outside onset..offset": ("9", "fallback:apex_outside_range"),
    "onset == apex": ("2", "fallback:apex_equals_onset"),
}


@pytest.mark.parametrize("case", list(FALLBACKS))
def test_apex_fallbacks_are_logged_and_recorded(tmp_path, caplog, case):
    apex, source = FALLBACKS[case]
    ann = write_generic(tmp_path, [*GOOD[:3], f"b,c4,2,{apex},6,surprise"])
    with caplog.at_level(logging.WARNING, logger="bench.data"):
        t = generic(tmp_path)
    row = t.df.iloc[3]
    assert (row["apex"], row["apex_source"], row["flags"]) == (4, source, source.split(":")[1])
    assert t.problems == [p for p in t.problems if p.startswith(f"{ann}, row 5 (b/c4): ")] and len(t.problems) == 1
    assert any("middle frame 4" in r.message for r in caplog.records)
    with pytest.raises(DataError, match=r"row 5 \(b/c4\): .*strict mode"):
        generic(tmp_path, strict=True)


def test_corrupt_cache_file_is_recomputed_with_a_warning(tmp_path, caplog):
    (tmp_path / "d").mkdir()
    write_generic(tmp_path / "d", GOOD)
    table = generic(tmp_path / "d")
    kw = dict(backend="dis", crop={"method": "none"}, size=16, progress=False, cache_dir=tmp_path / "cache")
    first = compute_flows(table, **kw)
    bad = entry_path(tmp_path / "cache", first.keys[1])
    bad.write_bytes(bad.read_bytes()[:200])  # truncated by a crash or a full disk
    with caplog.at_level(logging.WARNING, logger="bench.flow.pipeline"):
        again = compute_flows(table, **kw)
    assert again.stats["corrupt"] == [str(bad)] and again.stats["hits"] == 3 and again.stats["misses"] == 1
    assert any("is corrupt" in r.message and "a/c2" in r.message for r in caplog.records)
    np.testing.assert_array_equal(first.flows, again.flows)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_a_precomputed_flow_names_sample_and_file(tmp_path, bad):
    (tmp_path / "annotations.csv").write_text("subject,clip,label\ns1,a,happiness\ns1,b,surprise\n"
                                              "s2,a,happiness\ns2,b,surprise\n")
    rng = np.random.default_rng(0)
    for s in ("s1", "s2"):
        for c in ("a", "b"):
            for ph in ("", "_1"):
                f = rng.normal(size=(2, 8, 8)).astype(np.float32)
                if (s, c, ph) == ("s2", "b", "_1"):
                    f[1, 3, 3] = bad
                np.save(tmp_path / f"{s}_{c}{ph}.npy", f)
    table = load_dataset({"name": "precomputed", "root": str(tmp_path), "phase1_template": "{subject}_{clip}.npy",
                          "phase2_template": "{subject}_{clip}_1.npy"})
    with pytest.raises(DataError, match=r"sample s2/b .*phase-2 flow .*s2_b_1\.npy has 1 NaN/inf values"):
        compute_flows(table, size=8, progress=False)


@pytest.mark.parametrize("name", list_representations())
def test_flat_zero_and_huge_flows_are_defined_and_flagged(name):
    rep = create_representation(name, size=8)
    flows = np.zeros((4, 2, 2, 8, 8), np.float32)
    flows[1] = 3.0  # constant: every magnitude map is flat
    flows[2, 1] = 0.0  # phase 2 all zero, phase 1 random
    flows[2, 0] = np.random.default_rng(0).normal(size=(2, 8, 8))
    flows[3] = 1e30  # huge but finite: no overflow to inf in the float32 output
    x, flags = rep.batch(flows, sample_ids=["zero", "const", "phase2_zero", "huge"])
    assert np.isfinite(x.numpy()).all() and x.shape[:2] == (4, len(rep.channels))
    assert any(f.startswith("zero_flow") for f in flags[0]), flags  # the fallback is reported
    if "zero_flow:phase2" in flags[0]:  # representations reading phase 2 report it zero
        assert "zero_flow:phase2" in flags[2], flags


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_representation_refuses_nan_or_inf_naming_the_sample(bad):
    flows = np.zeros((2, 2, 2, 8, 8), np.float32)
    flows[1, 0, 1, 2, 2] = bad
    for name in list_representations():
        with pytest.raises(ValueError, match=r"sample sub02/EP07: phase-1 flow has 1 NaN/inf"):
            create_representation(name).batch(flows, sample_ids=["sub01/EP01", "sub02/EP07"])


UNKNOWN = {
    "representation": (lambda: create_representation("cofx"), r"unknown representation 'cofx'\. Did you mean cof"),
    "model": (lambda: create_model("ststnett", 3, 3), r"unknown model 'ststnett'\. Did you mean ststnet"),
    "dataset": (lambda: load_dataset({"name": "casme"}), r"unknown dataset 'casme'\. Did you mean .*casme2"),
}


@pytest.mark.parametrize("kind", list(UNKNOWN))
def test_unknown_registry_name_lists_what_exists(kind):
    fn, msg = UNKNOWN[kind]
    with pytest.raises(UnknownNameError, match=msg + r".* Available: "):
        fn()


TINY = ["study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
        "study.representations=[single_phase]", "flow.size=32", "tracking=none", "report=false", "progress=false"]

CLI = {  # command-line arguments -> fragments the one-line error must hold
    "unknown study": (["study=smok"], ["smoke", "ablation_phases"]),
    "unknown representation group option": (["study=smoke", "representation=cofx"], ["cofx", "mm_cof"]),
    "unknown model in a study list": (["study=smoke", "study.models=[ststnett]"], ["ststnett", "ststnet", "fmanet"]),
    "unknown dataset": (["study=smoke", "dataset=casme"], ["casme", "casme2"]),
    "unknown key": (["study=smoke", "trainer.epoch=3"], ["trainer.epoch", "epochs"]),
    "malformed override": (["study=smoke", "trainer.epochs=[1,"], ["[1,"]),
    "not an override": (["study=smoke", "epochs"], ["key=value"]),
    "bad value type": (["study=smoke", "trainer.epochs=abc"], ["epochs", "abc"]),
    "bad value": (["study=smoke", "trainer.batch_size=1"], ["batch_size"]),
}


@pytest.mark.parametrize("case", list(CLI))
def test_cli_bad_override_exits_2_with_a_clear_message(tmp_path, session_cache, capsys, case):
    argv, fragments = CLI[case]
    paths = [f"paths.runs={tmp_path / 'runs'}", f"paths.cache={session_cache}", f"paths.reports={tmp_path / 'r'}"]
    extra = TINY if argv[0] == "study=smoke" and "study.models" not in argv[1] else []
    assert main([*argv, *extra, *paths]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    for frag in fragments:
        assert frag in err, (frag, err)
    # refused before any unit of work started
    assert not list((tmp_path / "runs").glob("*/units/*.json"))


def test_config_error_is_a_value_error_for_library_callers():
    """A library caller that catches ValueError catches a bad config, with the readable message."""
    from bench.plan.planner import plan_study

    with pytest.raises(ValueError, match="unknown model 'ststnett'") as e:
        plan_study(["study=smoke", "study.models=[ststnett]"])
    assert isinstance(e.value, ConfigError) and "ststnet" in str(e.value).split("Available:")[-1]
