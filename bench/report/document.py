"""The report as a list of blocks, rendered once to Markdown and once to PDF so both say the same."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    """A paragraph; may use **bold** and `code` (stripped to plain text in the PDF)."""

    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Code:
    text: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, col) cells marked best
    align: list[str] | None = None  # per column "l" | "r"


@dataclass
class Figure:
    path: Path  # relative to the report directory
    caption: str


@dataclass
class PageBreak:
    pass


@dataclass
class Contents:
    """Where the PDF prints its table of contents, then starts a new page (after the answer on page 1);
    the Markdown has none (a reader's viewer lists the headings)."""


@dataclass
class Formula:
    """A displayed formula, written twice: Typst math for the PDF, LaTeX math for the Markdown."""

    typst: str  # Typst math, without the $ delimiters
    latex: str  # LaTeX math, without the $$ delimiters (GitHub renders $$...$$)


Block = Heading | Para | Bullets | Code | Table | Figure | PageBreak | Formula | Contents


def plain(text: str) -> str:
    """Markdown inline markup -> plain text (for the PDF)."""
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    text = re.sub(r"(?<!\*)\*(?!\*)(.+?)(?<!\*)\*(?!\*)", r"\1", text)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1 (\2)", text)
