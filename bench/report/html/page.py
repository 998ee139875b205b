"""report.html's markup: the answer (the report's own blocks), the table of every cell, the noise
floor, the verdicts, the drill-down panel, and the data and script the page reads, all inline.

Escaping: every string from the run (labels, class names, study names) is written with
``html.escape`` (text and attributes alike); the data the script reads is JSON inside
``<script type="application/json">`` with every ``<``, ``>`` and ``&`` written as a ``\\u`` escape, so no
label can close the element; the script puts data into the page with ``textContent`` only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html import escape
from importlib import resources

from ..document import Block, Bullets, Code, Contents, Heading, Para, Table
from ..names import minus

_CODE = re.compile(r"(`+)(.+?)\1", re.S)


def inline(s) -> str:
    """Markdown inline text (``**bold**``, ``*em*``, ```code```) as escaped HTML, minus signs as the
    Markdown writes them (``names.minus``)."""
    s, out, last = str(s), [], 0
    for m in _CODE.finditer(s):
        out += [_emphasis(escape(minus(s[last:m.start()]), quote=False)),
                f"<code>{escape(m.group(2), quote=False)}</code>"]
        last = m.end()
    out.append(_emphasis(escape(minus(s[last:]), quote=False)))
    return "".join(out)


def _emphasis(s: str) -> str:
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    return re.sub(r"(?<!\*)\*(?!\*)(.+?)(?<!\*)\*(?!\*)", r"<em>\1</em>", s)


def table_html(t: Table, cls: str = "") -> str:
    """A report ``Table`` block as an HTML table (bold cells ``<strong>``, right-aligned columns)."""
    align = t.align or ["l"] * len(t.columns)
    head = "".join(f'<th class="{"r" if a == "r" else "l"}">{inline(c)}</th>' for c, a in zip(t.columns, align))
    body = []
    for i, row in enumerate(t.rows):
        tds = []
        for j, v in enumerate(row):
            text = inline(str(v).replace("\n", " "))
            tds.append(f'<td class="{"r" if align[j] == "r" else "l"}">'
                       + (f"<strong>{text}</strong>" if (i, j) in t.bold else text) + "</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    cap = f"<caption>{inline(t.caption)}</caption>" if t.caption else ""
    return (f'<table class="{cls}">{cap}<thead><tr>{head}</tr></thead><tbody>' + "".join(body)
            + "</tbody></table>")


def blocks_html(blocks: list[Block]) -> str:
    """Headings, paragraphs, bullets, code and tables; figures and formulas are the PDF's and the
    Markdown's (the page draws its own)."""
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{inline(' '.join(str(b.text).split()))}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{inline(it)}</li>" for it in b.items) + "</ul>")
        elif isinstance(b, Code):
            out.append(f"<pre><code>{escape(str(b.text), quote=False)}</code></pre>")
        elif isinstance(b, Table):
            out.append(table_html(b, "block"))
    return "\n".join(out)


def answer_blocks(blocks: list[Block]) -> list[Block]:
    """The report's opening (the answer section): every block before the table of contents."""
    out = []
    for b in blocks:
        if isinstance(b, Contents):
            break
        out.append(b)
    return out


COLUMNS = (("setting", "Dataset", "l"), ("rep_name", "Representation", "l"), ("model_name", "Model", "l"),
           ("n_seeds", "Seeds", "r"), ("uf1", "UF1", "r"), ("uf1_ci", "UF1 interval", "r"), ("uar", "UAR", "r"),
           ("uar_ci", "UAR interval", "r"), ("acc", "Accuracy", "r"), ("acc_ci", "Accuracy interval", "r"),
           ("duf1", "ΔUF1 [interval]", "r"), ("verdict", "Verdict", "l"))


def cells_table(recs: list[dict]) -> str:
    """Every cell: one row each, ``data-*`` attributes holding the axes and the numbers it sorts by."""
    head = "".join(f'<th class="{a}" data-key="{k}" data-type="{"text" if a == "l" else "num"}" tabindex="0">'
                   f'{escape(name)}<span class="arrow"></span></th>' for k, name, a in COLUMNS)
    rows = [_cell_row(c) for c in recs]
    return ('<div class="scroll"><table id="cells" class="cells"><thead><tr>' + head
            + "<th>Details</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


def _cell_row(c: dict) -> str:
    verdict = "baseline" if c["baseline"] else c.get("verdict", "—")
    shown = {"setting": c["setting"], "rep_name": c["rep_name"],
             "model_name": c["model_name"] + (" †" if c["failed_folds"] else ""),
             "n_seeds": str(c["n_seeds"]), "uf1": c["uf1_text"], "uf1_ci": c["uf1_ci"], "uar": c["uar_text"],
             "uar_ci": c["uar_ci"], "acc": c["acc_text"], "acc_ci": c["acc_ci"],
             "duf1": c.get("duf1_text", "—"), "verdict": verdict}
    sort = {"n_seeds": c["n_seeds"], "uf1": c["uf1"], "uar": c["uar"], "acc": c["acc"], "duf1": c.get("duf1"),
            "uf1_ci": c["uf1"], "uar_ci": c["uar"], "acc_ci": c["acc"]}
    tds = []
    for k, _, a in COLUMNS:
        v = sort.get(k)
        attr = f' data-v="{v!r}"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
        tds.append(f'<td class="{a} c-{k}"{attr}>{escape(minus(shown[k]), quote=False)}</td>')
    attrs = (f'data-cell="{c["id"]}" data-setting="{escape(c["setting"])}" data-rep="{escape(c["rep"])}" '
             f'data-model="{escape(c["model"])}" data-verdict="{escape(verdict)}"')
    return (f"<tr {attrs}>" + "".join(tds) + f'<td><button type="button" class="open" data-cell="{c["id"]}">'
            "open</button></td></tr>")


def filters(recs: list[dict]) -> str:
    """One selector per axis (dataset, representation, model) and one for the verdict."""
    out = []
    for key, name, label in (("setting", "setting", "Dataset"), ("rep", "rep_name", "Representation"),
                             ("model", "model_name", "Model"), ("verdict", "verdict", "Verdict")):
        opts = {}
        for c in recs:
            v = ("baseline" if c["baseline"] else c.get("verdict", "—")) if key == "verdict" else c[key]
            opts.setdefault(v, c[name] if key != "verdict" else v)
        options = "".join(f'<option value="{escape(v)}">{escape(minus(s), quote=False)}</option>'
                          for v, s in opts.items())
        out.append(f'<label>{label} <select data-filter="{key}"><option value="">all</option>{options}</select>'
                   "</label>")
    return ('<div class="filters">' + "".join(out) + '<span id="shown"></span></div>')


def data_script(payload: dict) -> str:
    """The page's data as JSON no label can break out of (``<``, ``>``, ``&`` as ``\\u`` escapes)."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f'<script type="application/json" id="report-data">{text}</script>'


def asset(name: str) -> str:
    """An inlined asset of this package (``report.css``, ``report.js``)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def page(title: str, body: str, payload: dict) -> str:
    """The whole document: no external reference of any kind (a Content-Security-Policy forbids any,
    and lets no script run but the page's own)."""
    css = asset("report.css").replace("</", "<\\/")
    js = asset("report.js").replace("</", "<\\/")
    # only this page's own script runs (its hash): no inline handler, even one a label smuggled in
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; img-src data:; "
           "connect-src 'none'; font-src 'none'; form-action 'none'; base-uri 'none'")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title, quote=False)}</title><style>{css}</style></head>\n<body>\n{body}\n"
            f"{data_script(payload)}\n<script>{js}</script>\n</body></html>\n")
