"""Issue 25: the report answers its question first (Markdown and PDF page 1), its verdicts mean what they
say, it is paper-ready (display names, true minus signs, no wrapped table cell, vector figures, a
column-wide UF1 table) and it carries no absolute path; provenance comes last, once."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.report import ReportOptions, make_report
from tests.helpers.fabricate import fabricate_run
from tests.report.test_pdf_typst import md_tables, page_texts

POPPLER = shutil.which("pdftotext") is not None and shutil.which("pdfinfo") is not None
needs_poppler = pytest.mark.skipif(not POPPLER, reason="poppler-utils (pdftotext, pdfinfo) not installed; "
                                                       ".ci/run installs it (apt-get install -y poppler-utils)")
REPS = ("single_phase", "cof[theta1=0.3]", "two_phase_stack")
RECIPES = {"ststnet": {"epochs": 20, "lr": 0.005, "scheduler": "onecycle", "seed": 0, "optimizer": "adam"},
           "fmanet": {"epochs": 30, "lr": 0.003, "scheduler": "none", "seed": 0, "optimizer": "adam"}}
MANIFEST = {"version": 1, "study": "toy_study", "protocol": {"name": "loso"},
            "datasets": {"synthetic": {"table": "synthetic", "classes": ["negative", "positive", "surprise"],
                                       "n_samples": 24, "n_subjects": 6, "per_source": {}, "label_source": "generated",
                                       "apex_rule": "annotated", "face_crop": "none", "flow": {}}},
            "representations": {}, "trainer": {m: {k: v for k, v in r.items() if k != "seed"} for m, r in RECIPES.items()}}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("answer")
    # two_phase_stack copies single_phase's predictions: a practically equivalent pair
    run = fabricate_run(root, reps=REPS, seeds=(0, 1, 2), twins=("two_phase_stack",), recipes=RECIPES,
                        manifest=MANIFEST, examples=False)
    facts = json.loads((run / "run.json").read_text())
    facts["protocol"] = {"name": "loso", "validation": {"mode": "none", "n_val_subjects": None}}
    (run / "run.json").write_text(json.dumps(facts))
    out = make_report(run, root / "reports" / "toy_study", ReportOptions(n_boot=200))
    return run, out, (out / "report.md").read_text()


def section(md: str, title: str, level: str = "## ") -> str:
    return md.split(f"\n{level}{title}")[1].split(f"\n{level}")[0]


def answer_sentences(md: str) -> list[str]:
    return [ln[2:] for ln in section(md, "The answer").splitlines() if ln.startswith("- With ")]


def test_the_markdown_opens_with_the_answer(report):
    _, out, md = report
    assert md.startswith("# Benchmark report: toy_study\n\n## The answer\n")
    ans = section(md, "The answer")
    assert "3 motion representations (single-phase flow, COF[theta1=0.3], two-phase stack)" in ans
    assert "synthetic data" in ans and "24 clips, 6 subjects" in ans and "3 seeds per cell" in ans
    sentences = answer_sentences(md)
    assert [s.split(",")[0] for s in sentences] == ["With STSTNet", "With FMANet"]  # one per comparison family
    assert all("two-phase stack is practically equivalent to" in s for s in sentences)  # the twin of the baseline
    assert all("P(equivalent) 1.00" in s for s in sentences)
    # the compact table: representations as rows, models as columns, UF1 with its interval
    head = next(h for h, _ in md_tables(ans))
    assert head == ["Representation", "STSTNet", "FMANet"]
    # provenance moves to the end, once
    assert md.count("## Reproducibility") == 1 and md.count("### Run manifest") == 1
    assert md.index("## Reproducibility") > md.index("## Cost")
    assert "within seed noise" not in md


def test_the_compact_table_marks_the_best_and_its_ties(tmp_path):
    run = fabricate_run(tmp_path, reps=("single_phase", "two_phase_stack"), seeds=(0, 1), twins=("two_phase_stack",),
                        aux=False, examples=False)
    out = make_report(run, tmp_path / "r", ReportOptions(n_boot=100, pdf=False))
    uf1 = pd.read_csv(out / "tables" / "uf1.csv", keep_default_na=False)
    for _, col in uf1.groupby("model"):
        assert sorted(col["vs_best"]) == ["best", "≈"]  # identical cells: one is the best, the other tied
    md = (out / "report.md").read_text()
    rows = [ln for ln in section(md, "The answer").splitlines() if ln.startswith("| two-phase stack")
            or ln.startswith("| single-phase flow")]
    assert len(rows) == 2 and all(ln.count("**") == 4 for ln in rows)  # every cell bold: best or tied
    assert sum(ln.count(" ≈**") for ln in rows) == 2 and "marked ≈" in md
    tex = (out / "tables" / "uf1.tex").read_text()
    assert r"\resizebox{\columnwidth}{!}{%" in tex and r"$\approx$" in tex  # fits a paper column


def test_run_facts_show_the_recipes_that_ran_and_omit_unset_values(report):
    _, _, md = report
    facts = section(md, "Run facts", "### ")
    assert "Training [STSTNet]: epochs=20; lr=0.005; scheduler=onecycle" in facts
    assert "Training [FMANet]: epochs=30" in facts
    assert "epochs=10" not in facts  # the trainer group's default, which no cell used
    assert "not recorded" not in section(md, "Reproducibility") and "n_val_subjects" not in facts
    manifest = section(md, "Run manifest", "### ")
    assert "| Training recipe [STSTNet] | adam, lr 0.005, onecycle schedule" in manifest
    assert md.count("| Class set |") == 1  # the manifest once


def test_no_absolute_path_in_any_file_of_the_report(report):
    run, out, _ = report
    texts = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*")
             if p.suffix in (".md", ".csv", ".tex")}
    if POPPLER:
        texts["report.pdf"] = "\n".join(page_texts(out / "report.pdf"))
    prefixes = {str(run), str(run.resolve()), str(out.resolve()), str(Path.home()), "/tmp/"}
    for name, text in texts.items():
        for prefix in prefixes:
            assert prefix not in text, f"{name} holds {prefix!r}"
    repro = section(texts["report.md"], "Reproducing this report", "### ")
    assert "python -m bench.report runs/toy_study --out " in repro
    assert "sqlite:///runs/toy_study/mlflow.db" in texts["report.md"]  # the store, relative to the run folder


def test_true_minus_signs_and_display_names(report):
    _, out, md = report
    prose = re.sub(r"```.*?```|`[^`]*`", "", md, flags=re.S)
    assert not re.search(r"(?<![\w.\-])-\d", prose), "a hyphen-minus before a number"
    assert "\u2212" in md  # the verdict rule's −0.01 at least
    sig = section(md, "Verdicts against the baseline")
    assert "| STSTNet | COF[theta1=0.3] |" in sig and "| ststnet |" not in sig
    csv = pd.read_csv(out / "tables" / "verdicts.csv")
    assert set(csv["model"]) == {"ststnet", "fmanet"}  # machine-readable tables keep the labels


def test_figures_are_also_vector_pdfs(report):
    _, out, md = report
    pngs = sorted((out / "figures").glob("*.png"))
    assert pngs and all(p.with_suffix(".pdf").read_bytes().startswith(b"%PDF") for p in pngs)
    marker = json.loads((out / ".dualflow-report").read_text())
    assert {f"figures/{p.stem}.pdf" for p in pngs} <= set(marker["files"])  # recorded: stale ones are removed


def test_all_representations_at_once_and_explanations_on_a_stated_scale(report):
    _, out, md = report
    ranks = section(md, "All representations at once: ranks over subjects")
    assert "Unit of replication: the subject" in ranks and "Friedman" in ranks and "Nemenyi" in ranks
    assert (out / "figures" / "critical_difference.png").exists()
    r = pd.read_csv(out / "tables" / "ranks.csv")
    assert set(r["representation"]) == set(REPS) and (r.groupby("model")["mean_rank"].sum().round(4) == 6).all()
    expl = section(md, "Model explanations")
    assert re.search(r"attention of .*one colour scale for every panel, 0 to 1; the means shown span "
                     r"0\.\d+ to 0\.\d+", expl)


@needs_poppler
def test_the_pdf_first_page_holds_the_answer(report):
    _, out, md = report
    first = page_texts(out / "report.pdf")[0]

    def squash(s: str) -> str:  # line breaks and hyphenation differ between the PDF and the Markdown
        return re.sub(r"[^0-9A-Za-z.\[\]]", "", s.replace("\u2212", "-"))

    assert "The answer" in first and "Contents" in first
    for sentence in answer_sentences(md):
        assert squash(sentence.replace("**", "")) in squash(first), sentence


@needs_poppler
def test_no_table_row_of_the_pdf_wraps(report):
    """Every row of a table without prose (no cell over 32 characters) prints on one line: its cells'
    texts all on one line of ``pdftotext -layout`` (a wrapped cell would put part on the next line)."""
    from bench.report.pdf import PROSE

    _, out, md = report
    lines = [re.sub(r"\s+", "", ln) for page in page_texts(out / "report.pdf") for ln in page.splitlines()]
    checked = 0
    for rows in _md_table_rows(md):
        if max(len(c) for r in rows for c in r) > PROSE:
            continue
        for cells in rows:
            cells = [re.sub(r"\s+", "", c) for c in cells if c]  # pdftotext spaces columns its own way
            assert any(all(c in ln for c in cells) for ln in lines), cells
            checked += 1
    assert checked >= 20


def _md_table_rows(md: str) -> list[list[list[str]]]:
    """The body rows (cells, bold markers stripped) of every Markdown table."""
    tables, cur = [], None
    for ln in md.splitlines():
        if re.match(r"^\|(:?-+:?\|)+$", ln):
            cur = []
            tables.append(cur)
        elif ln.startswith("| ") and cur is not None:
            cur.append([c.strip().strip("*").replace("\\|", "|") for c in re.split(r"(?<!\\)\|", ln)[1:-1]])
        else:
            cur = None
    return tables


def test_the_composite_answers_per_source_database(tmp_path):
    run = fabricate_run(tmp_path, reps=("single_phase", "cof[theta1=0.3]"), models=("ststnet",), seeds=(0, 1),
                        dataset="megc2019", sources=("smic", "casme2", "samm"), n_subjects=9, aux=False,
                        examples=False, flows=None)
    out = make_report(run, tmp_path / "r", ReportOptions(n_boot=100, pdf=False))
    md = (out / "report.md").read_text()
    assert "the MEGC2019 composite of SMIC, CASME II and SAMM (36 clips, 9 subjects)" in section(md, "The answer")
    comp = section(md, "MEGC2019 composite: Full / SMIC / CASME II / SAMM")
    for source in ("Full", "SMIC", "CASME II", "SAMM"):
        assert f"**{source}**:\n\n- With STSTNet, COF[theta1=0.3] is " in comp, source
    assert "this run used unified settings, not each author's tuned recipe" in comp
    v = pd.read_csv(out / "tables" / "verdicts.csv")
    assert len(v) == 1  # the verdict table is the pooled comparison; each source's is in the composite section


def test_rope_and_decide_at_from_the_command_line_and_refused_when_out_of_range(tmp_path, monkeypatch, capsys):
    from bench.report.__main__ import main, parse_args

    a = parse_args(["x", "--rope", "0.02", "--decide-at", "0.9"])
    assert (a.rope, a.decide_at) == (0.02, 0.9)
    run = fabricate_run(tmp_path, seeds=(0,), aux=False, examples=False)
    monkeypatch.chdir(tmp_path)
    assert main(["toy_study", "--decide-at", "0.4", "--no-pdf", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "report.decide_at must be in (0.5, 1), got 0.4" in err
    assert main(["toy_study", "--rope", "0.05", "--n-boot", "20", "--no-pdf", "-q"]) == 0
    md = (tmp_path / "reports" / "toy_study" / "report.md").read_text()
    assert "|ΔUF1| ≤ 0.05" in md and "--rope 0.05" in md  # stated, and in the command that remakes it
    assert run.exists()


def test_notes_about_missing_files_name_no_path(tmp_path):
    run = fabricate_run(tmp_path, seeds=(0,), aux=False, examples=False)
    (run / "run.json").unlink()
    (run / "results.parquet").unlink()
    md = (make_report(run, tmp_path / "r", ReportOptions(n_boot=20, pdf=False)) / "report.md").read_text()
    assert "- run.json is missing;" in md and "- results.parquet/.csv missing;" in md
    assert str(tmp_path) not in md


def test_seeds_auto_says_how_many_seeds_each_cell_got_and_why(tmp_path):
    run = fabricate_run(tmp_path, seeds=(0, 1, 2), aux=False, examples=False)
    facts = json.loads((run / "run.json").read_text())
    facts["seeds_auto"] = {"start": 3, "max_seeds": 10, "rope": 0.01, "decide_at": 0.95, "stopped": "every "
                           "comparison decided", "rounds": [{"round": 1, "undecided": ["a vs b"],
                                                             "added": {"synthetic|farneback|cof|fmanet": 3},
                                                             "capped": []}],
                           "seeds": {"synthetic|farneback|cof|fmanet": 4, "synthetic|farneback|single_phase|fmanet": 3}}
    (run / "run.json").write_text(json.dumps(facts))
    md = (make_report(run, tmp_path / "r", ReportOptions(n_boot=20, pdf=False)) / "report.md").read_text()
    assert "(study.seeds=auto: more seeds only where a comparison was undecided)" in section(md, "The answer")
    sig = section(md, "Verdicts against the baseline")
    assert "every cell started with 3 seeds" in sig and "Stopped: every comparison decided." in sig
    assert "| synthetic\\|farneback\\|cof\\|fmanet | 4 | seed 3 in round 1 |" in sig
