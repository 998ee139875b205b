"""Real servers on 127.0.0.1 for the UI tests: a free port, and a command served until it answers."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(cmd: list[str], ready_url: str, log_path: Path, *, what: str, timeout: float = 60, env=None):
    """Start ``cmd`` (output to ``log_path``), wait until ``ready_url`` answers 200, yield the body of
    that answer; the process is stopped on exit. Fails the test, with the log's tail, if the
    process exits or ``timeout`` seconds pass first."""
    log = open(log_path, "w")  # noqa: SIM115 - closed in finally, after the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(ready_url, timeout=5) as r:
                    if r.status == 200:
                        body = r.read()
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.flush()
                pytest.fail(f"{what} did not serve {ready_url}: {Path(log_path).read_text()[-2000:]}")
            time.sleep(0.5)
        yield body
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
