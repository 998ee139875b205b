"""End-to-end reports from fabricated run directories (see notes/results_schema.md)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import ReportInputError, ReportOptions, make_report, resolve_run_dir
from bench.report.__main__ import main as cli_main
from tests.helpers.fabricate import CLASSES, cell_hash, fabricate_run, scan_clean  # noqa: F401

@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """The spec's fixture: 2 representations x 2 models x 6 subjects x 3 classes, seeds 0 and 1, aux, examples."""
    root = tmp_path_factory.mktemp("full")
    run = fabricate_run(root)
    return make_report(run, root / "reports" / "toy_study", ReportOptions(n_boot=200))


def test_end_to_end_report(full_report):
    out = full_report
    md = (out / "report.md").read_text()
    for section in ("## The answer", "### Run facts", "## Headline results", "## Verdicts against the baseline",
                    "## Per-subject scores", "## Confusion matrices", "## Model explanations",
                    "## Representation examples", "mlflow ui --backend-store-uri sqlite:///", "Wilcoxon signed-rank",
                    "Holm", "rank-biserial", "Wall time: 1 h 02 min 05 s", "Git commit: `deadbeef`"):
        assert section in md
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert {"scores_bars.png", "confusion.png", "fusion_weights.png", "attention_maps.png",
            "representation_examples.png", "per_subject_acc.png"} <= set(pngs)
    for name in ("headline", "significance", "cost"):
        assert (out / "tables" / f"{name}.csv").exists() and (out / "tables" / f"{name}.tex").exists()
    assert (out / "report.pdf").stat().st_size > 10_000
    scan_clean(out)
    # every figure the markdown references exists, and every PNG written is referenced
    refs = set(re.findall(r"\]\((figures/[^)]+)\)", md))
    assert refs == {f"figures/{p}" for p in pngs}
    # no sweep in a study with one cof cell: the report says why instead of drawing an empty plot
    assert "No sweep figure" in md


def _pages_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
                    reason="poppler-utils (pdftoppm, pdftotext) not installed; .ci/run installs it "
                           "(apt-get install -y poppler-utils)")
def test_pdf_renders_with_tables_and_no_blank_pages(full_report, tmp_path):
    from PIL import Image

    pdf = full_report / "report.pdf"
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    text = _pages_text(pdf)
    footers = [int(n) for n in re.findall(r"toy_study — page (\d+)", text)]
    assert 5 <= len(pages) <= 12 and footers == list(range(1, len(pages) + 1))
    for p in pages:
        with Image.open(p) as im:
            w, h = im.size
            assert abs(h / w - 11.69 / 8.27) < 0.01  # A4 portrait
            g = np.asarray(im.convert("L"), dtype=float)
        inked = (g < 200).mean()
        assert inked > 0.003, f"{p.name} is blank"
    # the headline table's numbers (point, seed std, CI bounds) are in the PDF text
    head = pd.read_csv(full_report / "tables" / "headline.csv")
    for _, r in head.iterrows():
        for m in ("uf1", "uar", "acc"):
            for col in (m, f"{m}_std", f"{m}_ci_lo", f"{m}_ci_hi"):
                assert f"{r[col]:.3f}" in text, (r["representation"], r["model"], col)
    assert "Verdicts against the baseline" in text


def test_headline_numbers_are_the_pooled_scores(tmp_path):
    from bench.evaluation import metrics

    run = fabricate_run(tmp_path, aux=False, examples=False)
    out = make_report(run, tmp_path / "r", ReportOptions(n_boot=50, pdf=False))
    head = pd.read_csv(out / "tables" / "headline.csv")
    preds = pd.read_parquet(run / "predictions.parquet")
    for _, row in head.iterrows():
        cell = preds[(preds["representation"] == row["representation"]) & (preds["model"] == row["model"])]
        per_seed = [metrics.pooled_scores(g["y_true"], g["y_pred"], 3)["uf1"] for _, g in cell.groupby("seed")]
        assert row["uf1"] == pytest.approx(np.mean(per_seed), abs=1e-6)
        assert row["uf1_std"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-6)
        assert row["uf1_ci_lo"] <= row["uf1_ci_hi"]
        assert row["n_seeds"] == 2 and row["n_subjects"] == 6
    # best UF1 is bold in both the markdown and the LaTeX table
    best = head.loc[head["uf1"].idxmax()]
    md = (out / "report.md").read_text()
    assert f"**{best['uf1']:.3f} ±" in md
    assert rf"\textbf{{{best['uf1']:.3f} $\pm$" in (out / "tables" / "headline.tex").read_text()
    assert "aux.npz" in md and "examples.npz is missing" in md  # skipped figures are explained


