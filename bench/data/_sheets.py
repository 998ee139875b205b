"""Reading annotation sheets (xlsx / csv) with the row numbers the user sees.

Every value is read as text (``'006'`` stays ``'006'``; an Excel number ``6.0`` becomes ``'6'``) and each
row keeps ``_row``, its 1-based spreadsheet / file line number, and ``_file``, so validation errors can
name both. openpyxl is used directly (rather than ``pandas.read_excel``) because pandas renumbers rows
when it skips blank lines, and the row number is what a user needs to fix their sheet.
"""

from __future__ import annotations

import csv
import datetime as _dt
import glob
import io
import re
import string
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from bench.data.paths import join_under
from bench.data.table import DataError

HEADER_SCAN_ROWS = 40  # SAMM has 13 lines of notes before its header; leave generous room


def norm_header(name: object) -> str:
    """``'Onset Frame'``, ``'OnsetFrame'``, ``'onset_frame'`` -> ``'onsetframe'``."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def cell_text(v: object) -> str:
    """A cell as text; integral floats lose their ``.0`` (Excel stores 6 as 6.0)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if v != v:  # NaN
            return ""
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, (_dt.datetime, _dt.date)):
        return v.isoformat()
    return str(v).strip()


def _read_xlsx_rows(path: Path, sheet: str | None) -> list[tuple[int, list[str]]]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # zip / xml errors: say which file
        raise DataError(f"{path}: cannot read as an xlsx workbook ({e})") from e
    try:
        if sheet is None:
            ws = wb.worksheets[0]
        else:
            names = {n.lower().strip(): n for n in wb.sheetnames}
            key = sheet.lower().strip()
            if key not in names:
                raise DataError(f"{path}: no sheet {sheet!r}; the workbook has {wb.sheetnames}")
            ws = wb[names[key]]
        rows = [
            (i, [cell_text(v) for v in r])
            for i, r in enumerate(ws.iter_rows(min_row=1, values_only=True), start=1)
        ]
    finally:
        wb.close()
    return rows


