"""``python -m bench.tracking backfill RUN_DIR``: (re)log a finished run directory to MLflow."""

import sys

from bench.tracking.mlflow_store import main

sys.exit(main())