def test_sweep_composite_and_failures(tmp_path):
    run = fabricate_run(tmp_path, reps=("single_phase", "cof[theta1=0.3]", "cof[theta1=0.6]"), models=("ststnet",),
                        seeds=(0,), dataset="megc2019", sources=("casme2", "samm", "smic"), aux=False,
                        examples=False, failed=("cof[theta1=0.6]", "ststnet", 0, "s03"), flows=None)
    out = make_report(run, tmp_path / "r", ReportOptions(n_boot=50, pdf=False))
    md = (out / "report.md").read_text()
    assert (out / "figures" / "sweep_cof_theta1.png").exists()
    assert "θ sweep of cof" in md
    assert "## Per-dataset breakdown" in md
    br = pd.read_csv(out / "tables" / "per_dataset.csv")
    assert set(br["source_dataset"]) == {"casme2", "samm", "smic"}
    assert "## Failures" in md and "STSTNet †" in md
    head = pd.read_csv(out / "tables" / "headline.csv")
    assert "uf1_std" in head.columns and head["uf1_std"].isna().all()  # one seed: empty, never "nan"
    table_lines = [ln for ln in md.split("## Headline results")[1].split("## ")[0].splitlines() if ln.startswith("|")]
    assert table_lines and not any("±" in ln for ln in table_lines)
    scan_clean(out)


def test_flow_axis_makes_separate_settings(tmp_path):
    run = fabricate_run(tmp_path, flows=("farneback", "tvl1"), seeds=(0,), examples=False)
    out = make_report(run, tmp_path / "r", ReportOptions(n_boot=20, pdf=False))
    md = (out / "report.md").read_text()
    assert "### synthetic · farneback" in md and "### synthetic · tvl1" in md
    for flow in ("farneback", "tvl1"):
        head = pd.read_csv(out / "tables" / f"headline_synthetic_{flow}.csv")
        assert len(head) == 4 and set(head["dataset"]) == {f"synthetic · {flow}"}
        sig = pd.read_csv(out / "tables" / f"significance_synthetic_{flow}.csv")
        assert set(sig["baseline"]) == {"single_phase"} and len(sig) == 2  # compared within the flow
    assert (out / "figures" / "fusion_weights.png").exists()  # aux keyed by cell hash, mapped to both settings
    scan_clean(out)


def test_stale_outputs_removed_and_cli(tmp_path, monkeypatch, capsys):
    run = fabricate_run(tmp_path, aux=False, examples=False)
    out = tmp_path / "reports" / "toy_study"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "old.png").write_bytes(b"x")
    from bench.runtime.rundir import REPORT_MARKER, write_marker  # a previous report of the suite wrote old.png

    write_marker(out, REPORT_MARKER, {"files": ["figures/old.png"]})
    monkeypatch.chdir(tmp_path)
    assert resolve_run_dir("toy_study") == Path("runs") / "toy_study"
    assert cli_main(["toy_study", "--n-boot", "20", "--no-pdf", "-q"]) == 0
    assert not (out / "figures" / "old.png").exists()
    assert "python -m bench.report" in (out / "report.md").read_text()
    assert cli_main(["nope", "-q"]) == 2
    assert "toy_study" in capsys.readouterr().err  # the error lists the studies that exist


def test_bad_input_names_file_and_row(tmp_path):
    run = fabricate_run(tmp_path, aux=False, examples=False)
    preds = pd.read_parquet(run / "predictions.parquet")
    preds.loc[5, "y_pred"] = 7
    preds.to_parquet(run / "predictions.parquet")
    with pytest.raises(ReportInputError, match=r"predictions.parquet: row 5: column 'y_pred'"):
        make_report(run, tmp_path / "r", ReportOptions(n_boot=10, pdf=False))
