"""The typeset PDF report (issue 17), read back with poppler: pages rendered (pdftoppm) and their text
(pdftotext, page by page). The Markdown of the same report is the reference for what each table holds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.report import ReportOptions, make_report
from bench.report.document import Bullets, Code, Formula, Heading, Para, Table
from bench.report.pdf import render

POPPLER = shutil.which("pdftoppm") is not None and shutil.which("pdftotext") is not None
needs_poppler = pytest.mark.skipif(not POPPLER, reason="poppler-utils (pdftoppm, pdftotext) not installed; "
                                                       ".ci/run installs it (apt-get install -y poppler-utils)")


def page_texts(pdf: Path) -> list[str]:
    """The text of every page (pdftotext -layout, one call per page)."""
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    n = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    return [subprocess.run(["pdftotext", "-layout", "-f", str(i), "-l", str(i), str(pdf), "-"], capture_output=True,
                           text=True, check=True).stdout.replace("\u00a0", " ") for i in range(1, n + 1)]


def md_tables(md: str) -> list[tuple[list[str], list[str]]]:
    """(header cells, first row cells) of every table in the Markdown."""
    out, lines = [], md.splitlines()
    for i, ln in enumerate(lines[:-2]):
        if ln.startswith("| ") and re.match(r"^\|(:?-+:?\|)+$", lines[i + 1]):
            def cells(s):
                return [c.strip().strip("*").replace("\\|", "|") for c in re.split(r"(?<!\\)\|", s)[1:-1]]
            out.append((cells(ln), cells(lines[i + 2])))
    return out


@needs_poppler
def test_user_text_is_never_typst_markup(tmp_path):
    """Labels with Typst's markup characters print as themselves, and the document still compiles."""
    nasty = ['cof[theta1=0.3]_x', '#let a = 1', 'a*b_c', '$x^2$', '<label>', '@ref', 'a // b', 'back\\slash "q"',
             '= not a heading', '- not a list']
    blocks = [Heading("Section " + nasty[0]), Para(" ".join(nasty[1:4]) + " **bold** `co_de`"),
              Bullets(nasty[4:]), Code("line 1\n  line \"2\" \\ #x"), Formula('x = 1/2', r'x = \frac12'),
              Table(["Name_", "#"], [[s, str(i)] for i, s in enumerate(nasty)], caption="Caption with _ and #")]
    n = render(blocks, tmp_path / "t.pdf", tmp_path, title="T_#1", items=[("Run_dir", "/a/b_c")], footer="foot_er")
    text = "\n".join(page_texts(tmp_path / "t.pdf"))
    assert n == len(page_texts(tmp_path / "t.pdf")) == 2  # title page + one page of content
    for s in [*nasty, "co_de", "Caption with _ and #", "T_#1", "/a/b_c", "foot_er — page 2", 'line "2" \\ #x']:
        assert s in text, s
    assert "*bold*" not in text and "bold" in text  # markdown bold became typeset bold


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from tests.helpers.fabricate import fabricate_run

    root = tmp_path_factory.mktemp("pdf")
    # three representations x two models x two seeds: a headline table of six rows with CIs
    run = fabricate_run(root, reps=("single_phase", "cof[theta1=0.3]", "cof[theta1=0.6]"))
    return make_report(run, root / "reports" / "toy_study", ReportOptions(n_boot=100))


@pytest.mark.slow
@pytest.mark.ci
@needs_poppler
def test_pdf_pages_tables_formulas_and_sections(report, tmp_path):
    pdf, md = report / "report.pdf", (report / "report.md").read_text()
    pages = page_texts(pdf)
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "p")], check=True)
    assert len(sorted(tmp_path.glob("p-*.png"))) == len(pages)  # every page renders
    # page numbers on every page
    for i, t in enumerate(pages, 1):
        assert f"toy_study — page {i}" in t, i
    # page 1: the title, the answer and the contents; the provenance (commit) comes last
    assert "Benchmark report: toy_study" in pages[0] and "The answer" in pages[0] and "Contents" in pages[0]
    assert "deadbeef" not in pages[0] and "deadbeef" in pages[-1]
    # the headline table's values (point, seed sd, CI bounds) all on one page
    head = pd.read_csv(report / "tables" / "headline.csv")
    values = [f"{r[c]:.3f}" for _, r in head.iterrows() for m in ("uf1", "uar", "acc")
              for c in (m, f"{m}_std", f"{m}_ci_lo", f"{m}_ci_hi")]
    on = [i for i, t in enumerate(pages) if "Pooled UF1, UAR and accuracy" in t]
    assert len(on) == 1 and all(v in pages[on[0]] for v in values), "headline table split across pages"
    # every table (as the Markdown of the same document has it): its header and first row on one page
    tables = md_tables(md)
    assert len(tables) >= 4
    for header, first in tables:
        hits = [t for t in pages if header[0] in t and first[0] in t[t.find(header[0]):]
                and all(w in t for w in first[-1].split()[:2])]
        assert hits, (header, first)
    # figures numbered in order, one caption per figure of the Markdown; tables numbered too
    n_fig = len(re.findall(r"^!\[", md, re.M))
    assert re.findall(r"Figure (\d+):", "\n".join(pages)) == [str(i) for i in range(1, n_fig + 1)]
    assert re.findall(r"Table (\d+):", "\n".join(pages)) == [str(i) for i in range(1, len(tables) + 1)]
    for tex in (report / "tables").glob("*.tex"):
        assert all(r in tex.read_text() for r in (r"\toprule", r"\midrule", r"\bottomrule")), tex.name
    # the metric definitions, as typeset formulas
    defs = next(t for t in pages if "Metric definitions" in t and "UF1 =" in t)
    for s in ("UF1 =", "UAR =", "Accuracy =", "TP", "FP", "FN", "∑"):
        assert s in defs, s
    # sections: the contents lists every section of the Markdown, each on the page it names
    sections = re.findall(r"^## (.+)$", md, re.M)
    toc = {m.group(2).strip(): int(m.group(3)) for m in
           re.finditer(r"^\s*(\d+)\s+(.+?)\s*(?:\.\s*)+\D*(\d+)\s*$", pages[0], re.M)}
    assert list(toc) == sections, (list(toc), sections)
    numbers = list(toc.values())
    assert numbers == sorted(numbers) and numbers[:2] == [1, 2]  # the answer on page 1, then the sections in order
    for (name, page), no in zip(toc.items(), range(1, len(toc) + 1)):
        assert re.search(rf"^\s*{no}\s+{re.escape(name)}\s*$", pages[page - 1], re.M), (name, page)
    # as many pages as the sections take: the last section starts on the last page or the one before
    assert numbers[-1] in (len(pages), len(pages) - 1)
    assert len(pages) <= 1 + len(sections)  # no half-empty page per block (the hand layout's fault)


