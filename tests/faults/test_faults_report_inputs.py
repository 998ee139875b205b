"""Hostile inputs and a full disk around the reporter, the tuning journal and the data summary (issue 24).

- A full disk (ENOSPC injected into the figure, table, Markdown or PDF write, midway) while a report
  is written: ``python -m bench.report`` exits 2 with one ``error:`` line, and the report folder is
  exactly as the previous report left it (no torn file, no new tables beside old figures).
- An explicit ``--baseline`` that names no representation is refused before anything is written,
  listing the representations there are.
- Raw HTML in labels (study, class, representation) is escaped in report.md.
- ``aux.npz`` / ``examples.npz`` larger than ``bench.report.load.MAX_NPZ_BYTES`` uncompressed (a
  zip bomb) are left out, with a note, before any member is decompressed.
- A damaged ``optuna.journal`` is refused before any training, naming the file; a torn last line
  (an interrupted write) is cut off with a warning naming the file.
- ``python -m bench.data summary`` exits 1 when it lists errors.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import ReportOptions, make_report
from bench.report.__main__ import main as report_main
from tests.helpers.fabricate import fabricate_run

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def _fake_pdf(full_after: int | None):
    """A stand-in for ``bench.report.pdf.render`` (typst may be absent): writes a PDF with a plain
    file write; with ``full_after`` the disk is full after that many bytes (a torn file, then ENOSPC)."""
    def render(blocks, path, base_dir, **kw):
        data = b"%PDF-1.7 " + b"x" * 4000 + b" %%EOF"
        with open(path, "wb") as f:
            if full_after is None:
                f.write(data)
                return 1
            f.write(data[:full_after])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return render


def _fail_on_call(n: int, real, cut=None):
    """``real`` on every call but the ``n``-th, which writes half (``cut``) and raises ENOSPC."""
    calls = {"n": 0}

    def f(*a, **kw):
        calls["n"] += 1
        if calls["n"] == n:
            if cut is not None:
                cut(*a, **kw)
            raise ENOSPC
        return real(*a, **kw)
    return f


# -- item 10: a full disk while a report is written --------------------------------------------------

@pytest.mark.parametrize("where", ["pdf", "table", "figure", "markdown"])
def test_a_full_disk_midway_keeps_the_previous_report_whole(tmp_path, monkeypatch, capsys, where):
    import bench.report.pdf as pdfmod

    out = tmp_path / "rep"
    first = fabricate_run(tmp_path / "a", examples=False, seeds=(0,))
    second = fabricate_run(tmp_path / "b", aux=False, examples=False, seeds=(0,), rng_seed=3)
    monkeypatch.setattr(pdfmod, "render", _fake_pdf(None))
    assert report_main([str(first), "--out", str(out), "--n-boot", "10", "-q"]) == 0
    capsys.readouterr()
    before = snapshot(out)
    assert "report.pdf" in before and "figures/fusion_weights.png" in before

    if where == "pdf":  # the case: a torn report.pdf beside a whole report.md
        monkeypatch.setattr(pdfmod, "render", _fake_pdf(1000))
    elif where == "table":  # new tables beside the old report and figures
        def half_csv(self, path, *a, **kw):
            Path(path).write_text(self.to_string()[:40])
        monkeypatch.setattr(pd.DataFrame, "to_csv", _fail_on_call(3, pd.DataFrame.to_csv, half_csv))
    elif where == "figure":
        from matplotlib.figure import Figure

        def half_png(self, path, *a, **kw):
            Path(path).write_bytes(b"\x89PNG\r\n")
        monkeypatch.setattr(Figure, "savefig", _fail_on_call(2, Figure.savefig, half_png))
    else:  # report.md itself, written last
        real = pathlib.Path.write_text

        def write_text(self, data, *a, **kw):
            if self.name == "report.md":
                real(self, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
            return real(self, data, *a, **kw)
        monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    assert report_main([str(second), "--out", str(out), "--n-boot", "10", "-q"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "No space left on device" in line and str(out) in line, line
    assert snapshot(out) == before  # byte for byte: no torn file, nothing new, nothing removed


def test_an_interrupted_report_keeps_the_previous_one_and_the_next_replaces_it(tmp_path, monkeypatch):
    """Ctrl-C half-way through the figures: the previous report stays whole; the next report then
    replaces it and leaves no staging folder or temporary file behind."""
    import bench.report.pdf as pdfmod
    from matplotlib.figure import Figure

    out = tmp_path / "rep"
    first = fabricate_run(tmp_path / "a", examples=False, seeds=(0,))
    second = fabricate_run(tmp_path / "b", aux=False, examples=False, seeds=(0,), rng_seed=3)
    monkeypatch.setattr(pdfmod, "render", _fake_pdf(None))
    make_report(first, out, ReportOptions(n_boot=10))
    before = snapshot(out)
    real = Figure.savefig
    calls = {"n": 0}

    def interrupted(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *a, **kw)
    monkeypatch.setattr(Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_report(second, out, ReportOptions(n_boot=10))
    assert snapshot(out) == before
    monkeypatch.setattr(Figure, "savefig", real)
    make_report(second, out, ReportOptions(n_boot=10))
    assert not (out / "figures" / "fusion_weights.png").exists()  # the first report's, stale now
    hidden = [p.name for p in out.rglob(".*") if p.name not in (".dualflow-report", ".dualflow-lock")]
    assert hidden == []  # no staging folder or temporary file left


# -- item 14: an explicit baseline that is not there ------------------------------------------------

def test_an_unknown_baseline_is_one_error_line_listing_the_representations(tmp_path, capsys):
    run = fabricate_run(tmp_path, aux=False, examples=False, seeds=(0,))
    out = tmp_path / "rep"
    assert report_main([str(run), "--out", str(out), "--baseline", "nope", "--n-boot", "10", "--no-pdf", "-q"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "'nope'" in line and "single_phase" in line and "cof[theta1=0.3]" in line, line
    assert not out.exists()  # refused before anything was written
    # the default baseline missing from a study is not an error: the report says so instead
    assert report_main([str(run), "--out", str(out), "--baseline", "cof", "--n-boot", "10", "--no-pdf", "-q"]) == 0


# -- item 16: raw HTML in labels, and a zip bomb in aux.npz ----------------------------------------

def _outside_code(md: str) -> str:
    md = re.sub(r"(?ms)^(`{3,}).*?^\1", "", md)
    return re.sub(r"(`+).*?\1", "", md)


def test_raw_html_in_labels_is_escaped_in_the_markdown(tmp_path):
    bad = "<script>alert(1)</script>"
    run = fabricate_run(tmp_path, reps=("single_phase", bad), aux=False, examples=False, seeds=(0,))
    facts = json.loads((run / "run.json").read_text())
    facts["classes"] = ["<img src=x onerror=alert(2)>", "positive", "surprise"]
    facts["study"] = "<b onmouseover=alert(3)>toy</b>"
    (run / "run.json").write_text(json.dumps(facts))
    out = make_report(run, tmp_path / "rep", ReportOptions(n_boot=10, pdf=False))
    md = (out / "report.md").read_text()
    text = _outside_code(md)
    assert not re.search(r"<\s*(script|img|b)\b", text, re.I), [ln for ln in text.splitlines() if "<" in ln][:5]
    assert "&lt;script>alert(1)&lt;/script>" in md  # shown as written, not run


def _zip_bomb(path: Path, member: str, nbytes: int) -> None:
    """An .npz whose one member, a float64 vector of zeros, is ``nbytes`` uncompressed (compresses ~1000x)."""
    header = {"descr": "<f8", "fortran_order": False, "shape": (nbytes // 8,)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open(f"{member}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            chunk = bytes(1 << 24)
            for _ in range(nbytes // len(chunk)):
                f.write(chunk)


@pytest.mark.parametrize("name", ["aux", "examples"])
def test_an_npz_that_expands_past_the_bound_is_left_out_unread(tmp_path, monkeypatch, name):
    from bench.report import load

    run = fabricate_run(tmp_path, aux=False, examples=False, seeds=(0,))
    _zip_bomb(run / f"{name}.npz", "abc/attention", 288 << 20)  # 288 MiB of zeros in a ~300 kB file
    assert (run / f"{name}.npz").stat().st_size < 2 << 20
    loaded = []
    real = np.load
    monkeypatch.setattr(np, "load", lambda *a, **kw: loaded.append(a) or real(*a, **kw))
    data = load.load_run(run)
    assert getattr(data, name) == {}
    note = " ".join(data.notes)
    assert f"{name}.npz" in note and "256 MiB" in note, data.notes
    assert loaded == []  # decided from the zip headers, nothing decompressed
    assert load.MAX_NPZ_BYTES == 256 << 20


# -- item 11: a damaged optuna.journal ------------------------------------------------------------

TINY = [
    "study=smoke",
    "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
    "study.representations=[single_phase]",
    "trainer.epochs=1", "flow.size=32", "tracking=none", "report=false", "progress=false",
    "tuning=optuna", "tuning.n_trials=1", "tuning.inner_folds=2", "~tuning.space.trainer.epochs",
]


def _journal_with_a_study(path: Path) -> bytes:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as tune_unit does
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    optuna.create_study(study_name="other / fold s1", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), 1)
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["garbage_line", "garbage_in_the_middle", "not_an_operation"])
def test_a_damaged_journal_is_refused_before_any_training_naming_it(tmp_path, session_cache, capsys, damage):
    from bench.run import main

    run_dir = tmp_path / "runs" / "smoke"
    run_dir.mkdir(parents=True)
    (run_dir / ".dualflow-run").write_text("{}")  # a run directory of the suite (an earlier study's)
    journal = run_dir / "optuna.journal"
    good = _journal_with_a_study(journal)
    lines = good.splitlines(keepends=True)
    if damage == "garbage_line":
        journal.write_bytes(good + b"\x00\x00garbage\n")
    elif damage == "garbage_in_the_middle":
        journal.write_bytes(b"".join(lines[:2]) + b"{not json\n" + b"".join(lines[2:]))
    else:
        journal.write_bytes(good + b'{"op_code": 99, "worker_id": "w"}\n')
    damaged = journal.read_bytes()
    args = [*TINY, f"paths.runs={tmp_path / 'runs'}", f"paths.cache={session_cache}", f"paths.reports={tmp_path / 'r'}"]
    assert main(args) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(journal) in line and "move it away" in line.lower(), line
    assert journal.read_bytes() == damaged  # refused, not "repaired"
    assert not (run_dir / "units").exists() or not any((run_dir / "units").iterdir())  # nothing trained


def test_a_tuned_study_resumes_over_a_torn_journal(tmp_path, session_cache, capsys):
    from bench.results.tables import read_tables
    from bench.run import main

    run_dir = tmp_path / "runs" / "smoke"
    run_dir.mkdir(parents=True)
    (run_dir / ".dualflow-run").write_text("{}")
    journal = run_dir / "optuna.journal"
    journal.write_bytes(_journal_with_a_study(journal) + b'{"op_code": 5, "worker_id": "w", "tri')
    args = [*TINY, f"paths.runs={tmp_path / 'runs'}", f"paths.cache={session_cache}", f"paths.reports={tmp_path / 'r'}"]
    assert main(args) == 0
    results, _ = read_tables(run_dir)
    assert (results["status"] == "ok").all(), results["error"].tolist()
    printed = capsys.readouterr().out
    assert f"warning: {journal}" in printed and "torn" in printed  # the warning names the file it cut


def test_a_torn_last_line_of_the_journal_is_cut_with_a_warning(tmp_path, caplog):
    """An interrupted append leaves a last line without its newline; optuna would glue its next
    record onto it and lose it ("AssertionError: Should not reach")."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from bench.training.tuning import check_journal

    journal = tmp_path / "optuna.journal"
    good = _journal_with_a_study(journal)
    journal.write_bytes(good + b'{"op_code": 5, "worker_id": "w", "trial_id": 0, "sta')
    with caplog.at_level("WARNING"):
        note = check_journal(journal)
    assert journal.read_bytes() == good
    assert note.startswith(str(journal)) and "torn" in note and note in caplog.text
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="cell / fold s2", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), 1)
    assert len(optuna.get_all_study_summaries(storage)) == 2


# -- item 14: the data summary's exit status ------------------------------------------------------

def test_data_summary_exits_1_when_it_lists_errors(tmp_path, capsys):
    from bench.data.__main__ import USAGE, main
    from tests.data.test_data_cli import CASME2_HEADER, CASME2_ROWS, write_xlsx

    bad = [r[:] for r in CASME2_ROWS]
    bad[0][4] = 10  # offset before onset on row 2
    write_xlsx(tmp_path / "CASME2-coding-20140508.xlsx", "Sheet1", [CASME2_HEADER, *bad])
    assert main(["summary", "dataset=casme2", f"dataset.root={tmp_path}"]) == 1
    out = capsys.readouterr().out
    assert "offset 10 is not after onset 46" in out  # the summary is still printed in full
    assert "exit status" in USAGE and "1 " in USAGE
