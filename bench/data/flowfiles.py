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
file that is not the format its extension says, a path that is no regular file (a directory, a
symlink loop, a device such as ``/dev/zero``), arrays that are not real numbers (a complex array is
never silently made real: its imaginary part would be lost; booleans, strings and records are refused
too), and a sample larger than ``MAX_FLOW_PIXELS`` (H x W; read from the file's header, PNG IHDR,
``.npy`` / ``.npz`` member header or ``.flo`` header, before anything is decoded: a few-KB PNG can
claim 15000 x 15000 pixels, 5 GB once decoded to float64).

``content_digest(path, index)`` is what a precomputed sample's key holds: the sha256 of the file's
bytes (every channel any representation can read, never its location), or of the one stacked sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import hashlib
import struct
import warnings
import zipfile

import cv2
import numpy as np

from bench.data.paths import file_problem

FLO_MAGIC = np.float32(202021.25)
# The largest sample read, in pixels (H x W): 4096 x 4096, ~170 times a 320 x 240 face crop; one
# 3-channel sample at the cap is 400 MB as float64. Checked on headers before decoding.
MAX_FLOW_PIXELS = 4096 * 4096
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
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
    """``ValueError`` naming ``path`` when it is no regular file (a directory, a symlink loop, a device:
    ``/dev/zero`` would be read forever) or a 0-byte one (OSError passes for a missing one)."""
    why = file_problem(path)
    if why and why != "is missing":
        raise ValueError(f"{path} {why}; flow files must be regular files")
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
    """Read a Middlebury ``.flo`` file as (2, H, W) float32 (its header checked before the data is read)."""
    path = Path(path)
    h, w = _flo_size(path)
    check_pixels(path, h * w, f"{w}x{h}")
    n = w * h * 2 * 4
    with open(path, "rb") as f:
        f.seek(12)
        raw = f.read(n + 1)  # one byte more: a longer file is as damaged as a shorter one
    if len(raw) != n:
        raise ValueError(f"{path}: .flo data has {len(raw) if len(raw) <= n else 'more than ' + str(n)} bytes, "
                         f"header says {n} ({w}x{h})")
    data = np.frombuffer(raw, "<f4").reshape(h, w, 2)
    return np.ascontiguousarray(np.moveaxis(data, -1, 0), dtype=np.float32)


def _flo_size(path: Path) -> tuple[int, int]:
    """(H, W) from a ``.flo`` header; ``ValueError`` for a bad magic number or an implausible size."""
    _require_nonempty(path)
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or np.frombuffer(head[:4], "<f4")[0] != FLO_MAGIC:
        raise ValueError(f"{path}: not a Middlebury .flo file (bad magic number)")
    w, h = (int(x) for x in np.frombuffer(head[4:12], "<i4"))
    if w <= 0 or h <= 0:
        raise ValueError(f"{path}: implausible .flo size {w}x{h}")
    return h, w


def check_pixels(path: Any, pixels: int, size: str) -> None:
    """``ValueError`` naming ``path`` when a sample of ``pixels`` (H x W) is over ``MAX_FLOW_PIXELS``."""
    if pixels > MAX_FLOW_PIXELS:
        raise ValueError(f"{path}: a flow sample of {size} ({pixels:,} pixels) is over the cap of "
                         f"{MAX_FLOW_PIXELS:,} pixels (bench.data.flowfiles.MAX_FLOW_PIXELS, 4096x4096); "
                         "refused before decoding")


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image from its header alone: the PNG IHDR, else Pillow's lazy open (no pixels read)."""
    _require_nonempty(path)
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return h, w
    from PIL import Image  # Pillow comes with matplotlib; only the header is parsed

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path}: image over {MAX_FLOW_PIXELS:,} pixels ({e}); refused before decoding") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ValueError(f"{path}: not a readable image (its header: {type(e).__name__}: {e})") from None
    return h, w


