"""The report's sections, in the order they appear.

Each module holds one section: ``build(ctx: ReportContext) -> list[Block]`` (an empty list leaves
the section out), or, for a section shown setting by setting, ``PER_SETTING`` and
``build_setting(ctx, facet)`` (with optional ``lead`` and ``close``), faceted by
``bench.report.build.build_section``. Adding a section is one module here and one line in ``SECTIONS``; anything it
shares with other sections belongs on ``ReportContext`` (bench/report/context.py), never in an
earlier section.
"""

from . import (
    answer, breakdown, composite, confusions, costs, definitions, examples, explanations, failures, headline, intro,
    learning_curves, noise_floor, per_subject, ranks, reproducibility, selected_hparams, shortcuts, significance,
    sweeps,
)

SECTIONS = [
    answer,  # the title, then the answer: what was compared, the verdicts, the compact table (PDF page 1)
    intro,
    composite,  # the MEGC2019 composite's Full / SMIC / CASME II / SAMM table, per source (composites only)
    definitions,
    headline,
    noise_floor,
    breakdown,
    significance,
    shortcuts,
    ranks,  # every representation at once per model: Friedman + Nemenyi, the critical-difference diagram
    per_subject,
    confusions,
    sweeps,
    selected_hparams,  # what nested tuning chose per cell: median [min, max] over outer folds (tuned runs only)
    explanations,
    learning_curves,
    examples,
    costs,
    failures,
    reproducibility,  # the manifest (once), run facts, versions, MLflow, the command: last
]
