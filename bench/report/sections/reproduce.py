"""Reproducing this report: the command line, with every non-default option."""

from __future__ import annotations

from ..context import ReportContext
from ..document import Block, Code, Heading
from ..tables import ReportOptions

FLAGS = (("baseline", "--baseline"), ("n_boot", "--n-boot"), ("seed", "--seed"), ("ci_level", "--ci"),
         ("min_pairs", "--min-pairs"), ("alpha", "--alpha"))


def build(ctx: ReportContext) -> list[Block]:
    o, defaults = ctx.opts, ReportOptions()
    cmd = f"python -m bench.report {ctx.run.run_dir} --out {ctx.out}"
    for k, flag in FLAGS:
        if getattr(o, k) != getattr(defaults, k):
            cmd += f" {flag} {getattr(o, k)}"
    return [Heading("Reproducing this report"), Code(cmd)]
