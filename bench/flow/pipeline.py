"""``compute_flows``: key frames -> crop -> two-phase optical flow, cached and parallel."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Mapping

import cv2
import numpy as np

from bench.data.table import DataError, SampleTable
from bench.flow.backends import FlowBackend, create_backend
from bench.flow.cache import (
    FLOW_CACHE_VERSION,
    CacheCorrupt,
    entry_path,
    file_sha256,
    load_entry,
    params_fingerprint,
    sample_key,
    save_entry,
)
from bench.flow.crop import CropSpec, crop_resize, find_box, resolve_crop
from bench.flow.ops import resize_flow
from bench.data.flowfiles import FlowFileSpec, content_digest, read_flow_file, read_stored_channels, spec_from_mapping
from bench.runtime.lifeline import die_with, sigint_blocked
from bench.runtime.progress import progress_bar

log = logging.getLogger(__name__)

PRECOMPUTED_COLUMNS = ("flow1_path", "flow2_path")


class FlowError(RuntimeError):
    """Flow extraction failed for one sample (the message names it and its frames)."""


@dataclass
class FlowSet:
    """Two-phase flows of a table, aligned with ``table.df`` rows.

    ``flows``: (N, 2 phases, 2 (u, v), H, W) float32, phase 0 = onset->apex, 1 = apex->offset.
    ``keys``: per-sample cache key (sha256 hex). ``flags``: per-sample ';'-joined fallbacks ('' none).
    ``params``: everything that defines the flows (for the run log). ``stats``: hits, misses,
    corrupt entries recomputed, seconds.
    """

    flows: np.ndarray
    keys: list[str]
    flags: list[str]
    params: dict
    stats: dict = field(default_factory=dict)
    # precomputed tables only: every channel the files store, as stored (the ``stored`` representation)
    stored: "StoredChannels | None" = None

    def __len__(self) -> int:
        return len(self.flows)


@dataclass
class StoredChannels:
    """The channels precomputed flow files store, as they are in the files (no normalisation).

    ``values``: (N, 2 phases, C, H, W) float32 in ``channels`` order (an absent phase is zeros);
    ``max_value``: the images' maximum pixel value (255 for 8-bit PNGs), None for arrays;
    ``phases``: the phases the files provide (1 = onset->apex, 2 = apex->offset).
    """

    values: np.ndarray
    channels: tuple[str, ...]
    max_value: float | None
    phases: tuple[int, ...]


def sample_label(table: SampleTable, i: int) -> str:
    r = table.df.iloc[i]
    return f"{r.get('subject', '?')}/{r.get('clip', '?')} (row {i})"


def _label(cols: dict, i: int) -> str:
    s = cols["subject"][i] if "subject" in cols else "?"
    c = cols["clip"][i] if "clip" in cols else "?"
    return f"{s}/{c} (row {i})"


def is_precomputed(table: SampleTable) -> bool:
    return all(c in table.df.columns for c in PRECOMPUTED_COLUMNS)


# ----------------------------------------------------------------------------------------------
# per-sample extraction (runs in the caller's process or in a worker)


def _read_gray(path: str) -> np.ndarray:
    # np.fromfile + imdecode instead of imread: robust to any path (spaces, non-ASCII on Windows).
    buf = np.fromfile(path, np.uint8)
    if buf.size == 0:  # imdecode would fail an OpenCV assertion (!buf.empty()) that names no file
        raise ValueError(f"frame {path} is an empty file (0 bytes)")
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    except cv2.error:
        img = None
    if img is None:
        raise ValueError(f"cannot decode image {path} ({buf.size} bytes: not an image, or truncated)")
    return img


def extract_sample(paths: tuple[str, str, str], backend: FlowBackend, spec: CropSpec,
                   size: int) -> tuple[np.ndarray, str]:
    """(flows (2, 2, size, size) float32, flags) of one sample's onset, apex, offset frames."""
    onset, apex, offset = (_read_gray(p) for p in paths)
    if not (onset.shape == apex.shape == offset.shape):
        raise ValueError(f"key frames differ in size: {onset.shape}, {apex.shape}, {offset.shape}")
    box, flags = find_box(onset, spec)
    a, b, c = (crop_resize(f, box, size) for f in (onset, apex, offset))
    flows = np.stack([backend(a, b), backend(b, c)])
    if not np.isfinite(flows).all():
        raise ValueError("the flow backend returned non-finite values")
    return flows, ";".join(flags)


