"""Paths built from sheet values: kept inside the folder they are meant for, and named for what they are.

A loader joins sheet values (subject, clip, emotion, a per-row template) into file paths. A value
that is absolute or holds a ``..`` component (``../../x``) would read files outside ``dataset.root``
without a word, so ``join_under`` and ``fill_template`` refuse it, naming the file, row and clip
(``at``). The check is on the names (lexical), not on where symlinks lead: a dataset may link its
own folders elsewhere, but no *recorded name* leaves the folder it is joined onto.

``file_problem`` says why a path is not a readable regular file: missing, a dangling symlink, a
symlink loop, a directory, or another kind of file (a device such as ``/dev/zero``, a FIFO, a socket).
"""

from __future__ import annotations

import errno
import os
import stat
import string
from pathlib import Path, PurePath
from typing import Any, Iterable, Mapping

from bench.data.table import DataError


def part_problem(value: Any) -> str | None:
    """Why ``value`` cannot be joined into a path as a name, or None (absolute, ``..``, NUL)."""
    text = str(value)
    if "\0" in text:
        return "contains a NUL character"
    if PurePath(text).is_absolute() or text.startswith(("/", "\\")):
        return "is an absolute path"
    if ".." in PurePath(text.replace("\\", "/")).parts:
        return "holds a '..' component"
    return None


def inside(base: str | Path, path: str | Path) -> bool:
    """Whether ``path`` (relative to ``base`` unless absolute) lies in ``base``, by its name alone."""
    b = os.path.normpath(os.path.abspath(base))
    p = os.path.normpath(os.path.join(b, path))
    return p == b or p.startswith(b.rstrip(os.sep) + os.sep)


def join_under(base: Path, parts: Mapping[str, Any], at: str) -> Path:
    """``base / part / ...`` for the sheet values ``parts`` (field -> value), each refused when it
    would lead out of ``base``; ``at`` names the file, row and clip in the error."""
    for field, value in parts.items():
        why = part_problem(value)
        if why:
            raise DataError(f"{at}: {field} {str(value)!r} {why}: a sheet value may not lead out of {base}")
    path = base.joinpath(*(str(v) for v in parts.values()))
    if not inside(base, path):
        raise DataError(f"{at}: {path} is outside {base}")
    return path


def template_fields(template: str) -> list[str]:
    """The field names a ``str.format`` template uses (``{subject}/{clip:>3}`` -> subject, clip)."""
    try:
        return [f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f]
    except ValueError:
        return []  # a malformed template is reported where it is formatted


def template_base(root: Path, template: str) -> Path:
    """The folder a template fixes before its first field (``datasets/X/{clip}.png`` -> ``root/datasets/X``;
    an absolute template's own folder). Sheet values filled in must stay inside it."""
    literal = next(iter(string.Formatter().parse(template)), ("", None, None, None))[0]
    head = os.path.dirname(literal) if literal else ""
    return Path(os.path.normpath(os.path.join(root, head))) if head else Path(os.path.normpath(root))


def check_values(template: str, values: Mapping[str, Any], at: str, fields: Iterable[str] | None = None) -> None:
    """Refuse a sheet value that the template would turn into a path out of its folder."""
    for field in (fields if fields is not None else template_fields(template)):
        if field in values:
            why = part_problem(values[field])
            if why:
                raise DataError(f"{at}: {field} {str(values[field])!r} {why}, which would lead the "
                                f"file name {template!r} out of its folder")


def confine(base: Path, path: Path, at: str, what: str) -> Path:
    """``path`` if it lies in ``base``; a ``DataError`` naming ``at`` and ``what`` (e.g. the template) otherwise."""
    if not inside(base, path):
        raise DataError(f"{at}: {what} leads to {path}, outside {base}")
    return path


def file_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a regular file to read, or None: names what it is instead."""
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symlink loop"
        if os.path.islink(path):
            return "is a dangling symlink (its target is missing)"
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return "is missing"
        return f"cannot be read ({e.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory"
    if not stat.S_ISREG(st.st_mode):
        return f"is not a regular file (a {_kind(st.st_mode)})"
    return None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"
