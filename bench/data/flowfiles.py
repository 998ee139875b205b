"""Reading flow files: ``.npy`` / ``.npz`` (float), Middlebury ``.flo``, 8-bit / 16-bit images.

``read_flow_file(path, spec)`` returns the (u, v) flow ``(2, H, W)`` float32 of one file;
``FlowFileSpec`` declares how to interpret it (channel order, layout, image normalisation).

Middlebury ``.flo`` (Baker et al., "A Database and Evaluation Methodology for Optical Flow"):
float32 magic 202021.25, int32 width, int32 height, then H*W*2 float32 (u, v interleaved, row
major), all little-endian. Written here with NumPy because it is a 12-byte header and one array;
the libraries that read it (mmcv, flowpy, torchvision's private reader) are heavy or unpackaged.

Images: ``channels`` names the image's channels in RGB order (the order PIL / MATLAB / image viewers
use; OpenCV's BGR is converted), e.g. ``["u", "v", "strain"]``. ``normalisation``:

``fixed``   value = pixel * scale + offset (scalar or one per channel): the exact inverse of how
            the images were written, so u, v come back in pixels up to quantisation (step = scale).
``minmax``  each image was min-max stretched to [0, max]: the true zero and scale are lost, so
            u, v are mapped to pixel / max * 2 - 1 in [-1, 1]; sign and magnitude of the motion
            are NOT recoverable (every representation built from them is approximate).

``read_stored_channels(path, spec)`` returns every declared channel as the file stores it (images:
the pixel values, no normalisation), for the ``stored`` representation.

Bad files are refused with a ``ValueError`` naming the file: an empty (0-byte) or truncated file, a
file that is not the format its extension says, and arrays that are not real numbers (a complex
array is never silently made real: its imaginary part would be lost; booleans, strings and records
are refused too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import zipfile

import cv2
import numpy as np

FLO_MAGIC = np.float32(202021.25)
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
FLOW_EXTS = {".npy", ".npz", ".flo"} | IMAGE_EXTS


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    """Write a (2, H, W) flow as Middlebury ``.flo``."""
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"write_flo needs (2, H, W), got {flow.shape}")
    _, h, w = flow.shape
    with open(path, "wb") as f:
        f.write(FLO_MAGIC.astype("<f4").tobytes())
        f.write(np.array([w, h], "<i4").tobytes())
        f.write(np.moveaxis(flow, 0, -1).astype("<f4").tobytes())


def _require_nonempty(path: Path) -> None:
    """``ValueError`` naming ``path`` when it is a 0-byte file (OSError passes for a missing one)."""
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes); was it copied or written completely?")


def check_real(a: np.ndarray, path: Any) -> np.ndarray:
    """``a`` if it holds real numbers (float / int / uint); ``ValueError`` naming ``path`` otherwise."""
    kind = a.dtype.kind
    if kind == "c":
        raise ValueError(f"{path}: flow array is complex ({a.dtype}); flows must be real-valued "
                         "(store u and v as real channels), and the imaginary part is not dropped silently")
    if kind not in "fiu":
        raise ValueError(f"{path}: flow array has dtype {a.dtype}; expected real numbers (float or int)")
    return a


def load_npy(path: str | Path, mmap_mode: str | None = None) -> np.ndarray:
    """``np.load`` of a ``.npy`` file without pickles; an empty, truncated or non-.npy file is a
    ``ValueError`` naming the file (NumPy itself says only ``EOFError: No data left in file``)."""
    path = Path(path)
    _require_nonempty(path)
    try:
        return np.load(path, allow_pickle=False, mmap_mode=mmap_mode)
    except (EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npy array ({type(e).__name__}: {e})") from None


def read_flo(path: str | Path) -> np.ndarray:
    """Read a Middlebury ``.flo`` file as (2, H, W) float32."""
    _require_nonempty(Path(path))
    raw = Path(path).read_bytes()
    if len(raw) < 12 or np.frombuffer(raw[:4], "<f4")[0] != FLO_MAGIC:
        raise ValueError(f"{path}: not a Middlebury .flo file (bad magic number)")
    w, h = (int(x) for x in np.frombuffer(raw[4:12], "<i4"))
    if w <= 0 or h <= 0 or w * h > 1 << 28:
        raise ValueError(f"{path}: implausible .flo size {w}x{h}")
    n = w * h * 2 * 4
    if len(raw) - 12 != n:
        raise ValueError(f"{path}: .flo data has {len(raw) - 12} bytes, header says {n} ({w}x{h})")
    data = np.frombuffer(raw[12:], "<f4").reshape(h, w, 2)
    return np.ascontiguousarray(np.moveaxis(data, -1, 0), dtype=np.float32)


@dataclass(frozen=True)
class FlowFileSpec:
    """How to read a flow file. ``channels`` must include ``u`` and ``v``."""

    channels: tuple[str, ...] = ("u", "v")
    layout: str = "auto"  # chw | hwc | auto (arrays only)
    npz_key: str | None = None  # array name in a .npz (None: 'flow', else the only array, else u/v)
    normalisation: str | None = None  # images: fixed | minmax
    scale: Any = 1.0  # fixed: value = pixel * scale + offset (scalar or per channel)
    offset: Any = 0.0

    def __post_init__(self):
        if "u" not in self.channels or "v" not in self.channels:
            raise ValueError(f"flow channels must include 'u' and 'v', got {list(self.channels)}")
        if self.layout not in ("auto", "chw", "hwc"):
            raise ValueError(f"layout must be auto|chw|hwc, got {self.layout!r}")
        if self.normalisation not in (None, "fixed", "minmax"):
            raise ValueError(f"normalisation must be fixed|minmax, got {self.normalisation!r}")


def _to_chw(a: np.ndarray, spec: FlowFileSpec, path) -> np.ndarray:
    c = len(spec.channels)
    if a.ndim != 3:
        raise ValueError(f"{path}: flow array must be 3-D ({c} channels), got shape {a.shape}")
    layout = spec.layout
    if layout == "auto":
        if a.shape[0] == c and a.shape[-1] != c:
            layout = "chw"
        elif a.shape[-1] == c and a.shape[0] != c:
            layout = "hwc"
        elif a.shape[0] == c:
            layout = "chw"
        else:
            raise ValueError(f"{path}: shape {a.shape} has no axis of {c} channels {list(spec.channels)}")
    if layout == "hwc":
        a = np.moveaxis(a, -1, 0)
    if a.shape[0] != c:
        raise ValueError(f"{path}: {a.shape[0]} channels, declared {c} {list(spec.channels)}")
    return a


def _uv(a: np.ndarray, spec: FlowFileSpec) -> np.ndarray:
    iu, iv = spec.channels.index("u"), spec.channels.index("v")
    return np.ascontiguousarray(np.stack([a[iu], a[iv]]), dtype=np.float32)


def read_array_flow(a: np.ndarray, spec: FlowFileSpec, path: Any = "<array>") -> np.ndarray:
    return _uv(_to_chw(check_real(np.asarray(a), path), spec, path), spec)


def _read_npz(path: Path, spec: FlowFileSpec) -> np.ndarray:
    _require_nonempty(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not a .npz archive (it holds a single .npy array)")
    with z:
        if spec.npz_key is not None:
            if spec.npz_key not in z.files:
                raise ValueError(f"{path}: no array {spec.npz_key!r} (has {z.files})")
            return read_array_flow(z[spec.npz_key], spec, path)
        if "flow" in z.files:
            return read_array_flow(z["flow"], spec, path)
        if len(z.files) == 1:
            return read_array_flow(z[z.files[0]], spec, path)
        if "u" in z.files and "v" in z.files:
            return np.stack([check_real(z["u"], f"{path}[u]"), check_real(z["v"], f"{path}[v]")]).astype(np.float32)
        raise ValueError(f"{path}: cannot tell which array is the flow (has {z.files}); set npz_key")


def _read_image(path: Path, spec: FlowFileSpec) -> np.ndarray:
    x, maxval = _decode_image(path, spec)
    c = len(spec.channels)
    if spec.normalisation == "fixed":
        scale = np.broadcast_to(np.asarray(spec.scale, np.float64), (c,))[:, None, None]
        offset = np.broadcast_to(np.asarray(spec.offset, np.float64), (c,))[:, None, None]
        x = x * scale + offset
    elif spec.normalisation == "minmax":
        x = x / maxval * 2.0 - 1.0
    else:
        raise ValueError(f"{path}: image flows need a declared normalisation (fixed | minmax)")
    return _uv(x, spec)


def _decode_image(path: Path, spec: FlowFileSpec) -> tuple[np.ndarray, float]:
    """The image's pixels (C, H, W) float64 in the declared (RGB) channel order, and its max value."""
    _require_nonempty(path)
    buf = np.fromfile(path, np.uint8)  # np.fromfile + imdecode: any path (spaces, non-ASCII)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] >= 3:  # OpenCV decodes BGR(A); declared channel order is RGB(A)
        img = np.concatenate([img[..., 2::-1], img[..., 3:]], axis=-1)
    c = len(spec.channels)
    if img.shape[-1] != c:
        raise ValueError(f"{path}: image has {img.shape[-1]} channels, declared {c} {list(spec.channels)}")
    maxval = float(np.iinfo(img.dtype).max) if img.dtype.kind == "u" else 1.0
    return np.moveaxis(img, -1, 0).astype(np.float64), maxval


