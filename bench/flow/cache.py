"""Content-addressed on-disk cache of per-sample flows.

Key = sha256 over the bytes of the three key frames' files, the backend, every backend parameter,
every crop parameter, the output size, the OpenCV version and ``FLOW_CACHE_VERSION`` (bump it when
the pipeline's output changes for the same inputs). Paths do not enter the key: moving a dataset
keeps its cache; editing a frame invalidates it.

Entry = ``<cache_dir>/<key[:2]>/<key>.npz`` holding ``flows`` (2 phases, 2, H, W) float32 and
``meta``, one JSON string with the sha256 of the flows' bytes, the sample's flags and the cache
version (one member instead of three: each npz member read costs a zip lookup on every cache hit). Written atomically (temp file
in the same folder + ``os.replace``) so an interrupted run leaves no half-written entry under the
final name. A read validates everything (zip integrity, keys, version, shape, dtype, checksum,
finiteness); a bad entry raises ``CacheCorrupt`` and the caller recomputes it. A write that fails
(read-only or full cache folder) raises the ``OSError`` itself, with nothing left behind;
``bench.flow.compute_flows`` reports it as a cache problem (path and OS error) and carries on with the
flows in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

FLOW_CACHE_VERSION = 1


class CacheCorrupt(Exception):
    """A cache entry that must not be used (the message says why)."""


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def params_fingerprint(params: Mapping[str, Any]) -> str:
    """Canonical JSON of everything (besides the frames) that defines a flow."""
    return json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))


def sample_key(frame_digests: Iterable[str], fingerprint: str) -> str:
    h = hashlib.sha256()
    h.update(f"v{FLOW_CACHE_VERSION}\n".encode())
    for d in frame_digests:
        h.update(d.encode() + b"\n")
    h.update(fingerprint.encode())
    return h.hexdigest()


def entry_path(cache_dir: str | os.PathLike, key: str) -> Path:
    return Path(cache_dir) / key[:2] / f"{key}.npz"


def _checksum(flows: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(flows).tobytes()).hexdigest()


def save_entry(path: str | os.PathLike, flows: np.ndarray, flags: str = "") -> None:
    """Write one entry atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flows = np.ascontiguousarray(flows, dtype=np.float32)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            # Uncompressed: flow floats barely compress and zlib would dominate a cache hit.
            meta = {"checksum": _checksum(flows), "flags": flags, "version": FLOW_CACHE_VERSION}
            np.savez(f, flows=flows, meta=np.array(json.dumps(meta)))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load_entry(path: str | os.PathLike, shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
    """(flows, flags) of a valid entry; ``CacheCorrupt`` with the reason otherwise.

    ``FileNotFoundError`` passes through (a plain miss), also for a cache path that is not a folder
    (``NotADirectoryError``: nothing can be cached there, which the writer reports).
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"flows", "meta"} - set(z.files)
            if missing:
                raise CacheCorrupt(f"missing arrays {sorted(missing)}")
            meta = json.loads(str(z["meta"]))
            flows = z["flows"]
        version, checksum, flags = int(meta["version"]), str(meta["checksum"]), str(meta["flags"])
    except FileNotFoundError:
        raise
    except NotADirectoryError as e:
        raise FileNotFoundError(e.errno, e.strerror, str(path)) from e
    except CacheCorrupt:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, TypeError) as e:
        raise CacheCorrupt(f"unreadable ({type(e).__name__}: {e})") from e
    if version != FLOW_CACHE_VERSION:
        raise CacheCorrupt(f"cache version {version} != {FLOW_CACHE_VERSION}")
    if flows.dtype != np.float32 or flows.shape != tuple(shape):
        raise CacheCorrupt(f"flows are {flows.dtype}{flows.shape}, expected float32{tuple(shape)}")
    if _checksum(flows) != checksum:
        raise CacheCorrupt("checksum mismatch")
    if not np.isfinite(flows).all():
        raise CacheCorrupt("non-finite values")
    return flows, flags
