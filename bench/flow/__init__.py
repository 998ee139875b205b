"""Optical flow: backends, face crop, content-hash cache, parallel two-phase extraction.

Entry point: ``compute_flows(table, backend=..., crop=..., size=..., cache_dir=..., workers=...)``
-> ``FlowSet`` with flows (N, 2 phases, 2 (u, v), H, W). See ``bench.flow.pipeline``.
"""

from bench.flow.backends import FlowBackend, create_backend, list_backends, register_backend
from bench.flow.cache import FLOW_CACHE_VERSION, CacheCorrupt
from bench.flow.crop import CropSpec, find_cascade, register_face_detector, resolve_crop
from bench.flow.ops import resize_flow
from bench.flow.pipeline import (
    FlowError,
    FlowSet,
    compute_flows,
    extract_sample,
    is_precomputed,
    load_precomputed_flows,
)
from bench.data.flowfiles import FlowFileSpec, read_flo, read_flow_file, write_flo

__all__ = [
    "FLOW_CACHE_VERSION", "CacheCorrupt", "CropSpec", "FlowBackend", "FlowError", "FlowFileSpec",
    "FlowSet", "compute_flows", "create_backend", "extract_sample", "find_cascade", "is_precomputed",
    "list_backends", "load_precomputed_flows", "read_flo", "read_flow_file", "register_backend",
    "register_face_detector", "resize_flow", "resolve_crop", "write_flo",
]
