"""The end of a run prints the report's answer: the best cell and one verdict sentence per model."""

import io
import re

from bench.run import run_study

TINY = [
    "study=smoke", "study.seeds=[0,1]",
    "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
    "trainer.epochs=1", "flow.size=32", "tracking=none", "progress=false", "executor.workers=1",
    "report_options.pdf=false",
]


def test_the_console_prints_the_same_answer_as_the_report(tmp_path, session_cache):
    out = io.StringIO()
    run_study([*TINY, f"paths.cache={session_cache}", f"paths.runs={tmp_path / 'runs'}",
               f"paths.reports={tmp_path / 'reports'}"], out=out)
    text = out.getvalue()
    answer = text[text.index("The answer ("):]
    assert re.search(r"best cell: .+ × STSTNet, UF1 \d\.\d{3} ± \d\.\d{3} over 2 seeds", answer)
    sentences = re.findall(r"^  - (With STSTNet, .+\.)$", answer, flags=re.M)
    assert len(sentences) == 1
    assert re.search(r"(better than|worse than|practically equivalent to|undecided against) single-phase flow",
                     sentences[0])
    report = (tmp_path / "reports" / "smoke" / "report.md").read_text()
    assert sentences[0] in report  # the same words as the report's answer, not a second wording
    html = tmp_path / "reports" / "smoke" / "report.html"
    assert html.is_file() and f"  in a browser: {html}" in text  # the closing lines name the browsable report


def test_no_comparison_says_why_one_representation_or_a_missing_baseline():
    from bench.runner.summary import _Names, _why_no_comparison

    one = _Names({"representation": {"single_phase": "single_phase"}, "model": {}})
    assert "one representation ('single_phase')" in _why_no_comparison("single_phase", one)
    other = _Names({"representation": {"cof": "cof"}, "model": {}})
    assert "not among this study's representations" in _why_no_comparison("single_phase", other)
