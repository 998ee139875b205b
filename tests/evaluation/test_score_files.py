"""MEGC2019 logs and prediction CSVs: writer, readers and ``python -m bench.score``."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from fractions import Fraction as F

import numpy as np
import pandas as pd
import pytest

from bench.evaluation.prediction_files import (
    PredictionFileError,
    companion_path,
    detect_format,
    read_megc_log,
    read_prediction_csv,
    write_megc_log,
)
from bench.evaluation.metrics import per_dataset_scores, pooled_scores
from bench.score import main, score_file


def composite_predictions(seed: int = 0) -> pd.DataFrame:
    """One cell's pooled LOSO predictions on a small MEGC2019-like composite."""
    rng = np.random.default_rng(seed)
    rows = []
    for ds, subjects in (("smic", ["s1", "s2"]), ("casme2", ["sub01", "sub02", "sub03"]), ("samm", ["006", "007"])):
        for s in subjects:
            for j in range(int(rng.integers(1, 5))):
                yt = int(rng.integers(0, 3))
                rows.append({"study": "t", "dataset": "megc2019", "representation": "cof", "model": "ststnet",
                             "seed": 0, "fold": f"{ds}/{s}", "subject": f"{ds}/{s}", "clip": f"{s}_clip{j}",
                             "source_dataset": ds, "y_true": yt,
                             "y_pred": yt if rng.random() < 0.6 else int(rng.integers(0, 3))})
    df = pd.DataFrame(rows)
    df.loc[0, ["y_true", "y_pred"]] = [0, 0]  # every class present in truth somewhere
    df.loc[1, ["y_true", "y_pred"]] = [1, 2]
    df.loc[2, ["y_true", "y_pred"]] = [2, 2]
    return df


def test_round_trip_writer_reader_scores(tmp_path):
    pred = composite_predictions()
    path = write_megc_log(pred, tmp_path / "cell.log")
    lines = path.read_text().splitlines()
    assert lines[0] == "smic s1"  # the header names the database and the un-prefixed subject
    assert lines[1].split()[0] == "s1_clip0" and len(lines[1].split()) == 3
    assert sum(len(line.split()) == 2 for line in lines) == pred["subject"].nunique()

    back = read_megc_log(path)
    assert len(back) == len(pred)
    np.testing.assert_array_equal(back["y_true"], pred["y_true"])
    np.testing.assert_array_equal(back["y_pred"], pred["y_pred"])
    assert back["subject"].tolist() == pred["subject"].tolist()
    assert back["clip"].tolist() == pred["clip"].tolist()

    res = score_file(path)
    assert res["format"] == "megc2019" and res["n"] == len(pred)
    assert res["classes"] == ["negative", "positive", "surprise"]
    expected = pooled_scores(pred.y_true, pred.y_pred, 3)
    assert {k: res["overall"][k] for k in expected} == pytest.approx(expected)
    per_ds = per_dataset_scores(pred, 3).set_index("dataset")
    assert list(res["per_dataset"]) == ["smic", "casme2", "samm"]  # MEGC2019 order
    for ds, b in res["per_dataset"].items():
        assert b["uf1"] == pytest.approx(per_ds.loc[ds, "uf1"]) and b["n"] == per_ds.loc[ds, "n"]
    assert np.asarray(res["overall"]["confusion"]).sum() == len(pred)


def test_known_log_gives_known_scores(tmp_path):
    # cm = [[4,0,0],[1,1,0],[1,0,1]] -> UF1 32/45, UAR 2/3, acc 3/4; mean precision 8/9 (not UAR)
    log = tmp_path / "k.txt"
    log.write_text("CASME_II sub01\na 0 0\nb 0 0\nc 0 0\nd 1 0\n\nSAMM 006\ne 0 0\nf 1 1\ng 2 2\nh 2 0\n")
    res = score_file(log)
    assert res["overall"]["uf1"] == pytest.approx(float(F(32, 45)))
    assert res["overall"]["uar"] == pytest.approx(2 / 3) and res["overall"]["acc"] == 0.75
    assert res["overall"]["mean_class_precision"] == pytest.approx(8 / 9)
    assert list(res["per_dataset"]) == ["casme2", "samm"]  # aliases normalised
    assert res["overall"]["confusion"] == [[4, 0, 0], [1, 1, 0], [1, 0, 1]]


