"""MEGC2019 composite: the official 3-class list joined to the CASME II, SAMM and SMIC loaders.

The official list (``gt_csv``; default: the copy shipped in ``bench/data/resources/``) has no header and
rows ``database, subject, clip, label`` (0 negative, 1 positive, 2 surprise): 442 clips, 68 subjects.
Labels come from the list; key frames and frames from each dataset's own loader, matched by
(subject, clip) after undoing the list's naming differences:

* CASME II: ``sub01`` / ``EP02_01f`` as in the dataset.
* SAMM: the list writes subject ``6`` for ``006`` (read as text and zero-padded to 3 digits).
* SMIC: the list writes ``s01`` / ``s01_ne_01``, the folders ``s1`` / ``s1_ne_01``.

Output rows keep the list's names, prefixed by the source dataset: subject ``casme2/sub01``,
``samm/006``, ``smic/s01`` (so LOSO runs over the list's 68 subjects), clip as in the list; ``dataset``
is the source dataset and ``emotion`` the source's own emotion. A list row with no matching clip is an
error naming the list row; a source emotion whose MEGC2019 class differs from the list's label is
recorded as a problem (the list is authoritative).

Params: ``casme2``, ``samm``, ``smic``: mappings of that loader's params (``root`` required, e.g.
``{root: /data/CASME2, frames: cropped}``); ``include`` (default all three: a subset evaluates on part
of the list, with the list rows of the other datasets skipped and counted); ``gt_csv``; ``classes``
(only ``megc3``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from bench.data import register_dataset
from bench.data.casme2 import read_casme2
from bench.data.casme2 import subject_id as casme2_subject
from bench.data.classes import CLASS_SETS
from bench.data._sheets import require_root
from bench.data.samm import read_samm
from bench.data.samm import subject_id as samm_subject
from bench.data.smic import canonical_clip, canonical_subject, read_smic
from bench.data.table import DataError, SampleTable
from bench.data.validate import finalize, split_options

CLASSES = ["negative", "positive", "surprise"]
SOURCES = ("casme2", "samm", "smic")
DEFAULT_GT = Path(__file__).with_name("resources") / "combined_3class_gt.csv"
_ACCEPTED = ("casme2", "samm", "smic", "include", "gt_csv", "classes")


def read_gt(path: str | Path) -> list[tuple[int, str, str, str, str]]:
    """Rows ``(line, database, subject, clip, label)`` of the official list."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: MEGC2019 list not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the MEGC2019 list is empty (0 bytes)")
    out = []
    reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""))
    for cells in reader:
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        if len(cells) != 4:
            raise DataError(f"{path}, row {reader.line_num}: expected 4 fields (database, subject, clip, label), got {cells}")
        db = cells[0].lower()
        if db not in SOURCES:
            raise DataError(f"{path}, row {reader.line_num}: unknown database {cells[0]!r} (expected {list(SOURCES)})")
        out.append((reader.line_num, db, cells[1], cells[2], cells[3]))
    return out


def _key(db: str, subject: str, clip: str) -> tuple[str, str]:
    """Join key in the source loader's naming."""
    if db == "casme2":
        return casme2_subject(subject), clip.strip()
    if db == "samm":
        return samm_subject(subject), clip.strip()
    return canonical_subject(subject), canonical_clip(clip)


def _out_subject(db: str, subject: str) -> str:
    if db == "casme2":
        return f"casme2/{casme2_subject(subject)}"
    if db == "samm":
        return f"samm/{samm_subject(subject)}"
    t = canonical_subject(subject)  # s1 -> s01, the list's spelling
    return f"smic/s{int(t[1:]):02d}" if t[1:].isdigit() else f"smic/{t}"


def _params(p: Any, db: str) -> dict[str, Any]:
    if p is None:
        raise DataError(f"megc2019: no {db} parameters; set dataset.{db}.root=<folder> (or drop it from include)")
    d = dict(p)
    if not d.get("root") or str(d.get("root")) == "???":
        raise DataError(f"megc2019: dataset.{db}.root is not set")
    require_root(d["root"], db, key=f"dataset.{db}.root")  # a missing folder, named by its key
    d.pop("classes", None)  # labels come from the list
    for k in ("check_frames", "strict", "errors", "min_subjects", "overrides"):
        d.pop(k, None)  # validation runs once, on the joined table
    return d


