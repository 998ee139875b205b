"""Shared fixtures: one cache directory per test session (synthetic data and flows are made once)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("dualflow-cache")
    return path


@pytest.fixture
def run_overrides(tmp_path, session_cache):
    """Overrides that keep a study's files inside the test's tmp dir (and the cache per session)."""
    return [f"paths.runs={tmp_path / 'runs'}", f"paths.reports={tmp_path / 'reports'}",
            f"paths.cache={session_cache}"]
