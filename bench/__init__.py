"""dualflow-bench: micro-expression recognition benchmark (see README)."""

__version__ = "0.1.0"
