"""Blocks -> an A4 PDF typeset by Typst (the ``typst`` package), from the same blocks as the Markdown.

Why Typst, not reportlab (or LaTeX, or the hand layout on matplotlib pages this replaces): the
``typst`` wheel carries the whole compiler and its fonts, so it typesets offline with no TeX install
and no system fonts (``ignore_system_fonts``: the same PDF on every machine), in well under a second.
It does the typesetting a reader expects and that reportlab leaves to the caller: paragraphs broken
and justified, tables whose header repeats on every page and is never left alone at a page foot,
captions numbered and placed, headings kept with what follows, a contents page with page numbers,
and real formulas (UF1's definition) from a math syntax. reportlab would mean writing table
splitting, keep-with-next and formula layout ourselves again.

The document: page 1 holds the title and the answer (the blocks before the ``Contents`` block: what was
compared, the verdicts, the compact table), then the contents and a new page; then every section, the
provenance (manifest, run facts) last; page numbers in the footer on every page. Without a ``Contents``
block the title page holds the title, its ``items`` and the contents. Tables
are figures (numbered "Table n", caption above); one that fits on a page is never split (the headline
table stays whole), a longer one breaks between rows with its header repeated. Figures are the
report's PNGs at the text width (less for a tall one, or one whose pixels would print below
150 dpi there: the figures are drawn at ``report.dpi`` >= 150), numbered, caption below.

Text from the run (labels such as ``cof[theta1=0.3]``, file paths, captions) never becomes Typst
markup: every run of plain text is emitted as a Typst string literal (``#"..."``), in which only
``\\`` and ``"`` need escaping, so ``_ # * $ @ < > [ ] //`` print as themselves.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from .document import Block, Bullets, Code, Contents, Figure, Formula, Heading, PageBreak, Para, Table
from .names import minus

log = logging.getLogger(__name__)

TEXT_W_MM = 170.0  # A4 (210 mm) less 20 mm margins each side
MAX_FIG_H_MM = 200.0  # a figure taller than this at the text width is scaled to this height
MIN_DPI = 150  # figures never print below this resolution (ReportOptions.dpi >= 150 draws them)
LINES_ON_A_PAGE = 48  # a table estimated at up to this many text lines is kept whole on one page
CHARS_PER_LINE = {9: 120, 8: 134, 7: 152, 6: 178}  # characters across the text width at each table font size

_NBSP = "\u00a0"


def tstr(s: str) -> str:
    """A Typst string literal holding ``s`` verbatim."""
    s = str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", " ").replace("\t", " ")
    return f'"{s}"'


# Markdown inline markup the sections use: **bold**, *italic*, `code`, [text](url).
_INLINE = re.compile(r"\*\*(?P<b>.+?)\*\*|(?<![*\w])\*(?!\*)(?P<i>[^*]+?)\*(?![*\w])|`(?P<c>[^`]*)`"
                     r"|\[(?P<lt>[^\]]+)\]\((?P<lu>[^)\s]+)\)|(?P<url>https?://[^\s<>\"]+[^\s<>\".,;:)])")


def inline(text: str) -> str:
    """Markdown inline text -> Typst content (``[...]``): markup from the markdown, text as strings."""
    out, pos = [], 0
    text = str(text)
    for m in _INLINE.finditer(text):
        if m.start() > pos:
            out.append("#" + tstr(minus(text[pos:m.start()])))
        if m.group("b") is not None:
            out.append(f"#strong({inline(m.group('b'))})")
        elif m.group("i") is not None:
            out.append(f"#emph({inline(m.group('i'))})")
        elif m.group("c") is not None:
            out.append(f"#raw({tstr(m.group('c'))})")
        elif m.group("url") is not None:  # a link: broken between its parts, never hyphenated
            out.append(f"#link({tstr(m.group('url'))})")
        else:
            out.append(f"#link({tstr(m.group('lu'))})[#{tstr(m.group('lt'))}]")
        pos = m.end()
    if pos < len(text):
        out.append("#" + tstr(minus(text[pos:])))
    return "[" + "".join(out) + "]"


def _glue(s: str) -> str:
    """Non-breaking spaces where a line break would split a number from its sign, spread or interval."""
    s = str(s)
    if len(s) <= 14:  # short cells ("< 0.001", "18.0 s") never wrap; long prose cells take the squeeze
        return s.replace(" ", _NBSP)
    s = s.replace(" ± ", f"{_NBSP}±{_NBSP}")
    return re.sub(r"\[[^\]]*\]", lambda m: m.group(0).replace(" ", _NBSP), s)


PROSE = 32  # a left-aligned column whose widest cell is longer than this holds prose, which may wrap
BOLD_WIDTH = 1.08  # bold text is about this much wider than regular


def layout(t: Table) -> tuple[float, set[int]]:
    """The table's font size and its prose columns (the only ones allowed to wrap).

    The largest size at which every cell fits on one line (each column as wide as its widest cell, as
    Typst's auto columns are); when none does, the smallest, and only prose columns wrap.
    """
    rows = [list(t.columns), *t.rows]
    widest = [max(len(str(r[j])) for r in rows) * BOLD_WIDTH + 2 for j in range(len(t.columns))]
    for size in (9, 8, 7, 6):
        if sum(widest) <= CHARS_PER_LINE[size]:
            return size, set()
    align = t.align or ["l"] * len(t.columns)
    return 7, {j for j, w in enumerate(widest) if align[j] == "l" and w > PROSE}


def table_typ(t: Table) -> str:
    """A booktabs-style table (rules at top, under the header, at the bottom) inside a numbered figure.

    No cell wraps unless it is prose (``layout``): every other cell is glued with non-breaking spaces and
    the font shrinks (9 to 6 pt) until the widest row fits the text width.
    """
    n = len(t.columns)
    align = ", ".join("right" if a == "r" else "left" for a in (t.align or ["l"] * n))
    size, prose = layout(t)
    header = ", ".join(f"strong({inline(c if j in prose else str(c).replace(' ', _NBSP))})"
                       for j, c in enumerate(t.columns))
    cells = []
    for i, row in enumerate(t.rows):
        for j, v in enumerate(row):
            c = inline(_glue(v) if j in prose else str(v).replace(" ", _NBSP))
            cells.append(f"strong({c})" if (i, j) in t.bold else c)
    body = ", ".join(cells)
    cap = f", caption: {inline(t.caption)}" if t.caption else ""
    cols = "(" + ", ".join("1fr" if j in prose else "auto" for j in range(n)) + ",)" if prose else str(n)
    # The header repeats on every page a long table reaches; Typst never leaves a header without its
    # first row at a page foot. A table that fits on a page is kept whole (breakable: false), moved to
    # the next page rather than split; only one too tall for any page may break between rows.
    breakable = "true" if table_lines(t, CHARS_PER_LINE[size]) > LINES_ON_A_PAGE else "false"
    return (f"#[#show figure: set block(breakable: {breakable})\n"
            f"#set text(size: {size}pt)\n"
            f"#figure(kind: table{cap}, table(columns: {cols}, align: ({align},), stroke: none, inset: (x: 4pt, y: 2.6pt),\n"
            f"  table.hline(stroke: 0.9pt),\n"
            f"  table.header(repeat: true, {header}),\n"
            f"  table.hline(stroke: 0.5pt),\n"
            f"  {body}{',' if body else ''}\n"
            f"  table.hline(stroke: 0.9pt),\n"
            f"))]\n")


def table_lines(t: Table, per_line: int) -> int:
    """About how many text lines ``t`` takes: columns share the width in proportion to their widest
    cell (as Typst shrinks auto columns), and a cell wider than its share wraps."""
    rows = [list(t.columns), *t.rows]
    widest = [max(len(str(r[j])) for r in rows) + 2 for j in range(len(t.columns))]
    total = sum(widest)
    share = [w if total <= per_line else max(4, per_line * w / total) for w in widest]
    return sum(max(-(-(len(str(v)) + 2) // max(1, int(share[j]))) for j, v in enumerate(r)) for r in rows)


def _png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def figure_width_mm(w_px: int, h_px: int) -> float:
    """A figure's printed width: the text width, less for one too tall for the page at that width,
    and never so wide that the PNG prints below ``MIN_DPI`` (the report's print resolution)."""
    width = min(TEXT_W_MM, w_px / MIN_DPI * 25.4)
    if width * h_px / w_px > MAX_FIG_H_MM:
        width = MAX_FIG_H_MM * w_px / h_px
    return round(width, 2)


def figure_typ(b: Figure, base_dir: Path) -> str:
    width = figure_width_mm(*_png_size(base_dir / b.path))
    return f"#figure(image({tstr(b.path.as_posix())}, width: {width:g}mm), caption: {inline(b.caption)})\n"


CONTENTS = "#v(0.6cm)\n#outline(title: [Contents], depth: 1)\n#pagebreak()\n"


def _title_page(title: str, items: list[tuple[str, str]], contents: bool = True) -> str:
    """The title and ``items`` (label, value lines); then the contents and a new page, unless the blocks
    place the contents themselves (a ``Contents`` block: the answer comes first, on page 1)."""
    rows = ", ".join(f"strong({inline(k)}), {inline(v)}" for k, v in items)
    space = "3cm" if contents else "0.5cm"
    return (f"#align(center)[#v({space})#text(size: 20pt, weight: \"bold\")[#{tstr(title)}]#v(0.6cm)]\n"
            + (f"#block(width: 100%)[#set text(size: 9.5pt)\n#set par(justify: false)\n"
               f"#table(columns: (auto, 1fr), stroke: none, inset: (x: 4pt, y: 3pt), align: left,\n"
               f"  table.hline(stroke: 0.9pt), {rows}, table.hline(stroke: 0.9pt))]\n" if items else "")
            + (CONTENTS if contents else ""))


def source(blocks: list[Block], base_dir: Path, *, title: str, items: list[tuple[str, str]], footer: str) -> str:
    """The Typst source of the report (paths relative to ``base_dir``, the report folder)."""
    head = (
        f"#set document(title: {tstr(title)}, author: \"dualflow-bench\", date: none)\n"
        "#set page(paper: \"a4\", margin: (x: 20mm, top: 22mm, bottom: 24mm), numbering: \"1\",\n"
        f"  footer: context align(center, text(size: 7.5pt, fill: luma(110))[#{tstr(footer + ' — page ')}"
        "#counter(page).display()]))\n"
        "#set text(font: \"Libertinus Serif\", size: 10pt, lang: \"en\")\n"
        "#set par(justify: true)\n"
        "#set heading(numbering: \"1.1\")\n"
        "#show heading.where(level: 1): it => { v(0.4em); it; v(-0.5em); line(length: 100%, stroke: 0.4pt + luma(150)); v(0.2em) }\n"
        "#show raw: set text(font: \"DejaVu Sans Mono\", size: 7.5pt)\n"
        "#show raw.where(block: true): it => block(fill: luma(242), inset: 6pt, radius: 2pt, width: 100%, it)\n"
        "#show figure.where(kind: table): set figure.caption(position: top)\n"
        "#show figure.caption: set text(size: 8.5pt)\n"
        "#show link: set text(fill: rgb(\"#1f4e99\"), hyphenate: false)\n"
    )
    parts = [head, _title_page(title, items, contents=not any(isinstance(b, Contents) for b in blocks))]
    for b in blocks:
        if isinstance(b, Heading):
            if b.level == 1:
                continue  # the title page carries the document title
            parts.append("=" * (b.level - 1) + " " + inline(b.text)[1:-1] + "\n")
        elif isinstance(b, Para):
            # justified lines around an unbreakable link stretch their spaces: ragged right there
            parts.append(f"#par(justify: false){inline(b.text)}\n" if "://" in b.text else inline(b.text)[1:-1] + "\n")
        elif isinstance(b, Bullets):
            parts.append("#list(" + ", ".join(inline(it) for it in b.items) + ")\n")
        elif isinstance(b, Code):
            parts.append(f"#raw(block: true, \"{_raw_block(b.text)}\")\n")
        elif isinstance(b, Formula):
            parts.append(f"#block(breakable: false)[#math.equation(block: true, numbering: none, ${b.typst}$)]\n")
        elif isinstance(b, Table):
            parts.append(table_typ(b))
        elif isinstance(b, Figure):
            parts.append(figure_typ(b, base_dir))
        elif isinstance(b, PageBreak):
            parts.append("#pagebreak(weak: true)\n")
        elif isinstance(b, Contents):
            parts.append(CONTENTS)
        else:  # pragma: no cover - a new block type must be rendered here
            raise TypeError(f"unknown block {type(b).__name__}")
    return "\n".join(parts)


def _raw_block(text: str) -> str:
    """Code text inside a Typst string literal, keeping its line breaks."""
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")


def can_typeset() -> bool:
    """Whether the Typst compiler (the ``typst`` package) loads. When it does not (not installed, or
    its native module fails to load), one warning says why and how to fix it, and the report is
    written without its PDF."""
    try:
        import typst  # noqa: F401

        typst.compile_with_warnings  # noqa: B018 - a broken install imports but lacks the compiler
    except Exception as e:  # noqa: BLE001 - ImportError, OSError from a native library, AttributeError
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        log.warning("report.pdf skipped: the Typst compiler cannot be loaded (%s: %s); the rest of the report is "
                    "written. Fix: pip install --force-reinstall typst, or skip the PDF with report_options.pdf=false",
                    type(e).__name__, why)
        return False
    return True


def render(blocks: list[Block], path: Path, base_dir: Path, *, title: str, items: list[tuple[str, str]],
           footer: str) -> int:
    """Typeset the PDF at ``path`` (figures resolved in ``base_dir``); returns the number of pages."""
    import typst

    src = source(blocks, Path(base_dir), title=title, items=items, footer=footer)
    try:
        pdf, warnings = typst.compile_with_warnings(src.encode(), root=str(Path(base_dir).resolve()), format="pdf",
                                                    ignore_system_fonts=True)
    except typst.TypstError as e:  # a bug here, not the user's: say what Typst said
        raise RuntimeError(f"typst could not typeset {path}: {e}") from None
    for w in warnings or []:
        log.debug("typst: %s", w)
    Path(path).write_bytes(pdf)
    return len(re.findall(rb"/Type\s*/Page\b", pdf))
