"""``python -m bench.data summary``: the summary text and the CLI with only an annotation file present."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from bench.data.summary import run_summary, summarize
from bench.data.table import SampleTable

CASME2_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
CASME2_ROWS = [
    [1, "EP02_01f", 46, 59, 86, "12", "happiness"],
    [1, "EP19_05f", 1, "/", 11, "4+7", "disgust"],
    [2, "EP01_11f", 10, 15, 20, "14", "repression"],
    [2, "EP03_02", 5, 8, 12, "4", "fear"],
    [3, "EP01_01", 1, 3, 5, "1+2", "surprise"],
    [3, "EP01_02", 1, 3, 5, "", "others"],
]


def write_xlsx(path, sheet, rows):
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.title = sheet
    for r in rows:
        wb.active.append(r)
    wb.save(path)


def _annotation_only(root):
    write_xlsx(root / "CASME2-coding-20140508.xlsx", "Sheet1", [CASME2_HEADER, *CASME2_ROWS])
    return root


def test_summarize_known_table():
    df = pd.DataFrame(
        dict(dataset="x", subject=["s1", "s1", "s2"], clip=["a", "b", "c"], onset=1, apex=2, offset=3,
             label=[0, 1, 1], emotion="", au="", frame_template="/f{frame}", apex_source=["annotated", "middle", "middle"],
             flags=["", "missing_apex", ""])
    )
    text = summarize(SampleTable(df=df, classes=["neg", "pos", "sur"], name="x", source="ann.csv", problems=["p1"]))
    assert "clips: 3   subjects: 2   classes: 3" in text
    assert "   0 neg        1" in text and "   1 pos        2" in text and "   2 sur        0" in text
    assert "  s1         1    1    0     2" in text and "  s2         0    1    0     1" in text
    assert "middle" in text and "missing_apex" in text and "  - p1" in text


def test_summary_with_only_the_annotation(tmp_path):
    _annotation_only(tmp_path)
    text = run_summary({"name": "casme2", "root": str(tmp_path)})
    assert "clips: 5   subjects: 3" in text
    assert "key frames missing for 5 of 5 clips" in text  # one summarised problem, not a crash
    assert "row 3 (sub01/EP19_05f): apex '/'" in text and "fear: 1" in text
    # a bad row does not abort the summary: it is listed and the rest counted
    bad = [r[:] for r in CASME2_ROWS]
    bad[0][4] = 10  # offset before onset on row 2
    write_xlsx(tmp_path / "CASME2-coding-20140508.xlsx", "Sheet1", [CASME2_HEADER, *bad])
    text = run_summary({"name": "casme2", "root": str(tmp_path)})
    assert "clips: 4" in text and "error: " in text and "row 2 (sub01/EP02_01f): offset 10 is not after onset 46" in text


@pytest.mark.skipif(importlib.util.find_spec("bench.core.config") is None, reason="bench.core.config not written yet")
def test_cli_composes_overrides(tmp_path, capsys):
    from bench.data.__main__ import main

    _annotation_only(tmp_path)
    assert main(["summary", "dataset=casme2", f"dataset.root={tmp_path}", "dataset.classes=megc3"]) == 0
    out = capsys.readouterr().out
    assert "class set megc3" in out and "   0 negative      3" in out and "key frames missing" in out
    # explicit strictness is honoured: missing frames become a refusal (exit 2) naming the file
    assert main(["summary", "dataset=casme2", f"dataset.root={tmp_path}", "dataset.check_frames=true",
                 "dataset.errors=raise"]) == 2
    assert "frame file missing" in capsys.readouterr().err
    assert main(["list"]) == 0 and "megc2019" in capsys.readouterr().out