def _read_csv_rows(path: Path, sep: str | None) -> list[tuple[int, list[str]]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # old Excel CSV exports are often cp1252/latin-1
    if sep is None:
        # csv.Sniffer gives up on files that open with free-text notes (SAMM's export); the table's
        # header row is the line with the most delimiters, so pick the delimiter that wins there.
        head = text.splitlines()[:60]
        sep = max(",;\t", key=lambda d: max((ln.count(d) for ln in head), default=0))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    out = []
    for r in reader:
        # line_num counts physical lines, so quoted multi-line cells keep the numbering honest
        out.append((reader.line_num, [c.strip() for c in r]))
    return out


def read_rows(path: Path, sheet: str | None = None, sep: str | None = None) -> list[tuple[int, list[str]]]:
    """All rows of a sheet as ``(row_number, cells)``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found; point dataset.annotation=<file> at it "
                        "(a path relative to dataset.root, or absolute)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the annotation file is empty (0 bytes); was it copied completely?")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx_rows(path, sheet)
    if suffix in (".csv", ".txt", ".tsv"):
        return _read_csv_rows(path, "\t" if suffix == ".tsv" and sep is None else sep)
    if suffix == ".xls":
        raise DataError(f"{path}: legacy .xls is not supported; save it as .xlsx or .csv")
    raise DataError(f"{path}: unsupported annotation format {suffix!r} (use .xlsx or .csv)")


def read_table(
    path: Path | str,
    *,
    sheet: str | None = None,
    sep: str | None = None,
    header_keys: Sequence[str] = ("subject",),
    header: bool = True,
) -> pd.DataFrame:
    """Read a sheet into a string DataFrame with normalised headers plus ``_row`` and ``_file``.

    The header row is the first of the first ``HEADER_SCAN_ROWS`` rows whose normalised cells contain
    all ``header_keys`` (so notes above it are skipped). Fully blank rows are dropped. With
    ``header=False`` the columns are ``0..n-1`` and every non-blank row is data.
    """
    path = Path(path)
    rows = read_rows(path, sheet, sep)
    keys = [norm_header(k) for k in header_keys]
    start = 0
    if header:
        for k, (_, cells) in enumerate(rows[:HEADER_SCAN_ROWS]):
            names = {norm_header(c) for c in cells}
            if all(key in names for key in keys):
                start = k
                break
        else:
            raise DataError(
                f"{path}: no header row with columns {list(header_keys)} in the first "
                f"{HEADER_SCAN_ROWS} rows"
            )
        cols = [norm_header(c) or f"_col{j}" for j, c in enumerate(rows[start][1])]
        seen: dict[str, int] = {}
        for j, c in enumerate(cols):  # keep duplicate headers distinct rather than silently merged
            if c in seen:
                cols[j] = f"{c}_{seen[c]}"
                seen[c] += 1
            else:
                seen[c] = 1
        body = rows[start + 1 :]
    else:
        width = max((len(c) for _, c in rows), default=0)
        cols = list(range(width))
        body = rows
    recs = []
    for rownum, cells in body:
        if not any(cells):
            continue
        cells = list(cells) + [""] * (len(cols) - len(cells))
        if len(cells) > len(cols) and any(cells[len(cols) :]):
            first = ", ".join(repr(c) for c in cells[:3] if c)  # no clip column is known yet: show the row's start
            raise DataError(f"{path}, row {rownum} ({first}, ...): {len([c for c in cells if c])} cells, more than "
                            f"the {len(cols)} header columns")
        recs.append(dict(zip(cols, cells[: len(cols)]), _row=rownum))
    df = pd.DataFrame.from_records(recs, columns=[*cols, "_row"])
    df = df.astype({c: object for c in cols})
    df["_file"] = str(path)
    return df


def pick(df: pd.DataFrame, path: Path | str, spec: Mapping[str, Sequence[str]], required: Iterable[str]) -> pd.DataFrame:
    """Rename the first matching alias of each standard column; error if a required one is absent.

    ``spec`` maps a standard name to accepted (normalised) header aliases.
    """
    out = pd.DataFrame(index=df.index)
    req = set(required)
    for std, aliases in spec.items():
        hit = next((norm_header(a) for a in aliases if norm_header(a) in df.columns), None)
        if hit is None:
            if std in req:
                raise DataError(
                    f"{path}: no column for {std!r} (accepted headers: {list(aliases)}; "
                    f"found: {[c for c in df.columns if not str(c).startswith('_')]})"
                )
            continue
        out[std] = df[hit]
    out["_row"] = df["_row"]
    out["_file"] = df["_file"]
    return out


def require_root(root: object, loader: str, clone: str | None = None, key: str = "dataset.root") -> Path:
    """``root`` as a Path; a clear error, naming ``key`` (and, for a public release, the ``clone``
    command that fetches it), when it is unset (OmegaConf's ``???`` placeholder or None), does not
    exist or is not a folder."""
    fetch = f"; get it with: {clone} <folder>, then {key}=<folder>" if clone else ""
    if root is None or str(root).strip() in ("", "???"):
        raise DataError(f"dataset {loader}: {key} is not set; pass {key}=<folder of your {loader} copy>{fetch}")
    path = Path(str(root)).expanduser()
    if not path.exists():
        fetch = f"; get it with: {clone} {path}" if clone else ""
        raise DataError(f"dataset {loader}: {key}={root} does not exist (no such folder); "
                        f"pass {key}=<folder of your {loader} copy>{fetch}")
    if not path.is_dir():
        raise DataError(f"dataset {loader}: {key}={root} is not a folder; pass {key}=<folder of your {loader} copy>")
    return path


def find_annotation(root: Path, patterns: Sequence[str], what: str) -> Path:
    """The one annotation file under ``root`` matching the first pattern that matches anything."""
    for pat in patterns:
        hits = sorted(Path(p) for p in glob.glob(str(root / pat)) if not Path(p).name.startswith("~$"))
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise DataError(
                f"{root}: several {what} annotation files match {pat!r}: {[h.name for h in hits]}; "
                f"choose one with dataset.annotation=<file>"
            )
    raise DataError(f"{root}: no {what} annotation file (looked for {list(patterns)}); "
                    f"is dataset.root the {what} folder? Or name the file with dataset.annotation=<file>")


def resolve_dir(root: Path, frames_dir: str | None, candidates: Sequence[str]) -> Path:
    """``root/frames_dir`` if given, else the first existing ``root/candidate``, else ``root``."""
    if frames_dir is not None:
        return (root / frames_dir).resolve() if not Path(frames_dir).is_absolute() else Path(frames_dir)
    for c in candidates:
        if (root / c).is_dir():
            return (root / c).resolve()
    return root.resolve()


def clip_folders(base: Path, df: pd.DataFrame, ann: Path, fields: Sequence[str] = ("subject", "clip")) -> list[Path]:
    """Per row ``base / <value of each field> / ...`` (``frames/sub01/EP02_01f``); a sheet value that
    would lead out of ``base`` (``../x``, an absolute path) is an error naming the file, row and clip."""
    return [join_under(base, {f: str(r[f]) for f in fields},
                       f"{ann}, row {r['_row']} ({r['subject']}/{r['clip']})") for r in df.to_dict("records")]


def escape_braces(s: str) -> str:
    return s.replace("{", "{{").replace("}", "}}")


def partial_format(template: str, values: Mapping[str, object], keep: str = "frame") -> str:
    """Fill every field of ``template`` except ``{keep...}`` (kept verbatim with its format spec).

    Values are brace-escaped so paths containing ``{`` survive a later ``.format(frame=...)``.
    """
    out = []
    for literal, field, spec, conv in string.Formatter().parse(template):
        out.append(escape_braces(literal))
        if field is None:
            continue
        if field == keep:
            out.append("{" + field + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}")
            continue
        if field not in values:
            raise KeyError(field)
        v = values[field]
        out.append(escape_braces(format(v, spec) if spec else str(v)))
    return "".join(out)
