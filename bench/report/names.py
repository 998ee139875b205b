"""Display names for the report: one table per plugin kind, keyed by the config option.

The representations' and models' tables live beside their plugins (``representations/display_names.py``,
``models/display_names.py``); datasets, source databases and flows are here.

They are for print only. No hashed config, unit key or results column ever sees them (the report
reads them when it writes a table or a figure; the CSV tables keep the labels the runner wrote), so
renaming one here changes no unit key and reruns nothing. An option that is not in its table is shown
as itself. A study label that starts with its option keeps the rest as written
(``cof[theta1=0.3]`` → ``COF[theta1=0.3]``); any other label is shown as the study wrote it.
"""

from __future__ import annotations

from models.display_names import NAMES as MODEL
from representations.display_names import NAMES as REPRESENTATION

DATASET = {
    "casme2": "CASME II",
    "casme3": "CAS(ME)³",
    "samm": "SAMM",
    "smic": "SMIC",
    "mmew": "MMEW",
    "megc2019": "MEGC2019 composite",
    "megc2019_causalnet": "MEGC2019 composite (CausalNet release)",
    "megc2019_htnet": "MEGC2019 composite (HTNet release)",
    "synthetic": "synthetic",
    "synthetic_release": "synthetic release",
}
FLOW = {"farneback": "Farnebäck", "tvl1": "TV-L1", "dis": "DIS", "precomputed": "precomputed"}
TABLES = {"representation": REPRESENTATION, "model": MODEL, "dataset": DATASET, "source": DATASET, "flow": FLOW}

MINUS = "\u2212"


def display(label: str, kind: str, option: str | None = None) -> str:
    """The print name of an axis label (``kind``: representation, model, dataset, source or flow);
    ``option``: the label's config option when it differs from the label (``p_<axis>``)."""
    table, label = TABLES[kind], str(label)
    if label in table:
        return table[label]
    if option and option in table and label.startswith(option):
        return table[option] + label[len(option):]
    return label


def signed(x: float, nd: int = 3) -> str:
    """A signed number with a true minus sign (U+2212): ``+0.006``, ``−0.112``; never ``−0.000``."""
    s = f"{x:+.{nd}f}"
    if float(s) == 0:
        s = f"+{0:.{nd}f}"
    return s.replace("-", MINUS)


def minus(text: str) -> str:
    """``text`` with each hyphen-minus that stands before a digit (a negative number) made U+2212."""
    import re

    return re.sub(r"(?<![\w.])-(?=\.?\d)", MINUS, str(text))
