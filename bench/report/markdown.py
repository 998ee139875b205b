"""Blocks -> GitHub-flavoured Markdown."""

from __future__ import annotations

import re

from .document import Block, Bullets, Code, Contents, Figure, Formula, Heading, PageBreak, Para, Table
from .names import minus

# Text from the run (labels, class names, study names, paths) never becomes HTML: outside code spans,
# a "<" that could open a tag, comment or autolink and a "&" that would start an entity are written
# as "&lt;" and "&amp;" (shown as themselves); "< 0.001" or "R&D" are left readable. Code spans and
# code blocks show their text literally, so they are left as they are (a code block's fence is made
# longer than any run of backticks in it, so its text cannot close it).
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY = re.compile(r"&(?=#[0-9]{1,7};|#[xX][0-9A-Fa-f]{1,6};|[A-Za-z][A-Za-z0-9]{0,31};)")
_TICKS = re.compile(r"`+")


def _escape_html(s: str) -> str:
    """Plain text: raw HTML neutralised, a negative number's hyphen a true minus sign (U+2212)."""
    return _TAG_START.sub("&lt;", _ENTITY.sub("&amp;", minus(s)))


def text(s) -> str:
    """Markdown inline text with raw HTML neutralised outside code spans (CommonMark's rules: a
    backslash-escaped backtick opens no span; a span closes at the next run of as many backticks)."""
    s, out, plain, i = str(s), [], [], 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s):
            plain.append(s[i:i + 2])
            i += 2
            continue
        if ch == "`":
            run = _TICKS.match(s, i).group(0)
            close = next((m for m in _TICKS.finditer(s, i + len(run)) if len(m.group(0)) == len(run)), None)
            if close is not None:
                out += [_escape_html("".join(plain)), s[i:close.end()]]
                plain, i = [], close.end()
                continue
            plain.append(run)
            i += len(run)
            continue
        plain.append(ch)
        i += 1
    out.append(_escape_html("".join(plain)))
    return "".join(out)


def _cell(v: str) -> str:
    return text(str(v).replace("\n", " ")).replace("|", "\\|")


def _fence(code: str) -> str:
    return "`" * max(3, 1 + max((len(m) for m in _TICKS.findall(code)), default=0))


def table_md(t: Table) -> str:
    align = t.align or ["l"] * len(t.columns)
    lines = ["| " + " | ".join(_cell(c) for c in t.columns) + " |",
             "|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|"]
    for i, row in enumerate(t.rows):
        cells = [f"**{_cell(v)}**" if (i, j) in t.bold else _cell(v) for j, v in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    out = "\n".join(lines)
    if t.caption:
        out += f"\n\n*{text(t.caption)}*"
    return out


def render(blocks: list[Block]) -> str:
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + text(" ".join(str(b.text).split())))
        elif isinstance(b, Para):
            parts.append(text(b.text))
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {text(it)}" for it in b.items))
        elif isinstance(b, Code):
            fence = _fence(str(b.text))
            parts.append(f"{fence}\n{b.text}\n{fence}")
        elif isinstance(b, Table):
            parts.append(table_md(b))
        elif isinstance(b, Figure):
            alt = re.sub(r"([\[\]\\])", r"\\\1", text(b.caption))
            parts.append(f"![{alt}]({b.path.as_posix()})\n\n*Figure: {text(b.caption)}*")
        elif isinstance(b, Formula):
            parts.append(f"$$\n{b.latex}\n$$")
        elif isinstance(b, (PageBreak, Contents)):
            continue
        else:  # pragma: no cover - a new block type must be rendered here
            raise TypeError(f"unknown block {type(b).__name__}")
    return "\n\n".join(parts) + "\n"
