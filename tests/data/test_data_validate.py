"""Validation on the generic format: each check's error names the file and the spreadsheet row."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.data import DataError, load_dataset
from bench.data._sheets import partial_format
from bench.data.classes import resolve_class_set

HEADER = "subject,clip,onset,apex,offset,label,au"
GOOD = [
    "a,c1,1,3,5,happiness,12",
    "a,c2,1,2,5,surprise,1+2",
    "b,c3,2,4,6,happiness,",
    "b,c4,2,4,6,surprise,",
]


def write(tmp: Path, rows: list[str], frames: bool = True, name: str = "annotations.csv") -> Path:
    (tmp / name).write_text("\n".join([HEADER, *rows]) + "\n")
    if frames:
        for r in rows:
            s, c, *_ = r.split(",")
            d = tmp / s / c
            d.mkdir(parents=True, exist_ok=True)
            for n in range(0, 12):
                cv2.imwrite(str(d / f"f{n:03d}.png"), np.zeros((4, 4), np.uint8))
    return tmp / name


def load(tmp: Path, **kw):
    return load_dataset({"name": "generic", "root": str(tmp), "frame_template": "{subject}/{clip}/f{frame:03d}.png", **kw})


def test_good_table_columns_and_dtypes(tmp_path):
    write(tmp_path, GOOD)
    t = load(tmp_path)
    assert t.classes == ["happiness", "surprise"] and t.subjects == ["a", "b"]
    assert t.df["label"].tolist() == [0, 1, 0, 1] and t.df["onset"].dtype == "int64"
    assert t.frame_path(0, 3) == tmp_path.resolve() / "a/c1/f003.png"
    assert t.key_frame_paths(2) == tuple(tmp_path.resolve() / f"b/c3/f{n:03d}.png" for n in (2, 4, 6))
    assert t.problems == [] and set(t.df["apex_source"]) == {"annotated"}


@pytest.mark.parametrize(
    "row, message",
    [
        ("b,c9,x,4,6,happiness,", r"row 6 \(b/c9\): onset 'x' is not a frame number"),
        ("b,c9,2.5,4,6,happiness,", r"row 6 \(b/c9\): onset '2.5' is not an integer frame number"),
        ("b,c9,,4,6,happiness,", r"row 6 \(b/c9\): onset frame is missing"),
        ("b,c9,6,4,2,happiness,", r"row 6 \(b/c9\): offset 2 is not after onset 6"),
        ("b,c9,2,4,6,hapiness,", r"row 6 \(b/c9\): unknown emotion 'hapiness' for class set 'megc3'"),
        ("b,c9,2,4,6,,", r"row 6 \(b/c9\): emotion is empty"),
        ("a,c1,2,4,6,happiness,", r"row 6 \(a/c1\): duplicated clip a/c1"),
        (",c9,2,4,6,happiness,", r"row 6 \(/c9\): empty subject"),
    ],
)
def test_row_errors_name_file_and_row(tmp_path, row, message):
    write(tmp_path, [*GOOD, row])
    classes = "megc3" if "hapiness" in row else None
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "annotations.csv")) + ", " + message):
        load(tmp_path, classes=classes)


def test_duplicate_names_both_rows(tmp_path):
    write(tmp_path, [*GOOD, "a,c2,1,3,5,happiness,"])
    with pytest.raises(DataError, match=r"row 6 \(a/c2\): duplicated clip a/c2 \(first at .*annotations\.csv, row 3 \(a/c2\)\)"):
        load(tmp_path)


def test_all_row_errors_reported_together(tmp_path):
    write(tmp_path, [*GOOD, "b,c8,x,4,6,happiness,", "b,c9,6,4,2,happiness,"])
    with pytest.raises(DataError, match=r"2 row errors:\n  .*row 6 \(b/c8\): onset.*\n  .*row 7 \(b/c9\): offset") as e:
        load(tmp_path)
    assert "row 6" in str(e.value) and "row 7" in str(e.value)


def test_apex_fallbacks_logged_and_recorded(tmp_path, caplog):
    rows = ["a,c1,1,/,5,happiness,", "a,c2,1,9,5,surprise,", "b,c3,2,2,6,happiness,", "b,c4,2,4,6,surprise,"]
    write(tmp_path, rows)
    with caplog.at_level(logging.WARNING, logger="bench.data"):
        t = load(tmp_path)
    assert t.df["apex"].tolist() == [3, 3, 4, 4]
    assert t.df["apex_source"].tolist() == ["fallback:missing_apex", "fallback:apex_outside_range",
                                            "fallback:apex_equals_onset", "annotated"]
    assert t.df["flags"].tolist() == ["missing_apex", "apex_outside_range", "apex_equals_onset", ""]
    assert len(t.problems) == 3 and sum("middle frame" in r.message for r in caplog.records) == 3
    assert "row 2" in t.problems[0] and "row 3" in t.problems[1] and "row 4" in t.problems[2]
    with pytest.raises(DataError, match=r"(?s)3 row errors:.*row 2 \(a/c1\): apex '/'.*strict"):
        load(tmp_path, strict=True)


def test_missing_frames_error_summary_or_unchecked(tmp_path):
    write(tmp_path, GOOD, frames=False)
    with pytest.raises(DataError, match=r"4 frame errors:\n  .*row 2 \(a/c1\): frame file missing: .*a/c1/f001\.png"):
        load(tmp_path)
    t = load(tmp_path, check_frames="summary")
    assert len(t) == 4 and len(t.problems) == 1
    assert "key frames missing for 4 of 4 clips" in t.problems[0] and "row 2" in t.problems[0]
    assert load(tmp_path, check_frames=False).problems == []
    with pytest.raises(ValueError, match="check_frames"):
        load(tmp_path, check_frames="sometimes")


def test_unmapped_emotions_dropped_with_count(tmp_path):
    write(tmp_path, [*GOOD, "b,c5,2,4,6,others,", "a,c6,2,4,6,Others,", "a,c7,2,4,6,sad,"])
    t = load(tmp_path, classes="megc3")
    assert len(t) == 5 and t.df["label"].tolist() == [1, 2, 1, 2, 0]  # sad -> negative via synonyms
    assert any("dropped 2 clip(s)" in p and "'megc3'" in p for p in t.problems)


def test_empty_class_and_too_few_subjects(tmp_path):
    write(tmp_path, GOOD)
    with pytest.raises(DataError, match=r"annotations\.csv: class\(es\) \['negative'\] of class set 'megc3' have no samples"):
        load(tmp_path, classes="megc3")
    write(tmp_path, GOOD[:2])
    with pytest.raises(DataError, match=r"annotations\.csv: 1 subject\(s\); leave-one-subject-out needs at least 2"):
        load(tmp_path)
    assert len(load(tmp_path, min_subjects=1)) == 2


def test_collect_mode_drops_bad_rows_and_lists_every_problem(tmp_path):
    write(tmp_path, [*GOOD, "b,c8,x,4,6,happiness,", "a,c1,2,4,6,happiness,"])
    t = load(tmp_path, errors="collect")
    assert len(t) == 4
    errs = [p for p in t.problems if p.startswith("error:")]
    assert len(errs) == 2 and "row 6" in errs[0] and "row 7" in errs[1]


def test_integer_labels_and_explicit_classes(tmp_path):
    write(tmp_path, ["a,c1,1,3,5,0,", "a,c2,1,3,5,1,", "b,c3,1,3,5,0,", "b,c4,1,3,5,1,"])
    t = load(tmp_path, classes=["calm", "tense"])
    assert t.classes == ["calm", "tense"] and t.df["emotion"].tolist() == ["calm", "tense", "calm", "tense"]
    write(tmp_path, ["a,c1,1,3,5,0,", "a,c2,1,3,5,5,", "b,c3,1,3,5,0,", "b,c4,1,3,5,1,"])
    with pytest.raises(DataError, match=r"row 3 \(a/c2\): label 5 is not an index into the 2 classes"):
        load(tmp_path, classes=["calm", "tense"])
    # explicit mapping: order = class order, emotions matched case-insensitively, others dropped
    write(tmp_path, [*GOOD, "b,c5,2,4,6,Fear,"])
    t = load(tmp_path, classes={"pos": ["happiness"], "other": ["surprise", "FEAR"]})
    assert t.classes == ["pos", "other"] and t.df["label"].tolist() == [0, 1, 0, 1, 1]


def test_frame_template_column_xlsx_and_renamed_columns(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Participant", "Video", "Onset", "Apex", "Offset", "Emotion", "Frame Template"])
    ws.append(["006", "v1", 1, 3, 5, "happiness", "{subject}/{clip}/{subject}_{frame:05d}.jpg"])
    ws.append(["007", "v1", 1, 3, 5, "surprise", "{subject}/{clip}/{subject}_{frame:05d}.jpg"])
    wb.save(tmp_path / "ann.xlsx")
    t = load_dataset({"name": "generic", "root": str(tmp_path), "annotation": "ann.xlsx", "check_frames": False,
                      "columns": {"Participant": "subject", "Video": "clip", "Emotion": "label"}})
    assert t.subjects == ["006", "007"]
    assert t.frame_path(1, 3) == tmp_path.resolve() / "007/v1/007_00003.jpg"


def test_unknown_parameter_lists_accepted(tmp_path):
    write(tmp_path, GOOD)
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['rot'\].*Accepted: root, annotation"):
        load(tmp_path, rot="x")


def test_helpers():
    with pytest.raises(KeyError):
        partial_format("/d/{session}/{frame}.jpg", {"subject": "s"})
    assert partial_format("{subject}/{frame:05d}.jpg", {"subject": "s{1}"}).format(frame=7) == "s{1}/00007.jpg"
    cs = resolve_class_set("casme2")
    assert cs.label_of("Happy") == 0 and cs.label_of("fear") is None and not cs.is_known("hapiness")
    assert resolve_class_set("samm").label_of("Other") == 4
    with pytest.raises(KeyError, match="Available: casme2"):
        resolve_class_set("nope")


def test_overrides_correct_errata_and_are_recorded(tmp_path):
    write(tmp_path, [*GOOD[:3], "b,c4,6,4,2,surprise,"])  # offset before onset on row 5
    with pytest.raises(DataError, match=r"row 5 \(b/c4\): offset 2 is not after onset 6"):
        load(tmp_path)
    t = load(tmp_path, overrides={"b/c4": {"onset": 2, "offset": 6}})
    r = t.df.set_index("clip").loc["c4"]
    assert (r["onset"], r["apex"], r["offset"], r["flags"]) == (2, 4, 6, "override:onset,offset")
    assert any("row 5 (b/c4): override applied" in p and "'6'" in p for p in t.problems)
    with pytest.raises(DataError, match=r"override for unknown clip 'b/c9'"):
        load(tmp_path, overrides={"b/c4": {"onset": 2, "offset": 6}, "b/c9": {"apex": 3}})
    with pytest.raises(DataError, match=r"sets \['subject'\]"):
        load(tmp_path, overrides={"b/c4": {"subject": "z"}})