def test_companion_class_list_for_other_class_sets(tmp_path):
    pred = pd.DataFrame({"subject": ["a", "a", "b"], "clip": ["c1", "c2", "c3"], "fold": ["a", "a", "b"],
                         "source_dataset": ["casme2"] * 3, "y_true": [4, 0, 3], "y_pred": [4, 1, 3]})
    names = ["happiness", "disgust", "repression", "surprise", "others"]
    path = write_megc_log(pred, tmp_path / "c5.log", classes=names)
    assert json.loads(companion_path(path).read_text())["classes"] == names
    res = score_file(path)
    assert res["n_classes"] == 5 and res["classes"] == names
    companion_path(path).unlink()  # without the class list a MEGC2019 log has 3 classes
    with pytest.raises(PredictionFileError, match=r":2: ground truth 4 is out of range \[0, 2\]"):
        score_file(path)
    assert score_file(path, n_classes=5)["classes"] == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("text, line, match", [
    ("casme2 sub01\nEP01 0 1\nEP02 1\n", 3, "a sample line needs 3 fields"),
    ("casme2 sub01\nEP01 0 1\nEP02 x 1\n", 3, "ground truth 'x' is not an integer label"),
    ("casme2 sub01\nEP01 0 1.5\n", 2, "prediction '1.5' is not an integer label"),
    ("casme2 sub01\n\nEP01 0 3\n", 3, r"prediction 3 is out of range \[0, 2\]"),
    ("casme2 sub01\nEP01 -1 0\n", 2, "ground truth -1 is out of range"),
    ("EP01 0 1\ncasme2 sub01\n", 1, "sample line before any fold header"),
    ("# a comment\ncasme2 sub01\nEP01 0 1 extra\n", 3, "4 fields"),
    ("casme2 sub01\nEP01 0 1\nEP01 1 1\n", 3, r"listed twice \(first on line 2\)"),
])
def test_malformed_log_lines_name_the_line(tmp_path, text, line, match):
    p = tmp_path / "bad.log"
    p.write_text(text)
    with pytest.raises(PredictionFileError, match=match) as e:
        read_megc_log(p)
    assert e.value.line == line
    assert str(e.value).startswith(f"{p}:{line}: ")


def test_two_field_lines_header_or_missing_field(tmp_path):
    p = tmp_path / "h.log"
    p.write_text("samm 006\n006_1 0 0\nsamm 007\n007_1 1 1\n")  # numeric subject after a known database
    assert read_megc_log(p)["subject"].tolist() == ["samm/006", "samm/007"]
    p.write_text("synthetic s1\na 0 0\nsynthetic 2\nb 1 1\n")  # a database already used in a header
    assert read_megc_log(p)["subject"].tolist() == ["synthetic/s1", "synthetic/2"]
    p.write_text("synthetic s1\na 0 0\nb 1\n")  # unknown first token + integer: a sample missing a field
    with pytest.raises(PredictionFileError, match=":3: 2 fields 'b 1'"):
        read_megc_log(p)


def test_csv_format(tmp_path):
    p = tmp_path / "pred.csv"
    p.write_text("subject,clip,true,pred,dataset\n"
                 "sub01,a,0,0,CASME2\nsub01,b,0,0,casme2\nsub01,c,0,0,casme2\nsub01,d,1,0,casme2\n"
                 "006,e,0,0,samm\n006,f,1,1,samm\n006,g,2,2,samm\n006,h,2,0,samm\n")
    assert detect_format(p) == "csv"
    res = score_file(p)
    assert res["format"] == "csv" and res["n_classes"] == 3  # inferred: largest label + 1
    assert res["overall"]["uf1"] == pytest.approx(float(F(32, 45)))
    assert set(res["per_dataset"]) == {"casme2", "samm"}
    assert res["per_dataset"]["samm"]["acc"] == 0.75


@pytest.mark.parametrize("text, line, match", [
    ("subject,clip,true,pred\ns1,a,0,1\ns1,b,0\n", 3, "3 fields, the header has 4"),
    ("subject,clip,true,pred\ns1,a,0,1\n\ns1,b,zero,1\n", 4, "true label 'zero' is not an integer"),
    ("subject,clip,true,pred\ns1,a,0,7\n", 2, r"predicted label 7 is out of range \[0, 2\]"),
    ("subject,clip,true,pred\n,a,0,1\n", 2, "empty subject"),
    ("subject,clip,truth,pred\ns1,a,0,1\n", 1, "lacks column"),
    ("subject,clip,true,pred\ns1,a,0,1\ns1,a,1,1\n", 3, "listed twice"),
])
def test_malformed_csv_rows_name_the_line(tmp_path, text, line, match):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(PredictionFileError, match=match) as e:
        read_prediction_csv(p, n_classes=3)
    assert e.value.line == line


def test_csv_without_the_required_columns_is_named(tmp_path, capsys):
    p = tmp_path / "x.csv"
    p.write_text("id,gt,prediction\n1,0,0\n")
    assert main([str(p)]) == 2
    assert f"{p}:1: the header lacks column(s) subject" in capsys.readouterr().err


