"""The databases a sample table's ``dataset`` column, a precomputed release's source column or a
prediction log's fold header may name, derived from the loaders (nothing here is a hand-kept list).

* Every registered loader's name is a known database (``casme2``, ``mmew``, ``synthetic`` ...).
* Spellings seen in published logs and releases (``CASME_II``, ``SMIC-HS``) are declared by the
  loader of that database (``@register_dataset(aliases=...)``), and ``normalise_database`` maps them,
  case-insensitively, to its name; so are the databases a composite's rows come from (the megc2019
  loader's ``sources``), which the megc2019 protocol and the per-database breakdown compare by name.
  Other names are only stripped (their case is kept).

Read by the precomputed loader (source columns), the megc2019 protocol (``bench.protocols.folds``) and
the prediction files (``bench.evaluation.prediction_files``), all from above. Computed on first use,
since it imports every loader module. ``DATABASE_ALIASES`` and ``KNOWN_DATABASES`` read as constants.
"""

from __future__ import annotations

import functools
from types import MappingProxyType
from typing import Mapping

from bench.data import DATASETS, list_datasets


@functools.lru_cache(maxsize=None)
def database_aliases() -> Mapping[str, str]:
    """Lower-case spelling -> database name, for each database with declared spellings or a composite's
    source (its own name included)."""
    names = list_datasets()  # imports every loader module
    normalised = {n for n in names if DATASETS.get(n).aliases}
    normalised |= {s for n in names for s in DATASETS.get(n).sources}
    out: dict[str, str] = {}
    for db in sorted(normalised):
        spellings = DATASETS.get(db).aliases if db in DATASETS else ()
        for spelling in (db, *spellings):
            if out.setdefault(spelling.lower(), db) != db:
                raise ValueError(f"database spelling {spelling!r} is declared by both {out[spelling.lower()]} and {db}")
    return MappingProxyType(out)


@functools.lru_cache(maxsize=None)
def known_databases() -> frozenset[str]:
    """Every name a database goes by (lower case): the loaders' names and every declared spelling."""
    return frozenset(database_aliases()) | frozenset(list_datasets())


def normalise_database(name: str) -> str:
    """A database's name for one of its spellings (``CASME_II`` -> ``casme2``); other names stripped."""
    return database_aliases().get(str(name).strip().lower(), str(name).strip())


def __getattr__(name: str):
    # the constants of the module these lived in before (bench.evaluation.prediction_files), computed
    # on first use so that importing this module does not import every loader
    if name == "DATABASE_ALIASES":
        return database_aliases()
    if name == "KNOWN_DATABASES":
        return known_databases()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DATABASE_ALIASES", "KNOWN_DATABASES", "database_aliases", "known_databases", "normalise_database"]
