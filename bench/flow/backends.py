"""Dense optical-flow backends: TV-L1, Farnebäck, DIS (all OpenCV).

Every backend takes two 8-bit grayscale frames of the same shape and returns the forward flow as a
float32 array ``(2, H, W)`` = (u, v) in pixels, u along x (right positive), v along y (down
positive), in OpenCV's convention ``prev(y, x) ≈ next(y + v, x + u)``.

A backend is a ``FlowBackend`` subclass registered under its ``name`` (``@register_backend``); its
config file is ``bench/conf/flow/<name>.yaml``, whose file name is the ``backend`` key.
``create_backend(name, **params)``, the one way a backend is built, validates the parameters
(unknown names are an error listing the valid ones) and ``backend.params`` is the complete resolved
parameter set, which the cache key and the run log use. (``flow=precomputed`` is no backend: flows
read from a precomputed dataset's files, ``bench.flow.pipeline.load_precomputed_flows``.)
"""

from __future__ import annotations

from typing import Any, Mapping

import cv2
import numpy as np

from bench.core.registry import Registry

FLOW_BACKENDS = Registry("flow backend")
register_backend = FLOW_BACKENDS.register


class FlowBackend:
    """Base: subclasses define ``name``, ``defaults`` and ``_flow``."""

    name: str = ""
    defaults: Mapping[str, Any] = {}

    def __init__(self, **params: Any):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for flow backend {self.name!r}; "
                f"valid: {sorted(self.defaults)}"
            )
        resolved = dict(self.defaults)
        resolved.update(params)
        self.params = self._validate(resolved)
        self._impl = None  # OpenCV object, built lazily (it is not picklable)

    def _validate(self, p: dict) -> dict:
        return p

    def __getstate__(self):  # ship only the params to worker processes
        return {"params": self.params}

    def __setstate__(self, state):
        self.params = state["params"]
        self._impl = None

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        if prev.shape != nxt.shape or prev.ndim != 2:
            raise ValueError(f"flow needs two 2-D frames of one shape, got {prev.shape} and {nxt.shape}")
        if prev.dtype != np.uint8 or nxt.dtype != np.uint8:
            raise ValueError(f"flow needs uint8 grayscale frames, got {prev.dtype} and {nxt.dtype}")
        flow = self._flow(prev, nxt)  # (H, W, 2) float32
        return np.ascontiguousarray(np.moveaxis(flow, -1, 0), dtype=np.float32)

    def _flow(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@register_backend
class TVL1Backend(FlowBackend):
    """Dual TV-L1 (Zach et al. 2007; Sánchez et al. 2013 IPOL), the MER field's standard.

    Defaults are OpenCV's own (``cv2.optflow.DualTVL1OpticalFlow_create()``), made explicit so the
    run log and cache key record them: tau=0.25, lambda=0.15, theta=0.3, nscales=5, warps=5,
    epsilon=0.01, innerIterations=30, outerIterations=10, scaleStep=0.8, gamma=0.0,
    medianFiltering=5, useInitialFlow=False (with it, the iteration starts from a zero flow, since
    a pair has no previous estimate).
    """

    name = "tvl1"
    defaults = {
        "tau": 0.25,
        "lambda": 0.15,
        "theta": 0.3,
        "nscales": 5,
        "warps": 5,
        "epsilon": 0.01,
        "innerIterations": 30,
        "outerIterations": 10,
        "scaleStep": 0.8,
        "gamma": 0.0,
        "medianFiltering": 5,
        "useInitialFlow": False,
    }

    def _validate(self, p):
        for k in ("tau", "lambda", "theta", "epsilon", "scaleStep", "gamma"):
            p[k] = float(p[k])
        for k in ("nscales", "warps", "innerIterations", "outerIterations", "medianFiltering"):
            p[k] = int(p[k])
        p["useInitialFlow"] = bool(p["useInitialFlow"])
        if not 0 < p["scaleStep"] < 1:
            raise ValueError(f"tvl1 scaleStep must be in (0, 1), got {p['scaleStep']}")
        if p["nscales"] < 1 or p["warps"] < 1:
            raise ValueError("tvl1 nscales and warps must be >= 1")
        return p

    def _flow(self, prev, nxt):
        if self._impl is None:
            p = self.params
            # Positional: the binding's keyword for innerIterations is misspelt ("innnerIterations").
            self._impl = cv2.optflow.DualTVL1OpticalFlow_create(
                p["tau"], p["lambda"], p["theta"], p["nscales"], p["warps"], p["epsilon"],
                p["innerIterations"], p["outerIterations"], p["scaleStep"], p["gamma"],
                p["medianFiltering"], p["useInitialFlow"],
            )
        init = np.zeros(prev.shape + (2,), np.float32) if self.params["useInitialFlow"] else None
        return self._impl.calc(prev, nxt, init)


@register_backend
class FarnebackBackend(FlowBackend):
    """Farnebäck polynomial expansion (``cv2.calcOpticalFlowFarneback``).

    Defaults are those of OpenCV's ``cv2.FarnebackOpticalFlow_create()`` (the function itself has
    none): pyr_scale=0.5, levels=5, winsize=13, iterations=10, poly_n=5, poly_sigma=1.1, flags=0
    (``cv2.OPTFLOW_FARNEBACK_GAUSSIAN`` = 256 selects a Gaussian window).
    """

    name = "farneback"
    defaults = {
        "pyr_scale": 0.5,
        "levels": 5,
        "winsize": 13,
        "iterations": 10,
        "poly_n": 5,
        "poly_sigma": 1.1,
        "flags": 0,
    }

    def _validate(self, p):
        p["pyr_scale"], p["poly_sigma"] = float(p["pyr_scale"]), float(p["poly_sigma"])
        for k in ("levels", "winsize", "iterations", "poly_n", "flags"):
            p[k] = int(p[k])
        if p["flags"] & cv2.OPTFLOW_USE_INITIAL_FLOW:
            raise ValueError("farneback flags: OPTFLOW_USE_INITIAL_FLOW needs a previous flow; not supported")
        return p

    def _flow(self, prev, nxt):
        p = self.params
        return cv2.calcOpticalFlowFarneback(
            prev, nxt, None, p["pyr_scale"], p["levels"], p["winsize"], p["iterations"],
            p["poly_n"], p["poly_sigma"], p["flags"],
        )


_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
# Optional overrides applied after the preset (None = keep the preset's value).
_DIS_SETTERS = {
    "finest_scale": ("setFinestScale", int),
    "patch_size": ("setPatchSize", int),
    "patch_stride": ("setPatchStride", int),
    "gradient_descent_iterations": ("setGradientDescentIterations", int),
    "variational_refinement_iterations": ("setVariationalRefinementIterations", int),
    "variational_refinement_alpha": ("setVariationalRefinementAlpha", float),
    "variational_refinement_delta": ("setVariationalRefinementDelta", float),
    "variational_refinement_gamma": ("setVariationalRefinementGamma", float),
    "use_mean_normalization": ("setUseMeanNormalization", bool),
    "use_spatial_propagation": ("setUseSpatialPropagation", bool),
}


@register_backend
class DISBackend(FlowBackend):
    """Dense Inverse Search (Kroeger et al. 2016), ``cv2.DISOpticalFlow_create(preset)``.

    ``preset`` is ``ultrafast`` | ``fast`` | ``medium`` (default ``medium``, the most accurate);
    the other keys override single preset settings and default to None (= the preset's value).
    """

    name = "dis"
    defaults = {"preset": "medium", **{k: None for k in _DIS_SETTERS}}

    def _validate(self, p):
        if p["preset"] not in _DIS_PRESETS:
            raise ValueError(f"dis preset must be one of {sorted(_DIS_PRESETS)}, got {p['preset']!r}")
        for k, (_, typ) in _DIS_SETTERS.items():
            if p[k] is not None:
                p[k] = typ(p[k])
        return p

    def _flow(self, prev, nxt):
        if self._impl is None:
            self._impl = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.params["preset"]])
            for k, (setter, _) in _DIS_SETTERS.items():
                if self.params[k] is not None:
                    getattr(self._impl, setter)(self.params[k])
        return self._impl.calc(prev, nxt, None)


def create_backend(name: str, **params: Any) -> FlowBackend:
    return FLOW_BACKENDS.get(name)(**params)


def list_backends() -> list[str]:
    return FLOW_BACKENDS.names()
