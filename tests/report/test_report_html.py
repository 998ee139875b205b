"""report.html (issue 28) opened in real headless Chromium with the network off: it loads nothing but
itself, its table sorts and filters, a drill-down opens with the cell's confusion matrix, per-subject
scores, learning curve and recipe, the noise floor's hover names seed and UF1, a hostile label stays
text, and its numbers are report.md's (and, where they have a known answer, the predictions')."""

from __future__ import annotations

import html
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import ReportOptions, make_report
from tests.helpers.fabricate import fabricate_run

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the dev extra installs it
    sync_playwright = None

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or sync_playwright is None,
    reason="headless Chromium (apt-get install -y chromium; .ci/run installs it) and the Python package "
           "playwright (the dev extra; never `playwright install`: the system Chromium is used) are needed")

# A label a study may write that is also markup: it must stay text (no element, no request, no script).
HOSTILE = 'cof<img src=x onerror="window.pwned=1">&amp;'
REPS = ("single_phase", "cof[theta1=0.3]", HOSTILE)
SEEDS, N_SUBJECTS = (0, 1), 4
RECIPE = {"optimizer": "adam", "lr": 0.001, "epochs": 4}


def _with_histories(run: Path) -> Path:
    """Every unit gets a key and a history: train_loss = 1/(epoch+1) + seed/10 + fold/100 (epochs 0-3)."""
    res = pd.read_parquet(run / "results.parquet")
    res["unit_key"] = [f"u{i:04d}" for i in range(len(res))]
    res.to_parquet(run / "results.parquet")
    (run / "units").mkdir()
    for _, r in res.iterrows():
        f = int(r["fold"][1:])
        hist = [{"epoch": e, "train_loss": 1 / (e + 1) + r["seed"] / 10 + f / 100} for e in range(4)]
        (run / "units" / f"{r['unit_key']}.json").write_text(json.dumps({"row": {}, "history": hist}))
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("html")
    run = fabricate_run(root, reps=REPS, seeds=SEEDS, n_subjects=N_SUBJECTS, rep_params={HOSTILE: ("cof", {})},
                        recipes={"ststnet": RECIPE, "fmanet": RECIPE}, aux=False, examples=False)
    return make_report(_with_histories(run), root / "report", ReportOptions(n_boot=50, pdf=False))


@pytest.fixture(scope="module")
def browser(report):
    """One page of headless Chromium on report.html; every request is recorded and all but file:// refused."""
    url = (report / "report.html").resolve().as_uri()
    seen = {"requests": [], "dialogs": [], "errors": [], "sockets": []}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"])
        ctx = b.new_context(offline=True, viewport={"width": 1400, "height": 900})

        def route(r):
            seen["requests"].append(r.request.url)
            r.continue_() if r.request.url.startswith("file:") else r.abort()

        ctx.route("**/*", route)
        page = ctx.new_page()
        page.on("request", lambda r: seen["requests"].append(r.url))
        page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: seen["errors"].append(str(e)))
        page.on("websocket", lambda w: seen["sockets"].append(w.url))
        page.goto(url)
        page.wait_for_load_state("load")
        yield page, url, seen
        b.close()


def _md_table(md: str, after: str) -> list[list[str]]:
    """The first Markdown table after the line ``after``: rows of cell texts (markup and escapes removed)."""
    lines = md[md.index(after):].splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| "))
    rows = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", ln.strip()[1:-1])
        rows.append([html.unescape(c.strip().replace("\\|", "|").replace("**", "")) for c in cells])
    return rows


def _cells(page, table: str = "#cells") -> list[list[str]]:
    return page.eval_on_selector_all(f"{table} tbody tr:not([hidden])",
                                     "rs => rs.map(r => Array.from(r.cells).map(c => c.textContent.trim()))")


def test_report_html_written_self_contained_and_recorded(report):
    text = (report / "report.html").read_text(encoding="utf-8")
    assert "report.html" in json.loads((report / ".dualflow-report").read_text())["files"]
    # no reference to anything outside the file: no src/href but in-page anchors, no stylesheet link, no url()
    refs = re.findall(r"""\b(?:src|href|xlink:href)\s*=\s*["']?([^"'\s>]*)""", text)
    assert all(r.startswith("#") for r in refs if r != "x"), refs  # "x": the hostile label's, escaped (below)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert "<img" not in text  # the hostile label is escaped everywhere it is written
    assert "&lt;img src=x onerror=&quot;window.pwned=1&quot;&gt;&amp;amp;" in text
    assert str(report.parent) not in text and str(report.parent.resolve()) not in text  # no path of this machine


