"""The study walk behind ``python -m bench.run``: plan -> prepare data once -> units -> tables ->
tracking -> report -> summary, each step one module (``walk.py`` reads as the walk itself)."""
