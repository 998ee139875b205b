"""Display names of the representation options (config option -> the name a report prints).

For print only (``bench.report.names``): no config, hash or unit key reads this table, so renaming one
reruns nothing. An option missing here is printed as itself.
"""

NAMES = {
    "single_phase": "single-phase flow",
    "single_phase_offset": "single-phase flow (apex→offset)",
    "cof": "COF",
    "mm_cof": "MM-COF",
    "two_phase_stack": "two-phase stack",
    "strain": "optical strain",
    "stored": "stored channels",
}