def test_several_settings_one_seed(tmp_path):
    """Two flows: a setting per flow (a heading each in the noise floor and verdicts); one seed: no dots, said."""
    from bench.report.context import ReportContext
    from bench.report.html import render
    from bench.report.load import load_run

    run = fabricate_run(tmp_path, seeds=(0,), flows=("farneback", "tvl1"), aux=False, examples=False)
    text = render(ReportContext(load_run(run), tmp_path / "r", ReportOptions(n_boot=20, pdf=False)), [])
    assert text.count('<tr data-cell="') == 2 * 2 * 2 and "<circle" not in text
    assert "Each cell ran one seed: seed variance was not measured." in text
    for setting in ("synthetic · farneback", "synthetic · tvl1"):
        assert text.count(f"<h3>{setting}</h3>") == 1  # the verdicts' heading (no noise floor with one seed)
        assert f'<option value="{setting}">' in text


@needs_browser
def test_page_loads_nothing_but_itself_and_runs_no_label(browser):
    page, url, seen = browser
    page.click("button.open >> nth=-1")  # the hostile cell's drill-down draws its labels too
    page.hover("svg.noise circle.dot >> nth=0")
    assert seen["errors"] == [] and seen["dialogs"] == [] and seen["sockets"] == []
    assert set(seen["requests"]) == {url}, seen["requests"]
    assert page.evaluate("window.pwned") is None
    assert page.locator("#cells img, #answer img, #drill img, #verdicts img").count() == 0
    names = page.eval_on_selector_all("#cells tbody tr", "rs => rs.map(r => r.cells[1].textContent)")
    assert 'COF<img src=x onerror="window.pwned=1">&amp;' in names


@needs_browser
def test_numbers_equal_report_md(browser, report):
    page, _, _ = browser
    md = (report / "report.md").read_text()
    # the answer: the same sentences (the report's own blocks) and the same compact table
    answer = page.inner_text("#answer")
    for bullet in re.findall(r"^- (With .*)$", md[:md.index("## About")], flags=re.M):
        assert html.unescape(bullet) in answer
    compact = page.eval_on_selector_all("#answer table tbody tr",
                                        "rs => rs.map(r => Array.from(r.cells).map(c => c.textContent.trim()))")
    assert compact == _md_table(md, "## The answer")
    # every cell's UF1, UAR and accuracy (mean ± sd [interval]) as the headline table prints them
    rows = {(r[1], r[2]): r for r in _cells(page)}
    head = _md_table(md, "## Headline results")
    assert len(head) == len(rows) == len(REPS) * 2
    for rep, model, uf1, uar, acc in head:
        r = rows[(rep, model)]
        assert [f"{r[4]} {r[5]}", f"{r[6]} {r[7]}", f"{r[8]} {r[9]}"] == [uf1, uar, acc]
    # each verdict and its ΔUF1 as the verdict table prints them
    for model, rep, _seeds, delta, _p, verdict, *_ in _md_table(md, "## Verdicts against the baseline"):
        assert rows[(rep, model)][10:12] == [delta, verdict]


@needs_browser
def test_table_sorts_and_filters(browser):
    page, _, _ = browser
    page.click("#cells th[data-key=uf1]")
    up = [float(v) for v in page.eval_on_selector_all("#cells tbody tr td.c-uf1", "ts => ts.map(t => t.dataset.v)")]
    assert up == sorted(up) and len(set(up)) > 1
    assert page.get_attribute("#cells th[data-key=uf1]", "aria-sort") == "ascending"
    page.click("#cells th[data-key=uf1]")
    down = [float(v) for v in page.eval_on_selector_all("#cells tbody tr td.c-uf1", "ts => ts.map(t => t.dataset.v)")]
    assert down == sorted(up, reverse=True)
    page.click("#cells th[data-key=rep_name]")
    asc = [r[1] for r in _cells(page)]
    page.click("#cells th[data-key=rep_name]")
    assert [r[1] for r in _cells(page)] == asc[::-1] and asc != asc[::-1]
    # filters: one model, then one representation too, then all again
    page.select_option("select[data-filter=model]", "fmanet")
    assert {r[2] for r in _cells(page)} == {"FMANet"} and len(_cells(page)) == len(REPS)
    page.select_option("select[data-filter=rep]", "cof[theta1=0.3]")
    assert [(r[1], r[2]) for r in _cells(page)] == [("COF[theta1=0.3]", "FMANet")]
    assert page.inner_text("#shown") == f"1 of {2 * len(REPS)} cells"
    page.select_option("select[data-filter=rep]", "")
    page.select_option("select[data-filter=model]", "")
    page.select_option("select[data-filter=verdict]", "baseline")
    assert {r[1] for r in _cells(page)} == {"single-phase flow"}
    page.select_option("select[data-filter=verdict]", "")
    assert len(_cells(page)) == 2 * len(REPS)


