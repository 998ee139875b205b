"""Face crop: one square box found on the onset frame, applied to onset, apex and offset.

Using the SAME box for the three key frames keeps per-frame detector jitter out of the flow (a box
that moves by one pixel between frames shows up as a global one-pixel flow).

Methods (``crop={"method": ...}``):

``haar``    OpenCV's Haar cascade (frontal face, Viola-Jones) on the histogram-equalised onset frame;
            the largest detection wins. Box = the detection's square around its centre, enlarged by
            ``margin`` (fraction of the side, each way), shifted to lie inside the image (and capped
            at the image's short side). No face found -> fallback ``center`` with flag
            ``face_not_found:center`` (logged).
``center``  the central square of side ``center_frac`` x short side.
``none``    the whole frame (for pre-cropped datasets): only resized. A non-square frame is
            resized anisotropically to ``size`` x ``size``; the flow is then computed on the
            resized frames, so it is in resized-image pixels.

The cascade file: opencv-python wheels used to ship ``haarcascade_frontalface_default.xml`` in
``cv2.data.haarcascades``; the opencv 5.0 wheel in this environment ships the ``cv2.data`` module
but NOT the xml files. The cascade is looked up, in order, at ``crop["cascade"]``, the environment
variable ``DUALFLOW_HAAR_CASCADE``, ``cv2.data.haarcascades``, and the usual system folders
(``/usr/share/opencv4/haarcascades``...). When none exists, ``haar`` falls back to ``center`` for
every sample, logs a warning once, and records the flag ``face_detector_unavailable:center`` on
each sample (set ``require_detector: true`` to make that an error instead). The resolved cascade
(its sha256) is part of the flow cache key, so installing the file later invalidates the
center-cropped cache entries.

Stronger detectors: no pip package in this environment ships one usable without downloading
weights (``cv2.FaceDetectorYN`` needs the YuNet ONNX file). ``register_face_detector(name)`` is
the hook: a function ``gray (H, W) uint8 -> list of (x, y, w, h)``, usable as ``crop.method``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

from bench.core.registry import Registry

log = logging.getLogger(__name__)

CASCADE_NAME = "haarcascade_frontalface_default.xml"
CASCADE_ENV = "DUALFLOW_HAAR_CASCADE"
_SYSTEM_DIRS = (
    "/usr/share/opencv4/haarcascades",
    "/usr/share/opencv/haarcascades",
    "/usr/local/share/opencv4/haarcascades",
    "/usr/local/share/opencv/haarcascades",
)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), square

FACE_DETECTORS = Registry("face detector")


def register_face_detector(name: str):
    """Register ``fn(gray uint8 (H, W), **params) -> list[(x, y, w, h)]`` as a crop method."""
    return FACE_DETECTORS.register(name)


def find_cascade(explicit: str | os.PathLike | None = None) -> Path | None:
    """The Haar cascade xml to use, or None when this installation has none (see module doc)."""
    candidates: list[Path] = []
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise FileNotFoundError(f"crop.cascade: Haar cascade file {p} does not exist")
        return p
    if os.environ.get(CASCADE_ENV):
        candidates.append(Path(os.environ[CASCADE_ENV]))
    data = getattr(cv2, "data", None)
    if data is not None and getattr(data, "haarcascades", None):
        candidates.append(Path(data.haarcascades) / CASCADE_NAME)
    candidates += [Path(d) / CASCADE_NAME for d in _SYSTEM_DIRS]
    for c in candidates:
        if c.is_file():
            return c
    return None


_CASCADES: dict[str, cv2.CascadeClassifier] = {}  # per process: loading the xml costs ~50 ms


def _cascade(path: str) -> cv2.CascadeClassifier:
    if path not in _CASCADES:
        try:
            clf = cv2.CascadeClassifier(path)
        except (cv2.error, SystemError) as e:  # a truncated xml raises from inside the constructor
            raise ValueError(f"Haar cascade {path} could not be parsed (truncated or not a cascade "
                             f"xml): {str(e).strip().splitlines()[-1]}") from None
        if clf.empty():
            raise ValueError(f"Haar cascade {path} could not be loaded (not a cascade xml?)")
        _CASCADES[path] = clf
    return _CASCADES[path]


@register_face_detector("haar")
def haar_detect(gray: np.ndarray, *, cascade: str, scale_factor: float = 1.1, min_neighbors: int = 5,
                min_face_frac: float = 0.2) -> list[tuple[int, int, int, int]]:
    """Faces (x, y, w, h) found by the Haar cascade on the equalised frame."""
    m = int(min(gray.shape) * min_face_frac)
    faces = _cascade(cascade).detectMultiScale(
        cv2.equalizeHist(gray), scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(m, m)
    )
    return [tuple(int(t) for t in f) for f in np.asarray(faces).reshape(-1, 4)]


@dataclass(frozen=True)
class CropSpec:
    """Resolved crop parameters (all of them enter the cache key)."""

    method: str = "haar"
    margin: float = 0.1  # enlarge the face square by this fraction of its side, each way
    center_frac: float = 1.0  # ``center`` (and fallback) square side as a fraction of the short side
    require_detector: bool = False  # raise instead of falling back when the detector is unavailable
    detector_params: dict = field(default_factory=dict)  # e.g. scale_factor, min_neighbors, cascade
    cascade_sha256: str = ""  # the resolved cascade file's hash ('' = none / not haar)

    @property
    def effective_method(self) -> str:
        if self.method == "haar" and not self.cascade_sha256:
            return "center"
        return self.method

    def as_dict(self) -> dict:
        d = {
            "method": self.method,
            "margin": self.margin,
            "center_frac": self.center_frac,
            "require_detector": self.require_detector,
            # the cascade's path is left out: its content hash below identifies it (moving the
            # file must not invalidate the flow cache)
            **{f"detector.{k}": v for k, v in sorted(self.detector_params.items()) if k != "cascade"},
        }
        if self.method == "haar":
            d["cascade_sha256"] = self.cascade_sha256
            d["effective_method"] = self.effective_method
        return d


_SPEC_KEYS = {"method", "margin", "center_frac", "require_detector"}


def resolve_crop(crop: Mapping[str, Any] | None) -> CropSpec:
    """Validate a ``crop`` mapping into a CropSpec (finds the cascade for ``haar``)."""
    c = dict(crop or {"method": "none"})
    method = str(c.get("method", "haar"))
    if method not in ("none", "center") and method not in FACE_DETECTORS:
        raise ValueError(
            f"crop.method {method!r} unknown; valid: none, center, {', '.join(FACE_DETECTORS.names())}"
        )
    det = {k: v for k, v in c.items() if k not in _SPEC_KEYS}
    margin, frac = float(c.get("margin", 0.1)), float(c.get("center_frac", 1.0))
    if not 0 <= margin <= 1:
        raise ValueError(f"crop.margin must be in [0, 1], got {margin}")
    if not 0 < frac <= 1:
        raise ValueError(f"crop.center_frac must be in (0, 1], got {frac}")
    require = bool(c.get("require_detector", False))
    sha = ""
    if method == "haar":
        path = find_cascade(det.get("cascade"))
        if path is None:
            if require:
                raise FileNotFoundError(
                    f"crop.method=haar: no {CASCADE_NAME} found (this opencv wheel does not ship it); "
                    f"set crop.cascade or ${CASCADE_ENV} to the file, or use method center/none"
                )
            log.warning(
                "crop.method=haar: no %s in this OpenCV installation (cv2.data.haarcascades is empty); "
                "every sample falls back to a center crop (flag face_detector_unavailable:center). "
                "Set crop.cascade or $%s to enable face detection.", CASCADE_NAME, CASCADE_ENV,
            )
        else:
            _cascade(str(path))  # fail now, naming the file, not later inside a worker
            det["cascade"] = str(path)
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
    elif method in ("none", "center") and det:
        raise ValueError(f"crop.method={method} takes no detector parameters, got {sorted(det)}")
    return CropSpec(method, margin, frac, require, det, sha)


def center_box(shape: tuple[int, int], frac: float = 1.0) -> Box:
    h, w = shape
    s = max(1, int(round(min(h, w) * frac)))
    y0, x0 = (h - s) // 2, (w - s) // 2
    return x0, y0, x0 + s, y0 + s


def face_box(face: tuple[int, int, int, int], shape: tuple[int, int], margin: float) -> Box:
    """Square box around a detection, enlarged by ``margin`` and moved inside the image."""
    h, w = shape
    x, y, fw, fh = face
    cx, cy = x + fw / 2, y + fh / 2
    s = int(round(max(fw, fh) * (1 + 2 * margin)))
    s = max(1, min(s, h, w))
    x0 = int(round(cx - s / 2))
    y0 = int(round(cy - s / 2))
    x0 = min(max(x0, 0), w - s)
    y0 = min(max(y0, 0), h - s)
    return x0, y0, x0 + s, y0 + s


def find_box(onset: np.ndarray, spec: CropSpec) -> tuple[Box | None, list[str]]:
    """The crop box for a sample from its onset frame (None = whole frame) and the flags raised."""
    m = spec.effective_method
    if m == "none":
        return None, []
    if m == "center":
        flags = ["face_detector_unavailable:center"] if spec.method == "haar" else []
        return center_box(onset.shape, spec.center_frac), flags
    faces = FACE_DETECTORS.get(m)(onset, **spec.detector_params)
    if not faces:
        return center_box(onset.shape, spec.center_frac), ["face_not_found:center"]
    biggest = max(faces, key=lambda f: f[2] * f[3])
    return face_box(biggest, onset.shape, spec.margin), []


def crop_resize(gray: np.ndarray, box: Box | None, size: int | None) -> np.ndarray:
    """Cut ``box`` out of a frame and resize it to ``size`` x ``size`` (INTER_AREA when shrinking)."""
    if box is not None:
        x0, y0, x1, y1 = box
        gray = gray[y0:y1, x0:x1]
    if size is None or gray.shape == (size, size):
        return np.ascontiguousarray(gray)
    shrink = gray.shape[0] >= size and gray.shape[1] >= size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(gray, (size, size), interpolation=interp)

