"""The report's sections, in the order they appear.

Each module holds one section: ``build(ctx: ReportContext) -> list[Block]`` (an empty list leaves
the section out). Adding a section is one module here and one line in ``SECTIONS``; anything it
shares with other sections belongs on ``ReportContext`` (bench/report/context.py), never in an
earlier section.
"""

from . import (
    breakdown, confusions, costs, examples, explanations, facts, failures, headline, intro, per_subject,
    reproduce, significance, sweeps,
)

SECTIONS = [
    intro,
    facts,
    headline,
    breakdown,
    significance,
    per_subject,
    confusions,
    sweeps,
    explanations,
    examples,
    costs,
    failures,
    reproduce,
]
