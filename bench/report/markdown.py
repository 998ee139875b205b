"""Blocks -> GitHub-flavoured Markdown."""

from __future__ import annotations

from .document import Block, Bullets, Code, Figure, Formula, Heading, PageBreak, Para, Table


def _cell(v: str) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def table_md(t: Table) -> str:
    align = t.align or ["l"] * len(t.columns)
    lines = ["| " + " | ".join(_cell(c) for c in t.columns) + " |",
             "|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|"]
    for i, row in enumerate(t.rows):
        cells = [f"**{_cell(v)}**" if (i, j) in t.bold else _cell(v) for j, v in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    out = "\n".join(lines)
    if t.caption:
        out += f"\n\n*{t.caption}*"
    return out


def render(blocks: list[Block]) -> str:
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            parts.append(b.text)
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {it}" for it in b.items))
        elif isinstance(b, Code):
            parts.append(f"```\n{b.text}\n```")
        elif isinstance(b, Table):
            parts.append(table_md(b))
        elif isinstance(b, Figure):
            parts.append(f"![{b.caption}]({b.path.as_posix()})\n\n*Figure: {b.caption}*")
        elif isinstance(b, Formula):
            parts.append(f"$$\n{b.latex}\n$$")
        elif isinstance(b, PageBreak):
            continue
        else:  # pragma: no cover - a new block type must be rendered here
            raise TypeError(f"unknown block {type(b).__name__}")
    return "\n\n".join(parts) + "\n"
