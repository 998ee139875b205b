"""The noise floor as inline SVG, drawn here (no plotting library): one row per cell, a dot per seed.

Hovering a dot names its seed and pooled UF1 (an SVG ``<title>``, which every browser shows as a
tooltip, and which the page's script also shows in its own tooltip). Every label is escaped.
"""

from __future__ import annotations

from html import escape

from ..names import minus

PALETTE = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494", "#ece133",
           "#56b4e9")
ROW, LEFT, RIGHT, TOP, WIDTH = 22, 260, 24, 14, 820


def noise_floor(recs: list[dict], seeds: dict[int, list[list]], setting: str) -> str:
    """The SVG of one setting's cells (grouped by model, the report's order within), or ``""`` when
    no cell of it ran two seeds."""
    mine = [c for c in recs if c["setting"] == setting]
    models = list(dict.fromkeys(c["model"] for c in mine))
    rows = [c for m in models for c in mine if c["model"] == m]
    values = [u for c in rows for _, u in seeds.get(c["id"], []) if u is not None]
    if not values or max(len(seeds.get(c["id"], [])) for c in rows) < 2:
        return ""
    lo, hi = min(values), max(values)
    pad = max(0.02, 0.08 * (hi - lo))
    lo, hi = max(0.0, lo - pad), min(1.0, hi + pad)
    height = TOP + ROW * len(rows) + 34

    def x(u: float) -> float:
        return LEFT + (u - lo) / ((hi - lo) or 1.0) * (WIDTH - LEFT - RIGHT)

    parts = [f'<svg class="noise" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" '
             f'aria-label="{escape(_label(setting))}">']
    parts += _axis(lo, hi, x, TOP + ROW * len(rows))
    for i, c in enumerate(rows):
        parts += _row(c, seeds.get(c["id"], []), TOP + ROW * i + ROW / 2, x,
                      PALETTE[models.index(c["model"]) % len(PALETTE)])
    parts.append("</svg>")
    return "".join(parts)


def _label(setting: str) -> str:
    return f"Pooled UF1 of every seed per cell, {setting}"


def _axis(lo: float, hi: float, x, bottom: float) -> list[str]:
    out = [f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" class="ax"/>']
    n = 5
    for k in range(n + 1):
        u = lo + (hi - lo) * k / n
        out.append(f'<line x1="{x(u):.1f}" y1="{bottom}" x2="{x(u):.1f}" y2="{bottom + 4}" class="ax"/>'
                   f'<text x="{x(u):.1f}" y="{bottom + 16}" class="tick">{u:.3f}</text>')
    out.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.1f}" y="{bottom + 30}" class="tick">'
               "pooled UF1 of each seed</text>")
    return out


def _row(c: dict, dots: list[list], y: float, x, color: str) -> list[str]:
    name = f"{c['rep_name']} × {c['model_name']}"
    out = [f'<g class="cell" data-cell="{c["id"]}"><text x="{LEFT - 8}" y="{y + 4:.1f}" class="lab">'
           f"{escape(minus(name))}</text>"]
    vals = [u for _, u in dots if u is not None]
    n = len(dots)
    for k, (seed, u) in enumerate(dots):
        if u is None:
            continue
        dy = (-5 + 10 * k / (n - 1)) if n > 1 else 0.0  # spread by seed order, so equal scores stay visible
        tip = f"{name}: seed {seed}, UF1 {u:.3f}"
        out.append(f'<circle cx="{x(u):.1f}" cy="{y + dy:.1f}" r="4" fill="{color}" class="dot" '
                   f'data-seed="{seed}" data-uf1="{u:.3f}"><title>{escape(minus(tip))}</title></circle>')
    if vals:
        m = sum(vals) / len(vals)
        out.append(f'<line x1="{x(m):.1f}" y1="{y - 8:.1f}" x2="{x(m):.1f}" y2="{y + 8:.1f}" class="mean">'
                   f"<title>{escape(minus(f'{name}: mean over seeds {m:.3f}'))}</title></line>")
    out.append("</g>")
    return out
