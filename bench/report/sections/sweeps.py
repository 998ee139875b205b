"""Parameter sweeps: score vs a numeric representation parameter (read from ``p_representation_*``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from .. import figures as F
from ..context import Facet, ReportContext, drew
from ..document import Block, Heading, Para
from ..load import axis_params, ordered
from ..words import slug


@dataclass
class Sweep:
    name: str  # the representation's option
    key: str  # the swept numeric parameter
    x: dict[str, float]  # representation label -> parameter value
    tags: dict[str, str]  # label -> the other parameters that vary independently (one line each)
    tied: list[str]  # parameters that change together with ``key`` (e.g. theta2 = 1 - theta1)


def _is_function(pairs: list[tuple]) -> bool:
    seen: dict = {}
    return all(seen.setdefault(a, b) == b for a, b in pairs)


def find_sweeps(params: dict[str, tuple[str, dict]], labels: list[str]) -> list[Sweep]:
    """Numeric parameters that take >= 2 values across cells of one representation option.

    ``params``: label -> (option, {parameter: value}), as ``load.axis_params`` reads them.
    A parameter that is a function of the swept one (theta2 = 1 - theta1) does not split lines, and
    of two parameters that determine each other only the first (alphabetically) gets a figure.
    """
    by_name: dict[str, list[str]] = {}
    for lab in labels:
        by_name.setdefault(params.get(lab, (lab, {}))[0], []).append(lab)
    out = []
    for name, labs in by_name.items():
        if len(labs) < 2:
            continue
        plist = {lab: params.get(lab, (lab, {}))[1] for lab in labs}
        keys = sorted({k for p in plist.values() for k in p})
        done: list[str] = []
        for key in keys:
            num = {lab: float(v) for lab in labs if isinstance(v := plist[lab].get(key), (int, float))
                   and not isinstance(v, bool) and math.isfinite(float(v))}
            if len(set(num.values())) < 2:
                continue
            varying = [k for k in keys if k != key and len({repr(plist[lab].get(k)) for lab in num}) > 1]
            tied = [k for k in varying if _is_function([(num[lab], repr(plist[lab].get(k))) for lab in num])]
            if any(k in done and _is_function([(repr(plist[lab].get(k)), num[lab]) for lab in num]) for k in tied):
                continue  # the mirror image of a sweep already drawn
            free = [k for k in varying if k not in tied]
            tags = {lab: ", ".join(f"{k}={plist[lab].get(k)}" for k in free) for lab in num}
            out.append(Sweep(name, key, num, tags, tied))
            done.append(key)
    return out


def _figure(ctx: ReportContext, f: Facet, sw: Sweep) -> list[Block]:
    rows, head = [], f.head
    for lab, x in sw.x.items():
        for _, r in head[head["representation"] == lab].iterrows():
            tag = sw.tags[lab]
            rows.append({**r.to_dict(), "x": x, "line": r["model"] + (f" ({tag})" if tag else "")})
    sdf = pd.DataFrame(rows)
    base = head[head["representation"] == ctx.base] if ctx.base else None
    pretty = sw.key.replace("theta", "θ")
    kind = "θ sweep" if "theta" in sw.key.lower() else "Parameter sweep"
    tied = f" ({', '.join(k.replace('theta', 'θ') for k in sw.tied)} set with it)" if sw.tied else ""
    return ctx.figure(
        F.sweep_plot, f.stem(f"sweep_{slug(sw.name)}_{slug(sw.key)}"),
        f"{kind} of {sw.name} over {pretty}{tied}{f.suffix}: pooled UF1 and UAR per model, "
        f"band = {ctx.opts.ci_level:.0%} subject-bootstrap CI"
        + (f"; dashed: the baseline {ctx.base} with the same model" if base is not None and len(base) else "")
        + ".", sdf, sw.key, ordered(sdf["line"]), baseline=base)


PER_SETTING = True


def lead(ctx: ReportContext) -> list[Block]:
    return [Heading("Parameter sweeps")]


def build_setting(ctx: ReportContext, f: Facet) -> list[Block]:
    params = axis_params(f.results, "representation")
    return [b for sw in find_sweeps(params, f.reps_in(f.head)) for b in _figure(ctx, f, sw)]


def close(ctx: ReportContext, faceted: list[Block]) -> list[Block]:
    if drew(faceted):
        return []
    return [Para("No sweep figure: no two cells use the same representation with different values of "
                 "a numeric parameter (e.g. `cof[theta1=0.3]` and `cof[theta1=0.5]`).")]
