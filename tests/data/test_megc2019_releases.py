"""The public MEGC2019 flow releases as one-command datasets (issue 13).

Fixtures are written here in both layouts (HTNet single-phase, CausalNet two-phase): tiny random
PNGs named with the space before ``.png``, the releases' CSV header with its empty apex column, the
three subject styles (``sub01``, ``s01``, ``006``: leading zeros kept) and a base name that itself
ends in ``_1`` (``007_3_1``). No real face or flow is used.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction as Fr
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from benchmarks.composite_fixture import RELEASE_CSV, RELEASE_DIR, TINY_ROWS, write_release_fixture
from bench.core.config import compose
from bench.data import load_dataset
from bench.data.table import DataError
from bench.flow import compute_flows
from bench.training.fold import represent
from bench.plan.planner import plan_study
from representations import annotate_exactness

# (database, subject as the releases write it, clip, label 0 negative / 1 positive / 2 surprise);
# 007_3_1 is a base name ending in _1
ROWS = list(TINY_ROWS)
PRESET = {"htnet": "megc2019_htnet", "causalnet": "megc2019_causalnet"}


def release(tmp_path: Path, layout: str) -> Path:
    return write_release_fixture(tmp_path / layout, layout, rows=ROWS, seed=1)


def dataset_node(root: Path, layout: str, *extra: str) -> dict:
    cfg = compose([f"dataset={PRESET[layout]}", f"dataset.root={root}", *extra])
    return OmegaConf.to_container(cfg.dataset, resolve=True)


def pixels(path: Path) -> np.ndarray:
    """The file's pixels (C, H, W) in RGB order, read independently of the suite's reader."""
    img = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    return np.moveaxis(img[..., ::-1], -1, 0)


@pytest.mark.parametrize("layout", ["htnet", "causalnet"])
def test_release_rows_subjects_labels_and_sources_are_read(tmp_path, layout):
    root = release(tmp_path, layout)
    header = (root / RELEASE_CSV).read_text().splitlines()[0]
    assert header == "dataset,sub,filename_o,label,apex,imagename,sub_filename"
    t = load_dataset(dataset_node(root, layout))
    assert len(t) == 12 and t.classes == ["negative", "positive", "surprise"]
    df = t.df.set_index("clip")
    for db, sub, clip, label in ROWS:
        r = df.loc[clip]
        # every row keeps its own source database; subjects keep their leading zeros
        assert (r["dataset"], r["subject"], int(r["label"])) == (db, sub, label)
        assert r["flow1_path"] == str(root.resolve() / RELEASE_DIR / f"{sub}_{clip} .png")
        assert r["flow2_path"] == ("" if layout == "htnet" else str(root.resolve() / RELEASE_DIR / f"{sub}_{clip}_1 .png"))
    assert set(t.df["subject"]) == {"sub01", "sub02", "s01", "s02", "006", "007"}
    assert t.df["dataset"].value_counts().to_dict() == {"casme2": 4, "smic": 4, "samm": 4}
    # the empty apex column is accepted, and what it means is recorded for the manifest
    assert t.meta["apex_rule"].startswith("not given: ") and t.meta["flow_source"] == "precomputed"
    exact = annotate_exactness(t)  # as the runner records it
    assert exact["stored"].startswith("exact") and t.meta["exactness"] == exact
    two_phase = exact["two_phase_stack"]
    assert two_phase.startswith("unavailable") if layout == "htnet" else two_phase.startswith("approximate")


def test_stored_representation_returns_the_files_pixels_exactly(tmp_path):
    root = release(tmp_path, "causalnet")
    t = load_dataset(dataset_node(root, "causalnet"))
    fs = compute_flows(t, backend="precomputed", size=None, progress=False)
    assert fs.stored.channels == ("u", "v", "strain") and fs.stored.max_value == 255.0
    raw = {"name": "stored", "size": 28, "channels": ["u1", "v1", "strain1", "u2", "v2", "strain2"],
           "rescale": False}
    x, channels, _ = represent(raw, fs.flows, stored=fs.stored)
    unit, _, _ = represent({**raw, "rescale": True}, fs.flows, stored=fs.stored)
    assert channels == ("u1", "v1", "strain1", "u2", "v2", "strain2") and x.shape == (12, 6, 28, 28)
    for i, r in enumerate(t.df.itertuples()):
        want = np.concatenate([pixels(Path(r.flow1_path)), pixels(Path(r.flow2_path))]).astype(np.float32)
        np.testing.assert_array_equal(x[i], want)  # the file's pixels, bit for bit
        np.testing.assert_array_equal(unit[i], want / np.float32(255))
    # the other representations recompute from u, v decoded to [-1, 1]: not the stored values
    sp, _, _ = represent({"name": "single_phase", "size": 28}, fs.flows)
    assert sp.min() >= -1 and not np.array_equal(sp[:, :2], x[:, :2])


def test_stored_on_computed_flows_computes_strain_from_u_v():
    from representations import create_representation
    from representations.base import optical_strain

    rng = np.random.default_rng(0)
    flows = rng.normal(size=(3, 2, 2, 10, 10)).astype(np.float32)
    x, flags = create_representation("stored").batch(flows)
    np.testing.assert_allclose(x[:, 2].numpy(), optical_strain(flows[:, 0, 0].astype(np.float64),
                                                               flows[:, 0, 1].astype(np.float64)), rtol=1e-6)
    assert all("stored:computed" in f for f in flags)


def test_missing_phase2_file_names_the_file_and_the_csv_row(tmp_path):
    root = release(tmp_path, "causalnet")
    gone = root / RELEASE_DIR / "007_007_3_1_1 .png"  # the apex->offset file of clip 007_3_1
    gone.unlink()
    # its phase-1 file "007_007_3_1 .png" is there: a suffix glob would have taken it for this one
    assert (root / RELEASE_DIR / "007_007_3_1 .png").is_file()
    with pytest.raises(DataError, match=re.escape(f"{RELEASE_CSV}, row 12 (007/007_3_1): phase-2 flow file "
                                                  f"missing: {gone.resolve()}")):
        load_dataset(dataset_node(root, "causalnet"))


def test_empty_source_database_is_an_error_naming_the_row(tmp_path):
    root = release(tmp_path, "htnet")
    csv = root / RELEASE_CSV
    lines = csv.read_text().splitlines()
    lines[3] = lines[3].replace("casme2,", ",", 1)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"row 4 \(sub02/EP01_11f\): dataset \(source database\) is empty"):
        load_dataset(dataset_node(root, "htnet"))


def test_planner_labels_the_flow_axis_precomputed_and_skips_phase2_cells(tmp_path):
    plan = plan_study(["study=megc2019_phases", "dataset=megc2019_htnet", f"dataset.root={tmp_path}"])
    assert {c.flow.name for c in plan.cells} == {"precomputed"}
    assert {c.representation.name for c in plan.cells} == {"single_phase", "stored"}
    for rep in ("cof", "mm_cof", "two_phase_stack"):
        why = [e for e in plan.excluded if f"|{rep}|ststnet:" in e]
        assert len(why) == 1 and "no apex->offset flow files" in why[0], why
    two = plan_study(["study=megc2019_phases", "dataset=megc2019_causalnet", f"dataset.root={tmp_path}",
                      "study.models=[ststnet]"])
    assert list(dict.fromkeys(c.representation.name for c in two.cells)) == \
        ["single_phase", "cof", "mm_cof", "two_phase_stack", "stored"]  # each with seeds=auto's first 3 seeds
    assert all(c.cfg["protocol"]["name"] == "megc2019" and c.cfg["flow"]["backend"] == "precomputed" for c in two.cells)


# ------------------------------------------------------------------ per-dataset scores by hand

def _uf1_uar_by_hand(y_true, y_pred, k=3) -> tuple[Fr, Fr]:
    f1s, recalls = [], []
    for c in range(k):
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred))
        fp = sum(t != c and p == c for t, p in zip(y_true, y_pred))
        fn = sum(t == c and p != c for t, p in zip(y_true, y_pred))
        f1s.append(Fr(2 * tp, 2 * tp + fp + fn) if tp + fp + fn else Fr(0))
        recalls.append(Fr(tp, tp + fn) if tp + fn else Fr(0))
    return sum(f1s) / k, sum(recalls) / k


def test_composite_scores_equal_a_hand_computation():
    from bench.report.sections.composite import composite_scores

    parts = {"casme2": ([0, 0, 1, 2], [0, 1, 1, 2]), "smic": ([0, 1, 2], [0, 1, 0]), "samm": ([0, 0, 1, 2], [0, 0, 0, 2])}
    rows = []
    for seed in (0, 1):
        for db, (yt, yp) in parts.items():
            for t, p in zip(yt, yp):
                rows.append({"representation": "stored", "model": "ststnet", "seed": seed, "source_dataset": db,
                             "y_true": t, "y_pred": p if seed == 0 else t})  # seed 1 is perfect
    df = composite_scores(pd.DataFrame(rows), 3)
    r = df.iloc[0]
    # by hand (seed 0): casme2 UF1 (2/3 + 2/3 + 1)/3 = 7/9, UAR (1/2 + 1 + 1)/3 = 5/6; smic 5/9, 2/3;
    # samm (4/5 + 0 + 1)/3 = 3/5, 2/3; Full (8/11 + 2/3 + 4/5)/3, (4/5 + 2/3 + 2/3)/3. Seed 1 scores 1.
    hand = {"casme2": (Fr(7, 9), Fr(5, 6)), "smic": (Fr(5, 9), Fr(2, 3)), "samm": (Fr(3, 5), Fr(2, 3)),
            "Full": ((Fr(8, 11) + Fr(2, 3) + Fr(4, 5)) / 3, (Fr(4, 5) + Fr(2, 3) + Fr(2, 3)) / 3)}
    assert list(df.columns[:3]) == ["representation", "model", "n_seeds"] and r["n_seeds"] == 2
    assert [c for c in df.columns if c.endswith("_uf1")] == ["Full_uf1", "smic_uf1", "casme2_uf1", "samm_uf1"]
    for name, (uf1, uar) in hand.items():
        assert r[f"{name}_uf1"] == pytest.approx(float((uf1 + 1) / 2)), name  # mean over the two seeds
        assert r[f"{name}_uar"] == pytest.approx(float((uar + 1) / 2)), name
    # the hand helper agrees with itself on the same pools (a check of the check)
    yt = sum((v[0] for v in parts.values()), [])
    yp = sum((v[1] for v in parts.values()), [])
    assert _uf1_uar_by_hand(yt, yp) == hand["Full"]


def test_anchor_file_holds_the_published_figures():
    from bench.report.sections.composite import load_anchors

    got = {a["method"]: (a["uf1"], a["uar"], str(a["leak_free"])) for a in load_anchors()}
    assert got["LBP-TOP (MEGC2019 baseline)"][:2] == (0.5882, 0.5785)
    assert got["Bi-WOOF"][:2] == (0.6296, 0.6227)
    assert got["STSTNet"][:2] == (0.7353, 0.7186)
    assert got["STSTNet (released PyTorch code, re-run)"] == (0.7209, 0.725, "yes")
    assert {k: v[0] for k, v in got.items() if "MEB" in k} == {
        "STSTNet (MEB, fixed epochs)": 0.713, "OFF-ApexNet (MEB, fixed epochs)": 0.703, "SSSNet (MEB, fixed epochs)": 0.739}


# ------------------------------------------------------------------ the one command, end to end

@pytest.mark.slow
@pytest.mark.ci
def test_one_command_runs_the_composite_and_the_report_leads_with_it(tmp_path, run_overrides, capsys):
    from bench.report.names import display
    from bench.run import main

    root = release(tmp_path, "causalnet")
    args = ["study=megc2019_phases", "dataset=megc2019_causalnet", f"dataset.root={root}",
            "study.models=[ststnet]", "study.seeds=[0]", "trainer.epochs=2", "tracking=none", "progress=false",
            *run_overrides]  # one seed: the hand computation below pools one seed's predictions
    assert main(args) == 0, capsys.readouterr().err
    run_dir = tmp_path / "runs" / "megc2019_phases"
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    assert set(preds["flow"]) == {"precomputed"} and preds["representation"].nunique() == 5
    src = {clip: db for db, _, clip, _ in ROWS}
    assert (preds["source_dataset"] == preds["clip"].map(src)).all()  # every row's own source

    report = (tmp_path / "reports" / "megc2019_phases" / "report.md").read_text()
    heads = [l for l in report.splitlines() if l.startswith("## ")]
    assert heads[0] == "## The answer", heads  # the answer first, then the composite's own table
    assert heads[2].startswith("## MEGC2019 composite: Full / SMIC / CASME II / SAMM"), heads
    assert heads[-1] == "## Reproducibility" and "### Run manifest" in report.split("## Reproducibility")[1]
    assert "of SAMM, SMIC and CASME II (12 clips, 6 subjects)" in report  # the data, named in the answer
    assert "Published anchors (not run here)" in report and "0.5882" in report and "0.7209" in report
    assert "not given: onset->apex and apex->offset flows precomputed by the release" in report
    # the report's composite figures equal a hand computation from the predictions
    table = pd.read_csv(tmp_path / "reports" / "megc2019_phases" / "tables" / "composite.csv")
    for rep, g in preds.groupby("representation"):
        row = table[table["representation"] == rep].iloc[0]
        for name, part in [("Full", g), *((db, g[g["source_dataset"] == db]) for db in ("smic", "casme2", "samm"))]:
            uf1, uar = _uf1_uar_by_hand(part["y_true"].tolist(), part["y_pred"].tolist())
            assert row[f"{name}_uf1"] == pytest.approx(float(uf1)) and row[f"{name}_uar"] == pytest.approx(float(uar))
            shown = f"{float(uf1):.4f} | {float(uar):.4f}"
            shown_rep = display(rep, "representation")
            line = next(l for l in report.splitlines() if l.startswith(f"| {shown_rep} | STSTNet |")).replace("**", "")
            assert shown in line, (rep, name)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    d = manifest["datasets"]["megc2019_causalnet"]
    assert d["per_source"]["samm"] == {"n_samples": 4, "n_subjects": 2,
                                       "class_counts": {"negative": 2, "positive": 1, "surprise": 1}}
    assert d["flow"]["backend"] == "precomputed" and d["flow"]["normalisation"] == "minmax"
    assert "flows precomputed" in d["face_crop"]