_WORKER: dict[str, Any] = {}


def _init_worker(backend: FlowBackend, spec: CropSpec, size: int, runner_pid: int | None = None) -> None:
    cv2.setNumThreads(1)  # one process per core: OpenCV's own threads would oversubscribe them
    _WORKER.update(backend=backend, spec=spec, size=size)
    if runner_pid:
        # A pool worker ends with the process that asked for the flows, not with its parent: a
        # forkserver child's parent is the forkserver, which itself waits for its children to go.
        die_with(runner_pid)


def _task(i: int, label: str, paths: tuple[str, str, str], cache_file: str | None):
    try:
        flows, flags = extract_sample(paths, _WORKER["backend"], _WORKER["spec"], _WORKER["size"])
    except Exception as e:  # name the sample: a bare cv2 error says nothing about which clip
        raise FlowError(f"flow extraction failed for sample {label}, frames {list(paths)}: "
                        f"{type(e).__name__}: {e}") from None
    if cache_file:
        try:
            save_entry(cache_file, flows, flags)
        except OSError as e:  # the flow itself is fine: keep it, say what failed (compute_flows counts them)
            log.warning("flow cache: cannot write %s for sample %s (%s); continuing without caching it "
                        "(the flow is kept in memory)", cache_file, label, _os_error(e))
    return i, flows, flags


def _os_error(e: OSError) -> str:
    return f"{type(e).__name__}: [Errno {e.errno}] {e.strerror}" if e.strerror else f"{type(e).__name__}: {e}"


def _cache_unwritable(cache_dir: str | os.PathLike) -> str | None:
    """Why flows cannot be cached under ``cache_dir`` (an OS error: read-only, full, not a folder,
    no permission), or None; probed once, with a small file, before any flow is computed."""
    try:
        os.makedirs(cache_dir, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=cache_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"\0" * 4096)
                f.flush()
                os.fsync(f.fileno())
        finally:
            os.unlink(probe)
    except OSError as e:
        return _os_error(e)
    return None


def _pool_context(start_method: str | None):
    # Default forkserver (POSIX): workers fork from a clean server process instead of this one,
    # which may hold torch/OpenMP thread pools (fork + live threads can deadlock); spawn elsewhere.
    # Both re-import the caller's __main__, so a calling script needs an ``if __name__ ==
    # "__main__":`` guard; ``start_method="fork"`` avoids that where fork is safe.
    # Lifetime: every worker ends with the calling process (``_init_worker`` -> bench.runtime.lifeline), and
    # the forkserver exits by itself once the caller and all its children have closed its pipe.
    if start_method is None:
        start_method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(start_method)
    if start_method == "forkserver":
        ctx.set_forkserver_preload(["bench.flow.pipeline"])
    return ctx


# ----------------------------------------------------------------------------------------------


@dataclass
class _FlowJob:
    """What defines the flows to compute: backend, crop, size, their fingerprint, and the workers."""

    backend: str
    be: FlowBackend
    spec: CropSpec
    size: int
    params: dict
    fingerprint: str
    workers: int


_Todo = tuple[int, str, tuple[str, str, str], "str | None"]  # (row, label, key frame paths, cache file)


@dataclass
class _Batch:
    """Flows being assembled for a table: per-sample results, stats and the samples still to compute."""

    flows: np.ndarray
    keys: list[str]
    flags: list[str]
    stats: dict[str, Any]
    cols: dict[str, list]
    todo: list[_Todo]


