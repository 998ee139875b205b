"""Evaluation protocols: outer folds, inner validation and tuning splits, and the leak guard."""