def _npy_sample(path: Path, index: int | None) -> np.ndarray:
    """A whole ``.npy`` file, or sample ``index`` of a stacked (N, C, H, W) one (memory-mapped)."""
    a = load_npy(path, mmap_mode="r" if index is not None else None)
    if index is not None:
        if a.ndim != 4 or not 0 <= index < a.shape[0]:
            raise ValueError(f"{path}: cannot take sample {index} of an array of shape {a.shape}")
        a = a[index]
    return a


def read_stored_channels(path: str | Path, spec: FlowFileSpec, index: int | None = None
                         ) -> tuple[np.ndarray, float | None]:
    """Every declared channel of one file as it is stored: (C, H, W) float32 in ``spec.channels``
    order, and the image's maximum pixel value (255 for 8-bit; None for arrays and ``.flo``).

    Images give their pixel values unchanged (no normalisation applied: the ``stored``
    representation feeds them as the published networks read them); arrays give their values.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        x, maxval = _decode_image(path, spec)
        return x.astype(np.float32), maxval
    if ext == ".flo":
        return read_flo(path), None
    if ext == ".npy":
        a = _npy_sample(path, index)
    elif ext == ".npz":
        _require_nonempty(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                key = spec.npz_key or ("flow" if "flow" in z.files else (z.files[0] if len(z.files) == 1 else None))
                if key is None and {"u", "v"} <= set(z.files):  # separate u, v arrays: as _read_npz
                    return np.stack([check_real(z["u"], f"{path}[u]"), check_real(z["v"], f"{path}[v]")]
                                    ).astype(np.float32), None
                if key is None or key not in z.files:
                    raise ValueError(f"{path}: cannot tell which array holds the stored channels (has {z.files}); "
                                     "set npz_key")
                a = z[key]
        except (EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None
    else:
        raise ValueError(f"{path}: unsupported flow file type {ext!r} (supported: {sorted(FLOW_EXTS)})")
    a = _to_chw(check_real(np.asarray(a), path), spec, path)
    return np.ascontiguousarray(a, dtype=np.float32), None


def read_flow_file(path: str | Path, spec: FlowFileSpec, index: int | None = None) -> np.ndarray:
    """(u, v) float32 (2, H, W) from one file; ``index`` selects a sample of a stacked (N, ...) .npy."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".npy":
        return read_array_flow(_npy_sample(path, index), spec, path)
    if index is not None:
        raise ValueError(f"{path}: a sample index is only supported for stacked .npy arrays")
    if ext == ".npz":
        return _read_npz(path, spec)
    if ext == ".flo":
        return read_flo(path)
    if ext in IMAGE_EXTS:
        return _read_image(path, spec)
    raise ValueError(f"{path}: unsupported flow file type {ext!r} (supported: {sorted(FLOW_EXTS)})")


def spec_from_mapping(m: Mapping[str, Any] | None) -> FlowFileSpec:
    m = dict(m or {})
    if "channels" in m:
        m["channels"] = tuple(m["channels"])
    for k in ("scale", "offset"):
        if isinstance(m.get(k), Sequence) and not isinstance(m.get(k), str):
            m[k] = tuple(float(x) for x in m[k])
    return FlowFileSpec(**m)