def compute_flows(
    table: SampleTable,
    *,
    backend: str = "tvl1",
    backend_params: Mapping[str, Any] | None = None,
    crop: Mapping[str, Any] | None = None,
    size: int = 112,
    cache_dir: str | os.PathLike | None = None,
    workers: int = 1,
    progress: bool = True,
    start_method: str | None = None,
) -> FlowSet:
    """Two-phase flows of every row of ``table`` (see ``FlowSet``).

    ``crop``: see ``bench.flow.crop`` (default: ``{"method": "none"}``, resize only); method ``auto``
    means ``none`` when ``table.meta["precropped"]`` is true, else ``haar``.
    ``cache_dir``: None disables the cache. A cache that cannot be written (read-only, full, not a
    folder) is a warning naming the cache path and the OS error, not a failure: the flows are computed
    and kept in memory as without a cache (``stats["cache_error"]``, ``stats["uncached"]``), and the
    next run computes them again. ``workers``: processes (1 = in this process).
    Extraction always runs OpenCV single-threaded (``cv2.setNumThreads(1)``), in workers and in
    this process alike, so results are bit-identical whatever ``workers`` is; scale with workers.
    ``start_method``: multiprocessing start method for workers>1 (default forkserver on POSIX,
    spawn elsewhere). A table from the ``precomputed`` dataset is loaded from its flow files instead.
    """
    if is_precomputed(table):
        return load_precomputed_flows(table, size=size, progress=progress)
    if backend == "precomputed":
        raise DataError(f"{table.source or table.name}: flow=precomputed reads flow files, but dataset "
                        f"{table.name!r} has frames, not flow files; choose a flow backend (tvl1, farneback, dis)")
    t0 = time.perf_counter()
    job = _flow_job(table, backend, backend_params, crop, size, workers)
    batch = _look_up_cache(table, job, cache_dir)
    batch.stats["seconds_lookup"] = time.perf_counter() - t0
    if batch.todo and cache_dir is not None:
        batch.todo = _without_unwritable_cache(batch.todo, cache_dir, batch.stats)
    if batch.todo:
        _compute_missing(batch, job, progress, start_method)
    _report_fallbacks(batch)
    _report_uncached(batch, cache_dir)
    stats = batch.stats
    stats["seconds"] = time.perf_counter() - t0
    n_fallback = sum(bool(f) for f in batch.flags)
    log.info("flows (%s, %dx%d): %d samples, %d cached, %d computed (%d corrupt cache entries), "
             "%d with fallbacks, %.2fs", backend, job.size, job.size, stats["n"], stats["hits"], stats["misses"],
             len(stats["corrupt"]), n_fallback, stats["seconds"])
    return FlowSet(batch.flows, batch.keys, batch.flags, job.params, stats)


def _flow_job(table: SampleTable, backend: str, backend_params: Mapping[str, Any] | None,
              crop: Mapping[str, Any] | None, size: int, workers: int) -> _FlowJob:
    """Check the size, create the backend, resolve the crop and fingerprint the parameters."""
    size = int(size)
    if size < 8:
        raise ValueError(f"flow size must be >= 8 pixels, got {size}")
    workers = max(1, int(workers))
    be = create_backend(backend, **dict(backend_params or {}))
    crop = dict(crop or {"method": "none"})
    if crop.get("method") == "auto":
        # Datasets that ship face crops (the synthetic generator, official cropped frames) say so in
        # table.meta; everything else gets the face detector.
        crop["method"] = "none" if table.meta.get("precropped") else "haar"
    spec = resolve_crop(crop)
    params = {
        "backend": backend,
        "backend_params": dict(be.params),
        "crop": spec.as_dict(),
        "size": size,
        "opencv": cv2.__version__,
        "cache_version": FLOW_CACHE_VERSION,
    }
    fingerprint = params_fingerprint(params)
    if "cascade" in spec.detector_params:  # for the run log only (the key holds its content hash)
        params["crop"] = {**params["crop"], "cascade": spec.detector_params["cascade"]}
    return _FlowJob(backend, be, spec, size, params, fingerprint, workers)


def _look_up_cache(table: SampleTable, job: _FlowJob, cache_dir: str | os.PathLike | None) -> _Batch:
    """Key every sample by its key frames; fill cache hits and list the samples to compute."""
    n = len(table)
    if n and "frame_template" not in table.df.columns:
        raise DataError(f"{table.source or table.name}: table has no frame_template column (no frames)")
    shape = (2, 2, job.size, job.size)
    df = table.df
    # Plain lists, not per-row pandas access: a cache hit must cost ~ hashing three files.
    cols = {c: df[c].tolist() for c in ("subject", "clip", "onset", "apex", "offset", "frame_template")
            if c in df.columns}
    batch = _Batch(flows=np.zeros((n,) + shape, np.float32), keys=[""] * n, flags=[""] * n,
                   stats={"n": n, "hits": 0, "misses": 0, "corrupt": [], "workers": job.workers},
                   cols=cols, todo=[])
    for i in range(n):
        label = _label(cols, i)
        paths = _key_frame_paths(table, cols, i, label)
        batch.keys[i] = key = sample_key(_frame_digests(table, paths, label), job.fingerprint)
        cache_file = str(entry_path(cache_dir, key)) if cache_dir is not None else None
        if cache_file is not None and _load_cached(batch, i, label, cache_file, shape):
            continue
        batch.todo.append((i, label, paths, cache_file))
    batch.stats["misses"] = len(batch.todo)
    return batch


