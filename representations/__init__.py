"""Motion representations, registered by name: ``create_representation(name, **params)``.

Importing this package registers every representation: each module of it is imported (a new
representation is one file plus its ``bench/conf/representation/<name>.yaml``).
"""

from bench.core.registry import import_plugins

from representations.registry import (
    REPRESENTATIONS,
    build_representation,
    create_representation,
    annotate_exactness,
    exactness_notes,
    list_representations,
    register_representation,
)
from representations.base import Representation, RepresentationOutput, vector_pairs

import_plugins(__name__, __path__)

__all__ = [
    "REPRESENTATIONS", "Representation", "RepresentationOutput", "build_representation", "create_representation",
    "annotate_exactness",
    "exactness_notes",
    "list_representations", "register_representation", "vector_pairs",
]
