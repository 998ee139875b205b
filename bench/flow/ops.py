"""Small array operations on flow fields shared by the pipeline and the representations."""

from __future__ import annotations

import cv2
import numpy as np


def resize_flow(flow: np.ndarray, size: int | tuple[int, int] | None) -> np.ndarray:
    """Resize flow maps ``(..., 2, H, W)`` to ``size`` (int = square, or (H, W)) with vector scaling.

    A flow is a displacement in pixels of the grid it lives on, so resampling it onto a grid with
    ``new_w / old_w`` times as many columns multiplies u by that factor (v likewise with heights).
    INTER_AREA when shrinking (averages, no aliasing), INTER_LINEAR when enlarging. Returns float32;
    the input is returned unchanged (not copied) when the size already matches.
    """
    flow = np.asarray(flow)
    if flow.ndim < 3 or flow.shape[-3] != 2:
        raise ValueError(f"resize_flow needs (..., 2, H, W), got {flow.shape}")
    if size is None:
        return flow.astype(np.float32, copy=False)
    nh, nw = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    h, w = flow.shape[-2:]
    if (h, w) == (nh, nw):
        return flow.astype(np.float32, copy=False)
    interp = cv2.INTER_AREA if nh <= h and nw <= w else cv2.INTER_LINEAR
    lead = flow.shape[:-3]
    maps = flow.reshape(-1, h, w).astype(np.float32, copy=False)
    # cv2.resize takes (H, W, C) with C <= 4 for every interpolation: resize 4 maps at a time.
    out = np.empty((maps.shape[0], nh, nw), np.float32)
    for s in range(0, maps.shape[0], 4):
        chunk = np.ascontiguousarray(np.moveaxis(maps[s:s + 4], 0, -1))
        r = cv2.resize(chunk, (nw, nh), interpolation=interp)
        out[s:s + 4] = np.moveaxis(r.reshape(nh, nw, -1), -1, 0)
    out = out.reshape(lead + (2, nh, nw))
    out[..., 0, :, :] *= nw / w
    out[..., 1, :, :] *= nh / h
    return out