def _key_frame_paths(table: SampleTable, cols: dict[str, list], i: int, label: str) -> tuple[str, str, str]:
    """The onset, apex and offset frame paths of row ``i`` from its frame template."""
    try:
        tpl = str(cols["frame_template"][i])
        return tuple(tpl.format(frame=int(cols[c][i])) for c in ("onset", "apex", "offset"))  # type: ignore[return-value]
    except (KeyError, ValueError, IndexError, TypeError) as e:
        raise DataError(f"{table.source or table.name}: sample {label}: bad frame template or "
                        f"frame numbers ({type(e).__name__}: {e})") from e


def _frame_digests(table: SampleTable, paths: tuple[str, str, str], label: str) -> list[str]:
    """The sha256 of each key frame file (a file that cannot be read is a ``DataError``)."""
    try:
        return [file_sha256(p) for p in paths]
    except OSError as e:
        raise DataError(f"{table.source or table.name}: sample {label}: cannot read key frame "
                        f"{e.filename}: {e.strerror}") from e


def _load_cached(batch: _Batch, i: int, label: str, cache_file: str, shape: tuple[int, ...]) -> bool:
    """Fill row ``i`` from its cache entry; False when absent or corrupt (then it is recomputed)."""
    try:
        batch.flows[i], batch.flags[i] = load_entry(cache_file, shape)
        batch.stats["hits"] += 1
        return True
    except FileNotFoundError:
        pass
    except CacheCorrupt as e:
        log.warning("flow cache entry %s for sample %s is corrupt (%s); recomputing",
                    cache_file, label, e)
        batch.stats["corrupt"].append(cache_file)
    return False


def _without_unwritable_cache(todo: list[_Todo], cache_dir: str | os.PathLike,
                              stats: dict[str, Any]) -> list[_Todo]:
    """The samples to compute, without cache files when the cache cannot be written (warned once)."""
    why = _cache_unwritable(cache_dir)
    if why is None:
        return todo
    log.warning("flow cache %s cannot be written (%s); continuing without caching: the %d flows to "
                "compute are kept in memory and will be computed again by the next run",
                cache_dir, why, len(todo))
    stats["cache_error"] = f"{cache_dir}: {why}"
    return [(i, label, paths, None) for i, label, paths, _ in todo]


def _compute_missing(batch: _Batch, job: _FlowJob, progress: bool, start_method: str | None) -> None:
    """Compute the flows not found in the cache, in this process or in a pool of workers."""
    bar = progress_bar(total=len(batch.todo), desc=f"flow {job.backend}", unit="sample", enabled=progress)
    if job.workers == 1 or len(batch.todo) == 1:
        _compute_here(batch, job, bar)
    else:
        _compute_in_pool(batch, job, bar, start_method)
    bar.close()


def _compute_here(batch: _Batch, job: _FlowJob, bar: Any) -> None:
    """Compute the missing flows in this process (OpenCV single-threaded meanwhile, as in workers)."""
    prev_threads = cv2.getNumThreads()
    _init_worker(job.be, job.spec, job.size)
    try:
        for t in batch.todo:
            i, batch.flows[i], batch.flags[i] = _task(*t)
            bar.update()
    finally:
        cv2.setNumThreads(prev_threads)