def test_latex_tables_use_booktabs_rules():
    """tables/*.tex paste into a paper: booktabs rules (no \\hline), escaped text, bold best cells."""
    from bench.report.tables import to_latex

    t = Table(["Representation", "UF1"], [["cof[theta1=0.3]_x", "0.602 ± 0.030"], ["50% & #1", "0.5"]],
              caption="Pooled UF1", bold={(0, 1)}, align=["l", "r"])
    tex = to_latex(t, "headline")
    lines = tex.splitlines()
    assert "\\hline" not in tex and r"\usepackage{booktabs}" in lines[0]
    i = [lines.index(r) for r in (r"\toprule", r"\midrule", r"\bottomrule")]
    assert i == sorted(i) and lines[i[0] + 1] == r"\textbf{Representation} & \textbf{UF1} \\"
    assert lines[i[1] + 1] == r"cof[theta1=0.3]\_x & \textbf{0.602 $\pm$ 0.030} \\"
    assert lines[i[1] + 2] == r"50\% \& \#1 & 0.5 \\" and i[2] == i[1] + 3
    assert r"\begin{tabular}{lr}" in lines and r"\label{tab:headline}" in lines


@needs_poppler
def test_long_table_repeats_its_header_and_short_one_stays_whole(tmp_path):
    """A table too tall for a page breaks between rows with its header on every page (never a header
    alone at a page foot); one that fits is moved whole to the next page instead of split."""
    # 12 paragraphs leave room for 10 of the short table's 12 rows on the first page (measured: a
    # breakable table splits 10 / 2 there), so keeping it whole moves it to the next page.
    filler = [Para("Filler paragraph " + "text " * 60) for _ in range(12)]
    long = Table(["Subject", "Score"], [[f"s{i:03d}", f"{i / 100:.3f}"] for i in range(140)], caption="Long")
    short = Table(["Model", "UF1"], [[f"m{i}", f"0.{i}"] for i in range(12)], caption="Short")
    render([Heading("A"), *filler, short, Heading("B"), long], tmp_path / "t.pdf", tmp_path, title="T", items=[],
           footer="f")
    pages = page_texts(tmp_path / "t.pdf")[1:]  # after the title page
    short_on = [i for i, t in enumerate(pages) if re.search(r"\bm\d+\b", t)]
    assert len(short_on) == 1 and all(f"m{i}" in pages[short_on[0]] for i in range(12))
    assert short_on[0] == 1 and "Filler" not in pages[1] and pages[0].count("Filler") == 12
    long_on = [t for t in pages if re.search(r"\bs\d{3}\b", t)]
    assert len(long_on) >= 3
    seen = []
    for t in long_on:
        lines = [ln.split() for ln in t.splitlines() if ln.strip()]
        h = next(i for i, ln in enumerate(lines) if ln == ["Subject", "Score"])  # the header, on every page
        assert re.fullmatch(r"s\d{3}", lines[h + 1][0]), lines[h:h + 2]  # and a row right under it
        seen += [ln[0] for ln in lines if re.fullmatch(r"s\d{3}", ln[0])]
    assert seen == [f"s{i:03d}" for i in range(140)]  # every row once, in order


def test_figure_width_is_the_text_width_unless_too_tall_or_too_coarse():
    from bench.report.pdf import figure_width_mm

    assert figure_width_mm(1403, 921) == 170.0  # 1403 px over 170 mm: 210 dpi, fits the page
    assert figure_width_mm(962, 655) == pytest.approx(962 / 150 * 25.4, abs=0.01)  # 170 mm would be 144 dpi
    assert figure_width_mm(1000, 3000) == pytest.approx(200 / 3, abs=0.01)  # 200 mm tall at most
