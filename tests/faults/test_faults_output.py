"""Output directory faults (issue 7): a run directory that cannot be written (read-only, under a
regular file, a full disk) is a clear error naming it *before* any data, flow or training work, and
``python -m bench.run`` exits 2 with one line instead of a traceback.

Root ignores permission bits, so the read-only case is skipped as root; the "parent is a regular
file" case fails for everyone. A full disk is simulated two ways: ENOSPC injected into the probe
write, and, end to end, a real short write under ``RLIMIT_FSIZE`` (the kernel refuses to grow a file
past the limit with EFBIG, exactly where a full disk gives ENOSPC).
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core.config import ConfigError
from bench.run import check_output_dir, main

TINY = ["study=smoke", "tracking=none", "report=false", "progress=false"]


def _overrides(runs: Path, tmp_path: Path) -> list[str]:
    return [*TINY, f"paths.runs={runs}", f"paths.cache={tmp_path / 'cache'}", f"paths.reports={tmp_path / 'rep'}"]


def _nothing_started(tmp_path: Path) -> None:
    # the dataset is generated into the cache and flows cached there: neither may have begun
    assert not (tmp_path / "cache").exists()


def test_run_dir_under_a_regular_file_is_a_clear_error_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    assert main(_overrides(blocker / "runs", tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write to the run directory") and str(blocker / "runs" / "smoke") in err
    assert "paths.runs=" in err  # says how to fix it
    _nothing_started(tmp_path)


def test_run_dir_that_is_a_file_is_a_clear_error(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "smoke").write_text("")
    with pytest.raises(ConfigError, match=r"cannot write to the run directory .*runs/smoke"):
        check_output_dir(runs / "smoke")


def test_read_only_run_dir_is_a_clear_error(tmp_path, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("permission bits are not enforced for this user (root)")
        assert main(_overrides(parent / "runs", tmp_path)) == 2
        err = capsys.readouterr().err
        assert "cannot write to the run directory" in err and "Permission denied" in err
        _nothing_started(tmp_path)
    finally:
        parent.chmod(0o700)


def test_full_disk_on_the_probe_is_a_clear_error(tmp_path, monkeypatch):
    from bench.runtime import rundir

    def full(probe):
        probe.write_bytes(b"\0" * 100)  # a short write, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(probe))

    monkeypatch.setattr(rundir, "_write_probe", full)
    with pytest.raises(ConfigError, match="cannot write to the run directory .*No space left on device"):
        check_output_dir(tmp_path / "runs" / "smoke")
    assert not (tmp_path / "runs" / "smoke" / ".write_probe").exists()  # the short write is not left behind


def _limit_file_size():  # runs in the child between fork and exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))


def test_short_write_end_to_end_exits_2_before_any_work(tmp_path):
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run([sys.executable, "-m", "bench.run", *_overrides(tmp_path / "runs", tmp_path)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                       preexec_fn=_limit_file_size)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "cannot write to the run directory" in r.stderr and "File too large" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs" / "smoke" / ".write_probe").exists()  # the probe does not linger
    _nothing_started(tmp_path)