def _compute_in_pool(batch: _Batch, job: _FlowJob, bar: Any, start_method: str | None) -> None:
    """Compute the missing flows in worker processes; a dead worker is a ``FlowError``."""
    todo = batch.todo
    with ProcessPoolExecutor(
        max_workers=min(job.workers, len(todo)), mp_context=_pool_context(start_method),
        initializer=_init_worker, initargs=(job.be, job.spec, job.size, os.getpid()),
    ) as pool:
        with sigint_blocked():  # workers (and the forkserver) start here: see bench.runtime.lifeline
            futures = [pool.submit(_task, *t) for t in todo]
        try:
            for fut in as_completed(futures):
                i, batch.flows[i], batch.flags[i] = fut.result()
                bar.update()
        except BrokenProcessPool as e:
            raise FlowError(
                "a flow worker process died (out of memory, or a script without an "
                "`if __name__ == '__main__':` guard under the forkserver/spawn start "
                f"method): {e}") from e
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _report_fallbacks(batch: _Batch) -> None:
    """Warn once per kind of crop fallback and count them in the stats."""
    by_flag: dict[str, list[int]] = {}
    for i, f in enumerate(batch.flags):
        for one in filter(None, f.split(";")):
            by_flag.setdefault(one, []).append(i)
    for one, rows in by_flag.items():  # one line per kind of fallback, not one per sample
        first = ", ".join(_label(batch.cols, i) for i in rows[:3])
        log.warning("flow fallback %s on %d of %d samples (e.g. %s)", one, len(rows), batch.stats["n"], first)
    batch.stats["fallbacks"] = {k: len(v) for k, v in by_flag.items()}


def _report_uncached(batch: _Batch, cache_dir: str | os.PathLike | None) -> None:
    """Warn about computed flows whose cache entry could not be written, and count them."""
    todo = batch.todo
    uncached = [t[3] for t in todo if t[3] and not os.path.exists(t[3])]
    if uncached:  # writes that failed mid-run (e.g. the disk filled up); each was warned about once
        log.warning("flow cache: %d of %d computed flows could not be written under %s (first: %s); "
                    "they were used from memory and will be computed again by the next run",
                    len(uncached), len(todo), cache_dir, uncached[0])
    batch.stats["uncached"] = len(uncached) + (len(todo) if "cache_error" in batch.stats else 0)


# ----------------------------------------------------------------------------------------------
# precomputed flows (tables from bench.data.precomputed)


def load_precomputed_flows(table: SampleTable, *, size: int | None = 112, progress: bool = True) -> FlowSet:
    """Read a precomputed table's flow files (resized to ``size`` with vector scaling).

    Columns: ``flow1_path`` / ``flow2_path`` (absolute; '' = phase absent -> zeros and flag
    ``phase2_missing:zeros``) and optional ``flow1_index`` / ``flow2_index`` (sample index into a
    stacked (N, C, H, W) .npy; -1 = a per-sample file). ``table.meta["flow_file"]`` is the
    ``FlowFileSpec`` mapping. A non-finite value is an error naming the sample and the file.
    """
    t0 = time.perf_counter()
    spec = spec_from_mapping(table.meta.get("flow_file"))
    n = len(table.df)
    out: list[np.ndarray] = []
    keys, flags = [], []
    stored: list[np.ndarray] = []
    stored_max: set = set()
    for i in progress_bar(range(n), desc="flow (precomputed)", unit="sample", enabled=progress):
        label = sample_label(table, i)
        s = _read_sample_phases(table, i, label, spec, stored_max)
        out.append(resize_flow(_phase_flows(s.phases, label), size))
        keys.append(s.key)
        stored.append(_stored_sample(s.kept, label, size))
        flags.append(";".join(s.flags))
    flows = _stack_precomputed(table, out, size)
    st = _stored_channels(table, stored, stored_max, spec)
    params = {
        "backend": "precomputed",
        "source": table.source,
        "flow_file": dict(table.meta.get("flow_file") or {}),
        "size": size,
        "exactness": table.meta.get("exactness", {}),
    }
    stats = {"n": n, "hits": 0, "misses": 0, "corrupt": [], "loaded": n,
             "seconds": time.perf_counter() - t0}
    return FlowSet(flows, keys, flags, params, stats, stored=st)


@dataclass
class _SamplePhases:
    """One precomputed sample as read: per-phase flows (None = absent), stored channels, flags, key."""

    phases: list
    kept: list[tuple[int, np.ndarray]]
    flags: list[str]
    key: str