@register_dataset(sources=SOURCES)
def load_megc2019(casme2: Mapping[str, Any] | None = None, samm: Mapping[str, Any] | None = None,
                  smic: Mapping[str, Any] | None = None, include: Sequence[str] = SOURCES,
                  gt_csv: str | Path | None = None, classes: Any = "megc3", **options: Any) -> SampleTable:
    """The MEGC2019 composite (see the module docstring)."""
    opts = split_options("megc2019", options, _ACCEPTED)
    if classes not in ("megc3", None):
        raise ValueError(f"megc2019 labels are fixed by the official list (megc3); classes={classes!r} is not supported")
    include = [str(i).lower() for i in include]
    unknown = [i for i in include if i not in SOURCES]
    if unknown or not include:
        raise ValueError(f"megc2019 include must be a non-empty subset of {list(SOURCES)}, not {include}")
    gt_path = Path(gt_csv).expanduser() if gt_csv else DEFAULT_GT
    gt = read_gt(gt_path)
    readers = {"casme2": (read_casme2, casme2), "samm": (read_samm, samm), "smic": (read_smic, smic)}
    sources: dict[str, pd.DataFrame] = {}
    problems: list[str] = []
    for db in include:
        fn, p = readers[db]
        res = fn(**_params(p, db))
        df = res[0]
        if db == "smic":
            problems += [f"smic: {m}" for m in res[2]]
            df = df.assign(_k=[(canonical_subject(s), canonical_clip(c)) for s, c in zip(df["subject"], df["clip"])])
        else:
            df = df.assign(_k=list(zip(df["subject"], df["clip"])))
        sources[db] = df.set_index("_k", drop=False)

    megc = CLASS_SETS["megc3"]
    rows, errors, skipped = [], [], 0
    for line, db, subj, clip, label in gt:
        at = f"{gt_path}, row {line} ({subj}/{clip})"
        if db not in sources:
            skipped += 1
            continue
        try:
            k = _key(db, subj, clip)
        except ValueError:
            errors.append(f"{at}: subject {subj!r} is not a {db} subject")
            continue
        src = sources[db]
        if k not in src.index:
            errors.append(f"{at}: {db} clip {subj}/{clip} not found in {src['_file'].iat[0] if len(src) else db}")
            continue
        hit = src.loc[[k]]
        if len(hit) > 1:
            errors.append(f"{at}: {db} clip {subj}/{clip} matches {len(hit)} source rows")
            continue
        r = hit.iloc[0].to_dict()
        r.update(subject=_out_subject(db, subj), clip=clip, label=label, dataset=db)
        src_label = megc.label_of(r["emotion"]) if megc.is_known(str(r["emotion"])) else None
        if label.isdigit() and src_label is not None and src_label != int(label):
            problems.append(
                f"{at}: list label {CLASSES[int(label)] if int(label) < 3 else label} but {db} emotion "
                f"{r['emotion']!r} ({r['_file']}{', row ' + str(int(r['_row'])) if pd.notna(r['_row']) else ''}); "
                f"the list is used"
            )
        rows.append(r)
    if skipped:
        problems.append(f"{gt_path}: {skipped} list row(s) of datasets not included ({sorted(set(SOURCES) - set(include))}) skipped")
    if errors:
        if opts.errors == "raise":
            shown = "\n  ".join(errors[:25])
            more = f"\n  ... and {len(errors) - 25} more" if len(errors) > 25 else ""
            raise DataError(errors[0] if len(errors) == 1 else f"{len(errors)} MEGC2019 join errors:\n  {shown}{more}")
        problems += [f"error: {e}" for e in errors]
    raw = pd.DataFrame.from_records(rows)
    if raw.empty:
        raise DataError(f"{gt_path}: no list row matched the datasets' clips")
    raw = raw.drop(columns=["_k"])
    return finalize(raw, name="megc2019", source=str(gt_path), options=opts, given_classes=CLASSES,
                    problems=problems, meta={"include": include})
