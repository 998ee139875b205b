"""Every real-dataset loader on small fixture sheets in the real column layouts, with each quirk."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from bench.data import DataError, load_dataset
from bench.data.megc2019 import DEFAULT_GT, read_gt

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def write_xlsx(path: Path, sheet: str, rows: list[list], first_row: int = 1) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for i, r in enumerate(rows):
        for j, v in enumerate(r):
            if v is not None:
                ws.cell(row=first_row + i, column=j + 1, value=v)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def touch_frames(folder: Path, names: list[str], value: int = 100) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        cv2.imwrite(str(folder / n), np.full((8, 8), value, np.uint8))


# --------------------------------------------------------------------------------------------- CASME II
CASME2_HEADER = ["Subject", "Filename", "Unnamed: 2", "OnsetFrame", "ApexFrame", "OffsetFrame",
                 "Unnamed: 6", "Action Units", "Estimated Emotion"]
CASME2_ROWS = [
    [1, "EP02_01f", None, 46, 59, 86, None, "12", "happiness"],
    [1, "EP19_05f", None, 1, "/", 11, None, "4+7", "disgust"],  # the "/" apex
    [2, "EP01_11f", None, 10, 15, 20, None, "14", "repression"],
    [2, "EP03_02", None, 5, 8, 12, None, "4", "fear"],  # not in the 5-class set: dropped
    [3, "EP01_01", None, 1, 3, 5, None, "1+2", "surprise"],
    [3, "EP01_02", None, 1, 3, 5, None, "", "others"],
]


def make_casme2(root: Path, rows=CASME2_ROWS, frames: str = "raw") -> Path:
    write_xlsx(root / "CASME2-coding-20140508.xlsx", "Sheet1", [CASME2_HEADER, *rows])
    prefix, sub = ("img", "CASME2_RAW_selected") if frames == "raw" else ("reg_img", "Cropped")
    for r in rows:
        if isinstance(r[3], int) and isinstance(r[5], int):
            keys = {r[3], r[5], (r[3] + r[5] + 1) // 2} | ({r[4]} if isinstance(r[4], int) else set())
            touch_frames(root / sub / f"sub{r[0]:02d}" / r[1], [f"{prefix}{k}.jpg" for k in keys])
    return root


def test_casme2_quirks(tmp_path):
    make_casme2(tmp_path)
    t = load_dataset({"name": "casme2", "root": str(tmp_path)})
    df = t.df.set_index("clip")
    assert t.classes == ["happiness", "surprise", "disgust", "repression", "others"]
    assert len(t) == 5 and "EP03_02" not in df.index
    assert df.loc["EP02_01f", "subject"] == "sub01" and df.loc["EP01_11f", "subject"] == "sub02"
    assert df["label"].to_dict() == {"EP02_01f": 0, "EP19_05f": 2, "EP01_11f": 3, "EP01_01": 1, "EP01_02": 4}
    assert (df.loc["EP19_05f", "apex"], df.loc["EP19_05f", "apex_source"]) == (6, "fallback:missing_apex")
    assert df.loc["EP19_05f", "flags"] == "missing_apex" and df.loc["EP02_01f", "apex_source"] == "annotated"
    assert df.loc["EP19_05f", "au"] == "4+7"
    assert t.frame_path(0, 46) == tmp_path.resolve() / "CASME2_RAW_selected/sub01/EP02_01f/img46.jpg"
    assert any("dropped 1" in p and "fear: 1" in p for p in t.problems)
    assert any("row 3" in p and "apex" in p for p in t.problems)  # the "/" row is spreadsheet row 3


def test_casme2_cropped_frames_and_row_errors(tmp_path):
    make_casme2(tmp_path, frames="cropped")
    t = load_dataset({"name": "casme2", "root": str(tmp_path), "frames": "cropped"})
    assert str(t.frame_path(0, 46)).endswith("Cropped/sub01/EP02_01f/reg_img46.jpg")
    bad = [r[:] for r in CASME2_ROWS]
    bad[2][3] = "ten"  # non-numeric onset on spreadsheet row 4
    write_xlsx(tmp_path / "CASME2-coding-20140508.xlsx", "Sheet1", [CASME2_HEADER, *bad])
    with pytest.raises(DataError, match=r"CASME2-coding-20140508\.xlsx, row 4 \(sub02/EP01_11f\): onset 'ten' is not a frame number"):
        load_dataset({"name": "casme2", "root": str(tmp_path), "frames": "cropped"})
    with pytest.raises(DataError, match=r"row 3 \(sub01/EP19_05f\): apex '/'.*strict"):
        make_casme2(tmp_path, frames="cropped")
        load_dataset({"name": "casme2", "root": str(tmp_path), "frames": "cropped", "strict": True})


# --------------------------------------------------------------------------------------------- SAMM
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
               "Type", "Action Units", "Notes", "Estimated Emotion", "Objective Classes"]
SAMM_ROWS = [
    ["006", "006_1_2", 1, 5562, 5566, 5590, 29, "Micro - 1/2", "4+7", "", "Anger", 3],
    ["006", "006_1_3", 1, 100, 200, 150, 51, "Micro - 1/2", "4", "", "Contempt", 3],  # apex outside range
    [7, "007_3_1", 3, 10, 12, 20, 11, "Micro - 1/2", "12", "", "Happiness", 1],  # number-formatted subject
    ["007", "007_3_2", 3, 1, -1, 9, 9, "Micro - 1/2", "1+2", "", "Surprise", 6],  # -1 apex
    ["009", "009_1_1", 1, 3, 4, 8, 6, "Micro - 1/2", "R14", "", "Other", 7],
    ["009", "009_1_2", 1, 3, 4, 8, 6, "Micro - 1/2", "9", "", "Disgust", 3],  # dropped in 5-class
]
SAMM_NOTES = [["SAMM micro-movement FACS codes"], [None], ["Notes: frames are 200 fps"]] + [[f"note {i}"] for i in range(10)]


def make_samm_frames(root: Path, rows=SAMM_ROWS) -> None:
    for r in rows:
        s = str(r[0]).zfill(3)
        keys = {r[3], r[5], (r[3] + r[5] + 1) // 2, r[4]}
        touch_frames(root / "SAMM" / s / r[1], [f"{s}_{k:05d}.jpg" for k in keys if k > 0])


def test_samm_notes_string_subjects_and_apex_outside(tmp_path):
    # 13 lines of notes, header on row 14, data from row 15
    write_xlsx(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", "MICRO_ONLY", [*SAMM_NOTES, SAMM_HEADER, *SAMM_ROWS])
    make_samm_frames(tmp_path)
    t = load_dataset({"name": "samm", "root": str(tmp_path)})
    df = t.df.set_index("clip")
    assert t.classes == ["anger", "contempt", "happiness", "surprise", "other"]
    assert sorted(t.subjects) == ["006", "007", "009"] and df.loc["007_3_1", "subject"] == "007"
    assert df["label"].to_dict() == {"006_1_2": 0, "006_1_3": 1, "007_3_1": 2, "007_3_2": 3, "009_1_1": 4}
    assert (df.loc["006_1_3", "apex"], df.loc["006_1_3", "apex_source"]) == (125, "fallback:apex_outside_range")
    assert (df.loc["007_3_2", "apex"], df.loc["007_3_2", "apex_source"]) == (5, "fallback:missing_apex")
    assert t.frame_path(0, 5562) == tmp_path.resolve() / "SAMM/006/006_1_2/006_05562.jpg"
    assert any("row 16" in p and "outside" in p for p in t.problems)
    with pytest.raises(DataError, match=r"SAMM_Micro_FACS_Codes_v2\.xlsx, row 16 \(006/006_1_3\): apex 200 outside"):
        load_dataset({"name": "samm", "root": str(tmp_path), "strict": True})


def test_samm_semicolon_csv_export(tmp_path):
    path = tmp_path / "SAMM_Micro_FACS_Codes_v2.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";")
        for r in [*SAMM_NOTES, SAMM_HEADER, *SAMM_ROWS]:
            w.writerow(["" if v is None else v for v in r])
    make_samm_frames(tmp_path)
    t = load_dataset({"name": "samm", "root": str(tmp_path)})
    assert len(t) == 5 and "006" in t.subjects
    assert t.df.set_index("clip").loc["006_1_3", "apex"] == 125


# --------------------------------------------------------------------------------------------- SMIC
def make_smic(root: Path) -> Path:
    hs = root / "HS"
    touch_frames(hs / "s1/micro/negative/s1_ne_01", [f"image{n:07d}.bmp" for n in range(101, 110)])
    touch_frames(hs / "s1/micro/positive/s1_po_01", [f"image{n:07d}.bmp" for n in range(5, 12)])
    touch_frames(hs / "s2/micro/surprise/s2_sur_01", [f"image{n:07d}.bmp" for n in range(20, 27)])
    touch_frames(hs / "s2/micro/negative/s2_ne_02", [f"image{n:07d}.bmp" for n in (1, 2, 4, 5)])  # a gap
    (hs / "s2/non_micro/x").mkdir(parents=True)  # ignored
    return root


def test_smic_folders_no_apex(tmp_path):
    make_smic(tmp_path)
    t = load_dataset({"name": "smic", "root": str(tmp_path)})
    df = t.df.set_index("clip")
    assert t.classes == ["negative", "positive", "surprise"] and t.subjects == ["s1", "s2"]
    assert df.loc["s1_ne_01", ["onset", "apex", "offset", "label"]].tolist() == [101, 105, 109, 0]
    assert df.loc["s1_po_01", ["onset", "apex", "offset", "label"]].tolist() == [5, 8, 11, 1]
    assert df.loc["s2_sur_01", "label"] == 2 and set(df["apex_source"]) == {"middle"}
    assert df.loc["s2_ne_02", ["onset", "apex", "offset", "flags"]].tolist() == [1, 4, 5, "frame_gaps"]
    assert t.frame_path(0, 101).name == "image0000101.bmp" and t.frame_path(0, 101).is_file()
    t2 = load_dataset({"name": "smic", "root": str(tmp_path / "HS"),
                       "apex_selector": lambda paths, frames: frames[-2]})
    assert t2.df.set_index("clip").loc["s1_ne_01", "apex"] == 108
    assert t2.df["apex_source"].str.startswith("selector:").all()


def test_smic_peak_flow_apex(tmp_path):
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (48, 48)).astype(np.float32), (0, 0), 1.5)
    tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX)
    shifts = [0, 1, 2, 3, 4, 3, 2, 1, 0]  # peak displacement from the first frame at the 5th frame
    for s, sub, emo in [(0, "s1", "negative"), (1, "s2", "positive"), (2, "s2", "surprise")]:
        d = Path(tmp_path, "HS", sub, "micro", emo, f"{sub}_{emo[:2]}_0{s}")
        d.mkdir(parents=True)
        for n, sh in enumerate(shifts, start=11):
            cv2.imwrite(str(d / f"image{n:03d}.bmp"), np.roll(tex, sh, axis=1).astype(np.uint8))
    t = load_dataset({"name": "smic", "root": str(tmp_path), "apex": "peak_flow"})
    assert t.df["apex"].tolist() == [15, 15, 15] and set(t.df["apex_source"]) == {"peak_flow"}


# --------------------------------------------------------------------------------------------- MMEW
def test_mmew(tmp_path):
    header = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion", "remarks"]
    rows = [
        ["S01", "S01-01-001", 1, 5, 9, "AU12", "happiness", ""],
        ["S01", "S01-02-001", 2, 6, 10, "AU1+AU2", "surprise", ""],
        ["S02", "S02-01-003", 1, 1, 7, "AU4", "Fear", ""],  # capitalised; apex == onset
        [None, "S03-01-001", 1, 4, 8, "AU14", "others", ""],  # subject from the filename
        ["S03", "S03-02-001", 1, 4, 8, "AU4", "anger", ""],
        ["S03", "S03-03-001", 1, 4, 8, "AU9", "disgust", ""],
        ["S04", "S04-01-001", 1, 4, 8, "AU15", "sadness", ""],
    ]
    write_xlsx(tmp_path / "MMEW_Micro_Exp.xlsx", "Sheet1", [header, *rows])
    for s, f, on, ap, off, _, e, _ in rows:
        touch_frames(tmp_path / "Micro_Expression" / e.lower() / f, [f"{k}.jpg" for k in {on, ap, off, (on + off + 1) // 2}])
    t = load_dataset({"name": "mmew", "root": str(tmp_path)})
    df = t.df.set_index("clip")
    assert len(t) == 7 and t.classes == ["happiness", "surprise", "anger", "disgust", "fear", "sadness", "others"]
    assert df.loc["S02-01-003", ["label", "apex", "apex_source"]].tolist() == [4, 4, "fallback:apex_equals_onset"]
    assert t.frame_path(2, 1) == tmp_path.resolve() / "Micro_Expression/fear/S02-01-003/1.jpg"
    assert df.loc["S03-01-001", ["subject", "flags"]].tolist() == ["S03", "subject_from_filename"]
    t6 = load_dataset({"name": "mmew", "root": str(tmp_path), "classes": "mmew6", "check_frames": False})
    assert len(t6) == 6 and "others" not in t6.classes and any("others: 1" in p for p in t6.problems)


# --------------------------------------------------------------------------------------------- CAS(ME)^3
def test_casme3_part_a(tmp_path):
    header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
    rows = [
        ["spNO.1", "a", 100, 110, 120, "L12", 1, "happy"],
        ["spNO.1", "a", 200, 210, 230, "4", 2, "sad"],  # second ME in the same video
        ["spNO.2", "b", 1, 3, 10, "1+2", 3, "surprise"],
        ["spNO.2", "c", 5, 9, 12, "9", 2, "Disgust"],
    ]
    write_xlsx(tmp_path / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", "Sheet1", [header, *rows])
    for s, f, on, ap, off, *_ in rows:
        touch_frames(tmp_path / s / f / "color", [f"{k}.jpg" for k in (on, ap, off)])
    # anger, fear, others are absent here, so the default 7-class set fails loudly; collect mode still loads
    t = load_dataset({"name": "casme3", "root": str(tmp_path), "errors": "collect"})
    assert list(t.df["clip"]) == ["a_100", "a_200", "b_1", "c_5"]  # one video, two MEs: clip = Filename_Onset
    assert t.classes == ["anger", "disgust", "fear", "happiness", "others", "sadness", "surprise"]
    assert t.df["label"].tolist() == [3, 5, 6, 1]
    assert any("['anger', 'fear', 'others']" in p for p in t.problems)
    t4 = load_dataset({"name": "casme3", "root": str(tmp_path), "classes": "megc3"})
    assert t4.df["label"].tolist() == [1, 0, 2, 0]
    assert t4.frame_path(1, 210) == tmp_path.resolve() / "spNO.1/a/color/210.jpg"


def test_casme3_empty_class_is_an_error_naming_the_file(tmp_path):
    header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
    rows = [["spNO.1", "a", 1, 2, 3, "", 1, "happy"], ["spNO.2", "a", 1, 2, 3, "", 1, "sad"]]
    write_xlsx(tmp_path / "part_A_labels.xlsx", "Sheet1", [header, *rows])
    with pytest.raises(DataError, match=r"part_A_labels\.xlsx: class\(es\) \['anger', 'disgust', 'fear', 'others', 'surprise'\]"):
        load_dataset({"name": "casme3", "root": str(tmp_path), "check_frames": False})


# --------------------------------------------------------------------------------------------- MEGC2019
def test_shipped_megc2019_list():
    rows = read_gt(DEFAULT_GT)
    assert len(rows) == 442
    by = {db: [r for r in rows if r[1] == db] for db in ("casme2", "samm", "smic")}
    assert [len(by[d]) for d in ("casme2", "samm", "smic")] == [145, 133, 164]
    from bench.data.megc2019 import _out_subject

    assert len({_out_subject(r[1], r[2]) for r in rows}) == 68
    assert _out_subject("samm", "6") == "samm/006" and _out_subject("smic", "s1") == "smic/s01"
    for db, want in [("casme2", [88, 32, 25]), ("samm", [92, 26, 15]), ("smic", [70, 51, 43])]:
        assert [sum(r[4] == str(k) for r in by[db]) for k in range(3)] == want


def _megc_fixture(tmp_path: Path, extra: list[str] = ()) -> tuple[dict, Path]:
    c2, sm, sc = tmp_path / "CASME2", tmp_path / "SAMM_root", tmp_path / "SMIC"
    make_casme2(c2, frames="cropped")
    write_xlsx(sm / "SAMM_Micro_FACS_Codes_v2.xlsx", "MICRO_ONLY", [*SAMM_NOTES, SAMM_HEADER, *SAMM_ROWS])
    make_samm_frames(sm)
    make_smic(sc)
    gt = tmp_path / "gt.csv"
    lines = ["casme2,sub01,EP02_01f,1", "casme2,sub01,EP19_05f,0", "casme2,sub02,EP01_11f,2",
             "samm,6,006_1_2,0", "samm,7,007_3_1,1", "smic,s01,s01_ne_01,0", "smic,s01,s01_po_01,1",
             "smic,s02,s02_sur_01,2", *extra]
    gt.write_text("\r\n".join(lines) + "\r\n")
    cfg = {"name": "megc2019", "casme2": {"root": str(c2), "frames": "cropped"}, "samm": {"root": str(sm)},
           "smic": {"root": str(sc)}, "gt_csv": str(gt)}
    return cfg, gt


def test_megc2019_join_and_name_mapping(tmp_path):
    cfg, gt = _megc_fixture(tmp_path)
    t = load_dataset(cfg)
    df = t.df.set_index("clip")
    assert t.classes == ["negative", "positive", "surprise"] and len(t) == 8
    assert t.subjects == ["casme2/sub01", "casme2/sub02", "samm/006", "samm/007", "smic/s01", "smic/s02"]
    assert df["label"].to_dict() == {"EP02_01f": 1, "EP19_05f": 0, "EP01_11f": 2, "006_1_2": 0, "007_3_1": 1,
                                     "s01_ne_01": 0, "s01_po_01": 1, "s02_sur_01": 2}
    assert df.loc["s01_ne_01", ["dataset", "onset", "apex", "offset", "emotion"]].tolist() == ["smic", 101, 105, 109, "negative"]
    assert df.loc["006_1_2", ["dataset", "apex", "emotion"]].tolist() == ["samm", 5566, "Anger"]
    assert df.loc["EP19_05f", "apex_source"] == "fallback:missing_apex"
    assert t.frame_path(0, 46).name == "reg_img46.jpg"
    # the list says surprise for a repression clip: kept with the list's label, recorded as a problem
    assert any(f"{gt}, row 3" in p and "repression" in p for p in t.problems)
    # a subset of datasets
    t2 = load_dataset({**cfg, "include": ["smic"], "casme2": None, "samm": None})
    assert set(t2.df["dataset"]) == {"smic"} and any("5 list row(s)" in p for p in t2.problems)


def test_megc2019_missing_clip_names_the_list_row(tmp_path):
    cfg, gt = _megc_fixture(tmp_path, extra=["samm,7,007_9_9,0"])
    with pytest.raises(DataError, match=rf"{gt}, row 9 \(7/007_9_9\): samm clip 7/007_9_9 not found"):
        load_dataset(cfg)
    t = load_dataset({**cfg, "errors": "collect"})
    assert len(t) == 8 and any("007_9_9" in p for p in t.problems)


# --------------------------------------------------------------------------------------------- MEB fixture
@pytest.mark.skipif(not (SHARED / "meb_test_fixture").is_dir(), reason="../shared/data not beside the project")
def test_meb_fixture_through_the_generic_loader():
    root = SHARED / "meb_test_fixture"
    t = load_dataset({"name": "generic", "root": str(root), "annotation": "per_annotation.xlsx",
                      "columns": {"material": "clip", "emotion": "label", "AU": "au"},
                      "frame_template": "PER/{subject}/{clip}/img{frame}.jpg", "dataset": "per"})
    df = t.df.set_index("clip")
    assert t.classes == ["happiness", "others"] and t.subjects == ["g1", "g2"]
    # g1/f01 annotates apex == onset (1): middle-frame fallback
    assert df.loc["f01", ["onset", "apex", "offset", "apex_source"]].tolist() == [1, 3, 5, "fallback:apex_equals_onset"]
    assert df.loc["f3", ["onset", "apex", "offset", "label", "au"]].tolist() == [101, 103, 105, 1, "AU4 + R12C"]
    img = cv2.imread(str(t.frame_path(1, 103)))
    assert img.shape == (106, 95, 3)


def test_database_names_come_from_the_loaders():
    """bench.data.databases: every loader's name is a known database; the spellings a loader declares
    (and a composite's sources) normalise to its name; other names keep their case."""
    from bench.data import DATASETS, list_datasets
    from bench.data.databases import known_databases, normalise_database

    assert set(list_datasets()) <= known_databases()
    assert {a for n in list_datasets() for a in DATASETS.get(n).aliases} <= known_databases()
    assert normalise_database(" CASME_II ") == "casme2" and normalise_database("SMIC-HS") == "smic"
    assert normalise_database("SAMM") == "samm"  # a source of the megc2019 composite
    assert normalise_database("MMEW") == "MMEW" and normalise_database("my_db ") == "my_db"