def _score_second_of_two_cells(tmp_path, a, b, cell: str, refusal: str) -> list[dict]:
    """Write cells a and b as the suite's predictions.csv and .parquet; for each, scoring without a
    cell must be refused (``refusal``), and scoring ``cell`` must give b's pooled UF1 alone."""
    both = pd.concat([a, b], ignore_index=True)
    both.to_csv(tmp_path / "predictions.csv", index=False)
    both.to_parquet(tmp_path / "predictions.parquet", index=False)
    scored = []
    for name in ("predictions.csv", "predictions.parquet"):
        with pytest.raises(PredictionFileError, match=refusal):
            score_file(tmp_path / name)
        res = score_file(tmp_path / name, n_classes=3, cell=cell)
        assert res["overall"]["uf1"] == pytest.approx(pooled_scores(b.y_true, b.y_pred, 3)["uf1"])
        scored.append(res)
    return scored


def test_suite_predictions_csv_and_parquet_need_a_cell(tmp_path):
    a = composite_predictions(0)
    b = composite_predictions(1).assign(model="fmanet")
    for res in _score_second_of_two_cells(tmp_path, a, b, "megc2019|cof|fmanet|0",
                                          refusal="holds 2 cells.*megc2019\\|cof\\|fmanet\\|0"):
        assert "smic" in res["per_dataset"]  # source_dataset preferred over the composite's name


def test_writer_refuses_what_the_format_cannot_hold(tmp_path):
    pred = composite_predictions()
    with pytest.raises(ValueError, match="row 3: clip 'a b' is empty or contains whitespace"):
        write_megc_log(pred.assign(clip=pred["clip"].where(pred.index != 3, "a b")), tmp_path / "x.log")
    with pytest.raises(ValueError, match="several cells"):
        write_megc_log(pd.concat([pred, pred.assign(seed=1)]), tmp_path / "x.log")
    with pytest.raises(ValueError, match="y_pred 1.5 is not a non-negative integer"):
        write_megc_log(pred.assign(y_pred=pred.y_pred.astype(float).where(pred.index != 0, 1.5)), tmp_path / "x.log")


def test_cli_main_prints_scores_and_per_dataset(tmp_path, capsys):
    path = write_megc_log(composite_predictions(), tmp_path / "cell.log")
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "UF1=" in out and "UAR=" in out and "acc=" in out and "true\\pred" in out
    assert "dataset smic" in out and "dataset casme2" in out and "dataset samm" in out
    assert main([str(path), "--no-per-dataset"]) == 0
    assert "dataset smic" not in capsys.readouterr().out
    assert main([str(path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["overall"]) >= {"uf1", "uar", "acc", "confusion"}


def test_cli_malformed_file_exits_2_with_one_line(tmp_path, capsys):
    p = tmp_path / "bad.log"
    p.write_text("casme2 sub01\nEP01 0 one\n")
    assert main([str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{p}:2: prediction 'one' is not an integer label" in err
    assert main([str(tmp_path / "missing.log")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_as_a_module_subprocess(tmp_path):
    good = write_megc_log(composite_predictions(), tmp_path / "cell.log")
    bad = tmp_path / "bad.log"
    bad.write_text("casme2 sub01\nEP01 0 1\nEP02 1\n")
    r = subprocess.run([sys.executable, "-m", "bench.score", str(good), "--per-dataset"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "pooled" in r.stdout and "dataset samm" in r.stdout
    r = subprocess.run([sys.executable, "-m", "bench.score", str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith(f"bench.score: error: {bad}:3: 2 fields")


def test_scoring_raises_no_warning(tmp_path):
    p = tmp_path / "one_class.log"
    p.write_text("smic s1\na 0 0\nb 0 1\n")  # class 2 absent everywhere, class 1 predicted but absent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = score_file(p)
    # F1 = [2/3, 0] (class 2 left out), recall: class 0 only = 1/2
    assert res["overall"]["uf1"] == pytest.approx(1 / 3) and res["overall"]["uar"] == 0.5


def test_cells_differing_only_by_flow_are_not_pooled(tmp_path):
    """A flow_backends-style table: same dataset/representation/model/seed, two flow backends."""
    a = composite_predictions(0).assign(flow="tvl1")
    b = composite_predictions(1).assign(flow="dis")
    _score_second_of_two_cells(tmp_path, a, b, "megc2019|dis|cof|ststnet|0", refusal="holds 2 cells")
    with pytest.raises(ValueError, match="several cells"):
        write_megc_log(pd.concat([a, b], ignore_index=True), tmp_path / "x.log")
