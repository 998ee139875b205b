"""Artifacts that move with their run directory.

A local store's experiment keeps its artifacts in ``<run_dir>/mlartifacts``, and MLflow records that
place as an absolute ``file://`` URI (the experiment's ``artifact_location``, each run's
``artifact_uri``), so after ``mv runs/smoke runs/smoke_moved`` a server would list no files. Opening
the moved store through the suite (``python -m bench.tracking backfill RUN_DIR``, or the study's own
tracking at the end of a run) re-roots those URIs onto the run directory where it now is: each
experiment of ``RUN_DIR/mlflow.db`` whose artifact location is another ``.../mlartifacts`` folder
(the run directory's old place; or the original, for a copy, which owns its own copied files) is
pointed at ``RUN_DIR/mlartifacts`` when that exists, with every run's artifact URI under it. A store
outside its run directory, a tracking server, or any other location is left alone.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

FOLDER = "mlartifacts"


def store_path(uri: str) -> Path | None:
    """The sqlite file of a ``sqlite:///...`` URI (None for any other store)."""
    if not str(uri).startswith("sqlite:///"):
        return None
    return Path(str(uri)[len("sqlite:///"):])


def _local_path(location: str) -> Path | None:
    u = urlparse(location)
    if u.scheme == "file":
        return Path(unquote(u.path))
    return Path(location) if not u.scheme and location.startswith("/") else None


def reroot(run_dir: str | Path, uri: str) -> list[tuple[str, str]]:
    """Point the moved artifact locations of ``run_dir``'s own store at ``run_dir/mlartifacts``;
    returns the (old, new) locations changed (empty when nothing had moved)."""
    run_dir = Path(run_dir)
    db = store_path(uri)
    here = (run_dir / FOLDER).resolve()
    if db is None or not db.is_file() or db.resolve().parent != run_dir.resolve() or not here.is_dir():
        return []
    new = here.as_uri()
    changed = []
    con = sqlite3.connect(str(db))
    try:
        with con:  # one transaction: all of an experiment's locations move, or none
            for exp_id, old in con.execute("SELECT experiment_id, artifact_location FROM experiments").fetchall():
                path = _local_path(str(old or ""))
                if path is None or path.name != FOLDER or str(old).rstrip("/") == new:
                    continue
                old = str(old).rstrip("/")
                con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?", (new, exp_id))
                con.execute("UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                            "WHERE experiment_id = ? AND (artifact_uri = ? OR artifact_uri LIKE ? ESCAPE '!')",
                            (new, len(old) + 1, exp_id, old, _like_prefix(old)))
                con.execute("UPDATE tags SET value = ? WHERE key = 'dualflow.run_dir' AND run_uuid IN "
                            "(SELECT run_uuid FROM runs WHERE experiment_id = ?)", (str(run_dir.resolve()), exp_id))
                changed.append((old, new))
    finally:
        con.close()
    return changed


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern matching ``prefix/`` and anything after it (``%`` and ``_`` escaped)."""
    return prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "/%"