def _read_sample_phases(table: SampleTable, i: int, label: str, spec: FlowFileSpec,
                        stored_max: set) -> _SamplePhases:
    """Read both phases' files of row ``i`` (flows and stored channels) and hash their content into its key."""
    df = table.df
    phases, f_i, kept = [], [], []
    h = hashlib.sha256()
    for ph in (1, 2):
        path = str(df[f"flow{ph}_path"].iat[i] or "")
        idx_col = f"flow{ph}_index"
        idx = int(df[idx_col].iat[i]) if idx_col in df.columns else -1
        if not path:
            phases.append(None)
            f_i.append(f"phase{ph}_missing:zeros")
            h.update(f"phase{ph}:absent;".encode())
            continue
        try:
            fl = read_flow_file(path, spec, None if idx < 0 else idx)
            st, mx = read_stored_channels(path, spec, None if idx < 0 else idx)
            # what the files hold, every stored channel included, and not where they are
            h.update(f"phase{ph}:".encode() + content_digest(path, None if idx < 0 else idx))
        except (OSError, ValueError) as e:
            raise DataError(f"sample {label}: cannot read phase-{ph} flow {path}: {e}") from e
        kept.append((ph, st))
        stored_max.add(mx)
        if not np.isfinite(fl).all():
            bad = int((~np.isfinite(fl)).sum())
            raise DataError(f"sample {label}: phase-{ph} flow {path} has {bad} NaN/inf values")
        phases.append(fl)
    return _SamplePhases(phases, kept, f_i, h.hexdigest())


def _phase_flows(phases: list, label: str) -> np.ndarray:
    """The two phases stacked, an absent one as zeros; they must agree in size."""
    ref = next((p for p in phases if p is not None), None)
    if ref is None:
        raise DataError(f"sample {label}: no flow file for either phase")
    phases = [np.zeros_like(ref) if p is None else p for p in phases]
    if phases[0].shape != phases[1].shape:
        raise DataError(f"sample {label}: phase flows differ in size {phases[0].shape} vs {phases[1].shape}")
    return np.stack(phases)


def _stored_sample(kept: list[tuple[int, np.ndarray]], label: str, size: int | None) -> np.ndarray:
    """(2, C, H, W) stored channels of one sample (absent phase zeros), resized as pixel intensities."""
    st_i = np.zeros((2,) + kept[0][1].shape, np.float32)
    for ph, st in kept:
        if st.shape != st_i.shape[1:]:
            raise DataError(f"sample {label}: phase files differ in size {kept[0][1].shape} vs {st.shape}")
        st_i[ph - 1] = st
    if size is not None and st_i.shape[-2:] != (size, size):  # pixel intensities: no vector scaling
        interp = cv2.INTER_AREA if st_i.shape[-1] > size else cv2.INTER_LINEAR
        st_i = np.stack([[cv2.resize(c, (size, size), interpolation=interp) for c in p] for p in st_i])
    return st_i


def _stack_precomputed(table: SampleTable, out: list[np.ndarray], size: int | None) -> np.ndarray:
    """(N, 2, 2, H, W) float32 of the loaded flows; they must share one size."""
    if out:
        shapes = {o.shape for o in out}
        if len(shapes) > 1:
            raise DataError(f"{table.source}: precomputed flows differ in size {sorted(shapes)}; set a size")
        return np.stack(out).astype(np.float32, copy=False)
    s = size or 1
    return np.zeros((0, 2, 2, s, s), np.float32)


def _stored_channels(table: SampleTable, stored: list[np.ndarray], stored_max: set,
                     spec: FlowFileSpec) -> StoredChannels | None:
    """The samples' stored channels together, or None when there are none or they differ in size."""
    n = len(stored)
    kept_channels = ("u", "v") if n and stored[0].shape[1] == 2 and len(spec.channels) != 2 else tuple(spec.channels)
    if not (n and len({x.shape for x in stored}) == 1):
        return None
    df = table.df
    present = tuple(ph for ph in (1, 2) if str(df[f"flow{ph}_path"].iat[0] or ""))
    return StoredChannels(np.stack(stored), kept_channels,
                          next(iter(stored_max)) if len(stored_max) == 1 else None, present)


__all__ = ["FlowError", "FlowSet", "StoredChannels", "compute_flows", "extract_sample", "is_precomputed",
           "load_precomputed_flows"]
