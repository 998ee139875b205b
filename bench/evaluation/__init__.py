"""Scoring: pooled MEGC2019 metrics, the leakage audit's shortcut scores, per-sample prediction files."""
