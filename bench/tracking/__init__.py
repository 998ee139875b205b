"""MLflow tracking written from the results table (``python -m bench.tracking backfill RUN``)."""
