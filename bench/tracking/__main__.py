"""``python -m bench.tracking backfill RUN_DIR``: (re)log a finished run directory to MLflow."""

import sys

try:
    from bench.tracking.mlflow_store import main
except KeyboardInterrupt:  # Ctrl-C while the modules load: nothing was logged yet
    print("interrupted (SIGINT) before anything was logged", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
