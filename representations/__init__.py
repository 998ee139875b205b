"""Motion representations, registered by name: ``create_representation(name, **params)``.

Importing this package registers every representation (one module each).
"""

from representations.registry import (
    REPRESENTATIONS,
    create_representation,
    list_representations,
    register_representation,
)
from representations import cof, mm_cof, single_phase, strain, two_phase_stack  # noqa: F401  (register)
from representations.base import Representation, RepresentationOutput, vector_pairs

__all__ = [
    "REPRESENTATIONS", "Representation", "RepresentationOutput", "create_representation",
    "list_representations", "register_representation", "vector_pairs",
]