def _npy_header_shape(fp, path: Any) -> tuple[int, ...]:
    """The shape a ``.npy`` header declares (``fp`` at its start); nothing past the header is read."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(fp)
        else:  # 2.0 and 3.0 share the 4-byte header length (3.0 only allows utf-8 field names)
            shape, _, _ = np.lib.format.read_array_header_2_0(fp)
    except (EOFError, ValueError, SyntaxError) as e:
        raise ValueError(f"{path}: not a readable .npy array ({type(e).__name__}: {e})") from None
    return tuple(int(d) for d in shape)


def _array_pixels(shape: Sequence[int], channels: int) -> int:
    """H x W of an array sample: its values over its declared channels (2-D members: one channel)."""
    values = int(np.prod(shape, dtype=object)) if shape else 1
    return values if len(shape) <= 2 else values // max(1, channels)


def flow_sample_size(path: str | Path, spec: FlowFileSpec, index: int | None = None) -> tuple[int, str]:
    """(pixels, 'WxH' or the array shape) of one sample, read from its file's header only."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        h, w = _image_size(path)
        return h * w, f"{w}x{h}"
    if ext == ".flo":
        h, w = _flo_size(path)
        return h * w, f"{w}x{h}"
    if ext == ".npy":
        _require_nonempty(path)
        with open(path, "rb") as f:
            shape = _npy_header_shape(f, path)
        if index is not None and len(shape) == 4:
            shape = shape[1:]
        return _array_pixels(shape, len(spec.channels)), f"shape {shape}"
    if ext == ".npz":
        return _npz_sample_size(path, spec)
    raise ValueError(f"{path}: unsupported flow file type {ext!r} (supported: {sorted(FLOW_EXTS)})")


def _npz_sample_size(path: Path, spec: FlowFileSpec) -> tuple[int, str]:
    """The largest member the reader would take, from the members' ``.npy`` headers in the zip."""
    _require_nonempty(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
            worst = (0, "")
            for member in _npz_members(list(names), spec, path):
                with zf.open(names[member]) as fp:
                    shape = _npy_header_shape(fp, f"{path}[{member}]")
                worst = max(worst, (_array_pixels(shape, len(spec.channels)), f"{member} of shape {shape}"))
            return worst
    except (zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None


def check_flow_size(path: str | Path, spec: FlowFileSpec, index: int | None = None) -> None:
    """``ValueError`` naming ``path`` when its sample is over ``MAX_FLOW_PIXELS`` (headers only)."""
    check_pixels(path, *flow_sample_size(path, spec, index))


def content_digest(path: str | Path, index: int | None = None) -> bytes:
    """The sha256 of what a sample's file holds: all its bytes (every stored channel), or for a sample
    of a stacked ``.npy`` that sample's dtype, shape and values. Never the path: moving the data
    keeps the digest."""
    h = hashlib.sha256()
    if index is None:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.digest()
    a = _npy_sample(Path(path), index)
    h.update(f"{a.dtype.str}{a.shape}:".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()


def _npz_members(files: Sequence[str], spec: FlowFileSpec, path: Any) -> list[str]:
    """The arrays of a ``.npz`` that hold the flow: ``npz_key``, else 'flow', the only one, or u and v."""
    if spec.npz_key is not None:
        if spec.npz_key not in files:
            raise ValueError(f"{path}: no array {spec.npz_key!r} (has {list(files)})")
        return [spec.npz_key]
    if "flow" in files:
        return ["flow"]
    if len(files) == 1:
        return [files[0]]
    if "u" in files and "v" in files:
        return ["u", "v"]
    raise ValueError(f"{path}: cannot tell which array is the flow (has {list(files)}); set npz_key")


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
    a, separate = _npz_array(path, spec)
    return a.astype(np.float32) if separate else read_array_flow(a, spec, path)


def _npz_array(path: Path, spec: FlowFileSpec) -> tuple[np.ndarray, bool]:
    """The flow array of a ``.npz`` as stored, and whether it was stacked from separate u, v arrays."""
    _require_nonempty(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not a .npz archive (it holds a single .npy array)")
    try:
        with z:
            members = _npz_members(z.files, spec, path)
            if members == ["u", "v"]:
                return np.stack([check_real(z["u"], f"{path}[u]"), check_real(z["v"], f"{path}[v]")]), True
            return z[members[0]], False
    except (EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None


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
    check_flow_size(path, spec, index)
    if ext in IMAGE_EXTS:
        x, maxval = _decode_image(path, spec)
        return x.astype(np.float32), maxval
    if ext == ".flo":
        return read_flo(path), None
    if ext == ".npy":
        a = _npy_sample(path, index)
    elif ext == ".npz":
        a, separate = _npz_array(path, spec)
        if separate:  # separate u, v arrays: as _read_npz
            return a.astype(np.float32), None
    else:
        raise ValueError(f"{path}: unsupported flow file type {ext!r} (supported: {sorted(FLOW_EXTS)})")
    a = _to_chw(check_real(np.asarray(a), path), spec, path)
    return np.ascontiguousarray(a, dtype=np.float32), None


def read_flow_file(path: str | Path, spec: FlowFileSpec, index: int | None = None) -> np.ndarray:
    """(u, v) float32 (2, H, W) from one file; ``index`` selects a sample of a stacked (N, ...) .npy."""
    path = Path(path)
    ext = path.suffix.lower()
    check_flow_size(path, spec, index)
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
