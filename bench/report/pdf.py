"""Blocks -> an A4 PDF with matplotlib ``PdfPages``.

Why not a typesetter (LaTeX, pandoc, weasyprint): none is a dependency and CI has no TeX; matplotlib
is already required, embeds TrueType fonts (text stays searchable, which the tests rely on), and lays
out the same blocks as the Markdown so both documents say the same thing. The layout here is a
small flowing engine: text is wrapped by measured width, tables are drawn cell by cell (bold best
cells, repeated header when a table continues on the next page), figures are the report's PNGs placed
at no more than their native size, i.e. never below the PNGs' resolution (>= 150 dpi).
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

import matplotlib as mpl
import matplotlib.image as mpimg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure as MplFigure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.textpath import TextToPath

from .document import Block, Bullets, Code, Figure, Heading, PageBreak, Para, Table, plain

A4_W, A4_H = 8.27, 11.69  # inches, portrait
MX, MTOP, MBOT = 0.6, 0.7, 0.75
TEXT_W = A4_W - 2 * MX
BODY_PT = 9.0
MIN_DPI = 150

_T2P = TextToPath()


def text_width_pt(s: str, size: float, weight: str = "normal", family: str = "sans-serif") -> float:
    """Rendered width of ``s`` in points (measured on the real font, not estimated)."""
    if not s:
        return 0.0
    prop = FontProperties(family=family, weight=weight, size=size)
    w, _, _ = _T2P.get_text_width_height_descent(s, prop, ismath=False)
    return float(w)


def wrap(s: str, size: float, width_pt: float, weight: str = "normal", family: str = "sans-serif") -> list[str]:
    """Greedy word wrap by measured width; over-long words are broken by characters."""
    out: list[str] = []
    for para in str(s).split("\n"):
        line = ""
        for word in para.split(" "):
            cand = word if not line else f"{line} {word}"
            if text_width_pt(cand, size, weight, family) <= width_pt + 0.01:  # 0.01: float round-off
                line = cand
                continue
            if line:
                out.append(line)
            line = word
            while text_width_pt(line, size, weight, family) > width_pt + 0.01 and len(line) > 1:
                cut = len(line)
                while cut > 1 and text_width_pt(line[:cut], size, weight, family) > width_pt + 0.01:
                    cut -= 1
                out.append(line[:cut])
                line = line[cut:]
        out.append(line)
    return out


_NBSP = "\u00a0"


def _glue(s: str) -> str:
    """Non-breaking spaces where a line break would split a number from its sign, spread or interval."""
    s = str(s)
    if len(s) <= 14:  # short cells ("< 0.001", "18.0 s") never wrap; long prose cells take the squeeze
        return s.replace(" ", _NBSP)
    s = s.replace(" ± ", f"{_NBSP}±{_NBSP}")
    return re.sub(r"\[[^\]]*\]", lambda m: m.group(0).replace(" ", _NBSP), s)


def _widths(header, rows, bold, size, pad, words: bool) -> list[float]:
    """Per column: the widest cell (``words=False``) or the widest unbreakable word (``words=True``)."""
    def w(text, weight):
        parts = text.split(" ") if words else [text]
        return max(text_width_pt(p, size, weight) for p in parts) + 2 * pad

    out = [w(c, "bold") for c in header]
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            out[j] = max(out[j], w(v, "bold" if (i, j) in bold else "normal"))
    return out


def _fit_columns(header, rows, bold, avail, pad) -> tuple[float, list[float]]:
    """Font size and column widths: unwrapped at 8-7 pt if that fits; else wrap the widest columns
    at word boundaries (water-filling down to their widest word) at 7.5-6 pt; as a last resort
    scale all columns at 6 pt (cells then break inside words)."""
    for size in (8.0, 7.5, 7.0):
        nat = _widths(header, rows, bold, size, pad, False)
        if sum(nat) <= avail:
            return size, nat
    for size in (7.5, 7.0, 6.5, 6.0):
        nat = _widths(header, rows, bold, size, pad, False)
        mins = _widths(header, rows, bold, size, pad, True)
        if sum(mins) > avail:
            continue
        lo, hi = 0.0, max(nat)  # cap c: every column gets min(natural, max(c, its widest word))
        for _ in range(40):
            c = (lo + hi) / 2
            if sum(min(n, max(c, m)) for n, m in zip(nat, mins)) <= avail:
                lo = c
            else:
                hi = c
        return size, [min(n, max(lo, m)) for n, m in zip(nat, mins)]
    nat = _widths(header, rows, bold, 6.0, pad, False)
    return 6.0, [x * avail / sum(nat) for x in nat]


class _Writer:
    def __init__(self, pdf: PdfPages, footer: str):
        self.pdf, self.footer = pdf, footer
        self.fig: MplFigure | None = None
        self.y = 0.0  # inches from the bottom of the page
        self.pages = 0

    # -- pages
    def new_page(self) -> None:
        self.flush()
        self.fig = MplFigure(figsize=(A4_W, A4_H))
        self.pages += 1
        self.y = A4_H - MTOP
        self.fig.text(0.5, 0.35 / A4_H, f"{self.footer} — page {self.pages}", ha="center", va="bottom",
                      fontsize=7, color="0.45")

    def flush(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            self.fig = None

    def room(self) -> float:
        return self.y - MBOT if self.fig is not None else -1.0

    def need(self, h: float) -> None:
        if self.fig is None or h > self.room():
            self.new_page()

    # -- primitives (x, y in inches from the bottom-left corner)
    def put(self, x: float, y: float, s: str, **kw) -> None:
        assert self.fig is not None
        self.fig.text(x / A4_W, y / A4_H, s, va="top", **kw)

    def hline(self, x0: float, x1: float, y: float, lw: float = 0.6, color: str = "0.25") -> None:
        assert self.fig is not None
        self.fig.add_artist(Line2D([x0 / A4_W, x1 / A4_W], [y / A4_H, y / A4_H], lw=lw, color=color,
                                   transform=self.fig.transFigure))

    def box(self, x: float, y: float, w: float, h: float, color: str) -> None:
        assert self.fig is not None
        self.fig.add_artist(Rectangle((x / A4_W, y / A4_H), w / A4_W, h / A4_H, facecolor=color,
                                      edgecolor="none", transform=self.fig.transFigure, zorder=-1))

    # -- blocks
    def lines(self, lines: list[str], size: float, indent: float = 0.0, gap_after: float = 0.08,
              first_prefix: str = "", **kw) -> None:
        lh = size * 1.38 / 72
        for i, ln in enumerate(lines):
            self.need(lh)
            if first_prefix and i == 0:
                self.put(MX + indent - 0.14, self.y, first_prefix, fontsize=size)
            self.put(MX + indent, self.y, ln, fontsize=size, **kw)
            self.y -= lh
        self.y -= gap_after

    def heading(self, b: Heading, follow: float = 1.0) -> None:
        """``follow``: height of the start of the next block, kept on the same page as the heading."""
        size = {1: 16, 2: 13, 3: 10.5}.get(b.level, 10)
        self.need(size * 1.6 / 72 + 0.12 + min(follow, A4_H - MTOP - MBOT - 0.5))
        self.y -= 0.06 if b.level <= 2 else 0.02
        self.lines(wrap(b.text, size, TEXT_W * 72, "bold"), size, weight="bold", gap_after=0.06)
        if b.level <= 2:
            self.hline(MX, MX + TEXT_W, self.y + 0.04, lw=0.5, color="0.6")
            self.y -= 0.04

    def lead_height(self, b: Block | None, base: Path, dpi: int) -> float:
        """Height of the part of ``b`` that must follow a heading on the same page."""
        lh = BODY_PT * 1.38 / 72
        if isinstance(b, Figure):
            _, _, h, _, cap_h = self._fig_layout(b, base, dpi)
            return h + cap_h
        if isinstance(b, Table):
            return 4 * 8 * 1.3 / 72 + 0.3
        if isinstance(b, Para):
            return min(3, len(wrap(plain(b.text), BODY_PT, TEXT_W * 72))) * lh
        if isinstance(b, (Bullets, Code)):
            return 2 * lh
        return 0.5

    def para(self, text: str, size: float = BODY_PT, **kw) -> None:
        self.lines(wrap(plain(text), size, TEXT_W * 72), size, **kw)

    def bullets(self, b: Bullets) -> None:
        for it in b.items:
            self.lines(wrap(plain(it), BODY_PT, (TEXT_W - 0.2) * 72), BODY_PT, indent=0.2, gap_after=0.02,
                       first_prefix="•")
        self.y -= 0.06

    def code(self, b: Code) -> None:
        size = 7.5
        lh = size * 1.35 / 72
        lines = wrap(b.text, size, (TEXT_W - 0.2) * 72, family="monospace")
        for ln in lines:
            self.need(lh)
            self.box(MX, self.y - lh, TEXT_W, lh, "0.94")
            self.put(MX + 0.1, self.y - 0.01, ln, fontsize=size, family="monospace")
            self.y -= lh
        self.y -= 0.1

    def table(self, t: Table) -> None:
        pad = 4.0  # points each side of a cell
        align = t.align or ["l"] * len(t.columns)
        avail = TEXT_W * 72
        header_txt = list(t.columns)
        # Glue "0.602 ± 0.030" and "[0.485, 0.676]" so a narrowed score cell breaks only between them.
        rows_txt = [[_glue(v) for v in row] for row in t.rows]
        size, widths = _fit_columns(header_txt, rows_txt, t.bold, avail, pad)
        lh = size * 1.3 / 72
        x0 = MX
        xs = [x0]
        for w in widths:
            xs.append(xs[-1] + w / 72)

        def cells(row, bold_row=None, header=False):
            out = []
            for j, v in enumerate(row):
                weight = "bold" if header or (bold_row is not None and (bold_row, j) in t.bold) else "normal"
                out.append((wrap(v, size, widths[j] - 2 * pad, weight), weight))
            return out

        def height(rc):
            return max(len(c[0]) for c in rc) * lh + 0.05

        header = cells(header_txt, header=True)

        def draw_row(row_cells, shade=None):
            h = height(row_cells)
            if shade:
                self.box(xs[0], self.y - h, xs[-1] - xs[0], h, shade)
            for j, (lines, weight) in enumerate(row_cells):
                for k, ln in enumerate(lines):
                    yy = self.y - 0.025 - k * lh
                    if align[j] == "r":
                        self.put(xs[j + 1] - pad / 72, yy, ln, fontsize=size, weight=weight, ha="right")
                    else:
                        self.put(xs[j] + pad / 72, yy, ln, fontsize=size, weight=weight)
            self.y -= h

        def start(cont: bool, first_row_h: float):
            self.need(height(header) + first_row_h + 0.25)
            if cont:
                self.put(xs[0], self.y, "(table continued)", fontsize=6.5, color="0.4", style="italic")
                self.y -= 0.14
            self.hline(xs[0], xs[-1], self.y, lw=0.9)
            draw_row(header, shade="0.92")
            self.hline(xs[0], xs[-1], self.y, lw=0.5)

        cap = wrap(plain(t.caption), 7.5, TEXT_W * 72) if t.caption else []
        cap_h = len(cap) * 7.5 * 1.38 / 72 + 0.1
        body = [cells(row, bold_row=i) for i, row in enumerate(rows_txt)]
        start(False, height(body[0]) if body else 0.0)
        for i, rc in enumerate(body):
            h = height(rc) + (cap_h if i == len(body) - 1 else 0.0)  # the caption stays with the last row
            if h > self.room() - 0.05:
                self.hline(xs[0], xs[-1], self.y, lw=0.9)
                self.new_page()
                start(True, height(rc))
            draw_row(rc, shade="0.975" if i % 2 else None)
        self.hline(xs[0], xs[-1], self.y, lw=0.9)
        self.y -= 0.06
        if cap:
            self.lines(cap, 7.5, style="italic", color="0.2")
        self.y -= 0.08

    @staticmethod
    def _fig_layout(b: Figure, base: Path, dpi: int):
        img = mpimg.imread(base / b.path)
        h_px, w_px = img.shape[:2]
        cap = wrap("Figure: " + plain(b.caption), 7.5, TEXT_W * 72)
        cap_h = len(cap) * 7.5 * 1.38 / 72 + 0.22
        max_h = A4_H - MTOP - MBOT - cap_h
        w = min(w_px / dpi, TEXT_W)  # native size at most: the raster is never stretched
        h = w * h_px / w_px
        if h > max_h:
            w, h = w * max_h / h, max_h
        if w_px / w < MIN_DPI - 1e-6:  # pragma: no cover - guarded by ReportOptions.dpi >= 150
            raise ValueError(f"{b.path}: would print at {w_px / w:.0f} dpi (< {MIN_DPI})")
        return img, w, h, cap, cap_h

    def figure(self, b: Figure, base: Path, dpi: int) -> None:
        img, w, h, cap, cap_h = self._fig_layout(b, base, dpi)
        self.need(h + cap_h)
        assert self.fig is not None
        ax = self.fig.add_axes(((MX + (TEXT_W - w) / 2) / A4_W, (self.y - h) / A4_H, w / A4_W, h / A4_H))
        ax.imshow(img, interpolation="none")  # 'none': the PDF embeds the PNG pixels unresampled
        ax.set_axis_off()
        self.y -= h + 0.06
        self.lines(cap, 7.5, style="italic", color="0.2")
        self.y -= 0.1


def title_page(w: _Writer, title: str, subtitle: list[str], contents: list[str]) -> None:
    w.new_page()
    w.y = A4_H - 2.6
    w.lines(wrap(title, 22, TEXT_W * 72, "bold"), 22, weight="bold", gap_after=0.2)
    for s in subtitle:
        w.lines(wrap(s, 10.5, TEXT_W * 72), 10.5, gap_after=0.04, color="0.15")
    w.y -= 0.4
    if contents:
        w.lines(["Contents"], 11, weight="bold", gap_after=0.05)
        for c in contents:
            w.lines(wrap(c, 9.5, (TEXT_W - 0.2) * 72), 9.5, indent=0.2, gap_after=0.0)
    w.flush()


def render(blocks: list[Block], path: Path, base_dir: Path, *, title: str, subtitle: list[str],
           footer: str, dpi: int) -> int:
    """Write the PDF; returns the number of pages."""
    contents = [b.text for b in blocks if isinstance(b, Heading) and b.level == 2]
    # TrueType (42) instead of Type 3 keeps the text extractable (pdftotext) and selectable.
    with mpl.rc_context({"pdf.fonttype": 42, "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}), \
            PdfPages(path, metadata={"Title": title, "Creator": "dualflow-bench report",
                                     "CreationDate": None, "ModDate": None}) as pdf:
        w = _Writer(pdf, footer)
        title_page(w, title, subtitle, contents)
        w.new_page()
        for i, b in enumerate(blocks):
            if isinstance(b, Heading):
                if b.level == 1:
                    continue  # the title page carries the document title
                nxt = blocks[i + 1] if i + 1 < len(blocks) else None
                w.heading(b, w.lead_height(nxt, base_dir, dpi))
            elif isinstance(b, Para):
                w.para(b.text)
            elif isinstance(b, Bullets):
                w.bullets(b)
            elif isinstance(b, Code):
                w.code(b)
            elif isinstance(b, Table):
                w.table(b)
            elif isinstance(b, Figure):
                w.figure(b, base_dir, dpi)
            elif isinstance(b, PageBreak):
                if w.y < A4_H - MTOP - 1e-9:  # never emit a blank page
                    w.new_page()
            else:  # pragma: no cover
                raise TypeError(f"unknown block {type(b).__name__}")
        w.flush()
        return w.pages


def today() -> str:
    return _dt.date.today().isoformat()
