"""The report's sections, in the order they appear.

Each module holds one section: ``build(ctx: ReportContext) -> list[Block]`` (an empty list leaves
the section out), or, for a section shown setting by setting, ``PER_SETTING`` and
``build_setting(ctx, facet)`` (with optional ``lead`` and ``close``), faceted by
``bench.report.build.build_section``. Adding a section is one module here and one line in ``SECTIONS``; anything it
shares with other sections belongs on ``ReportContext`` (bench/report/context.py), never in an
earlier section.
"""

from . import (
    breakdown, composite, confusions, costs, definitions, examples, explanations, facts, failures, headline, intro,
    learning_curves, manifest, noise_floor, per_subject, reproduce, shortcuts, significance, sweeps,
)

SECTIONS = [
    intro,
    composite,  # the MEGC2019 composite's Full / SMIC / CASME II / SAMM table leads (composites only)
    manifest,
    facts,
    definitions,
    headline,
    noise_floor,
    breakdown,
    significance,
    shortcuts,
    per_subject,
    confusions,
    sweeps,
    explanations,
    learning_curves,
    examples,
    costs,
    failures,
    reproduce,
]