@needs_browser
def test_drill_down_shows_the_cells_confusion_subjects_curve_and_recipe(browser, report):
    page, _, _ = browser
    preds = pd.read_parquet(report.parent / "runs" / "toy_study" / "predictions.parquet")
    page.click("#cells tr[data-rep='cof[theta1=0.3]'][data-model=ststnet] button.open")
    body = page.locator("#drill-body")
    assert "COF[theta1=0.3] × STSTNet" in page.inner_text("#drill-title")
    # confusion matrix: counts over both seeds, by hand from the predictions
    cell = preds[(preds["representation"] == "cof[theta1=0.3]") & (preds["model"] == "ststnet")]
    want = np.zeros((3, 3), int)
    np.add.at(want, (cell["y_true"].to_numpy(), cell["y_pred"].to_numpy()), 1)
    got = [int(t) for t in body.locator("svg.confusion text.cm-n").all_text_contents()]
    assert got == want.ravel().tolist()
    # per subject: accuracy per seed, averaged over seeds, beside the baseline cell's (same model)

    def acc(d):
        return d.assign(ok=d["y_true"] == d["y_pred"]).groupby(["subject", "seed"])["ok"].mean().groupby("subject").mean()

    base = preds[(preds["representation"] == "single_phase") & (preds["model"] == "ststnet")]
    table = body.locator("table.subjects tbody tr").evaluate_all(
        "rs => rs.map(r => Array.from(r.cells).map(c => c.textContent))")
    assert [[r[0], r[1], r[3]] for r in table] == [[s, f"{acc(cell)[s]:.3f}", f"{acc(base)[s]:.3f}"]
                                                   for s in sorted(cell["subject"].unique())]
    assert body.locator("svg circle.subj").count() == N_SUBJECTS
    # learning curve: mean over folds, then seeds: 1/(e+1) + 0.05 + 0.015, from epoch 1 (1.065) to 4 (0.315)
    labels = body.locator("svg.curve text.lab").all_text_contents()
    assert labels == ["1.065", "0.315"]
    recipe = dict(body.locator("table.recipe tr").evaluate_all(
        "rs => rs.map(r => [r.cells[0].textContent, r.cells[1].textContent])"))
    assert recipe["trainer.lr"] == "0.001" and recipe["trainer.optimizer"] == "adam"
    assert recipe["representation"] == "cof (theta1=0.3)" and recipe["model"] == "ststnet (dropout=0.5)"


@needs_browser
def test_noise_floor_dots_hover_seed_and_uf1(browser, report):
    page, _, _ = browser
    scores = pd.read_csv(report / "tables" / "seed_scores.csv")
    dots = page.locator("svg.noise circle.dot")
    assert dots.count() == len(scores) == len(REPS) * 2 * len(SEEDS)
    got = sorted((int(s), float(u)) for s, u in dots.evaluate_all("ds => ds.map(d => [d.dataset.seed, d.dataset.uf1])"))
    assert got == sorted((int(s), round(float(u), 3)) for s, u in zip(scores["seed"], scores["uf1"]))
    first = dots.nth(0)
    first.hover()
    tip = page.locator("#tip")
    assert tip.is_visible()
    assert tip.inner_text() == first.locator("title").text_content()
    seed, uf1 = first.get_attribute("data-seed"), first.get_attribute("data-uf1")
    assert re.search(rf"seed {seed}, UF1 {uf1}$", tip.inner_text())


def test_open_hands_the_browser_a_file_uri_else_prints_the_path(report, tmp_path, monkeypatch, capsys):
    """``--open``: the browser ``webbrowser`` finds gets the page's file:// URI; with none, the path is printed.
    The browsers are the real ``webbrowser`` machinery, given a recording command instead of the machine's."""
    import webbrowser

    from bench.report.__main__ import open_page, parse_args

    assert parse_args(["toy_study", "--open"]).open and not parse_args(["toy_study"]).open
    page = report / "report.html"
    record, log = tmp_path / "browser.py", tmp_path / "opened.txt"
    record.write_text(f"import sys; open({str(log)!r}, 'w').write(sys.argv[1])\n")
    monkeypatch.setattr(webbrowser, "_browsers", {})  # this test's browsers only; restored after it
    monkeypatch.setattr(webbrowser, "_tryorder", [])
    webbrowser.register("recorder", None, webbrowser.GenericBrowser([sys.executable, str(record), "%s"]),
                        preferred=True)
    assert open_page(page) is True
    assert log.read_text() == page.resolve().as_uri()
    monkeypatch.setattr(webbrowser, "_tryorder", [])  # a machine with no browser at all
    assert open_page(page) is False
    assert capsys.readouterr().out.splitlines()[-1] == f"no web browser to open; open this file in one: {page}"
