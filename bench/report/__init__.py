"""The reporter: a study's run directory -> reports/<study>/report.{md,pdf}, figures/*.png, tables/*.{csv,tex}.

``make_report(run_dir, out_dir=None, options=None)`` is what ``bench.run`` calls at the end of a study;
``python -m bench.report <run dir or study name>`` is the command line.
"""

from .build import make_report
from .load import ReportInputError, load_run, resolve_run_dir
from .tables import ReportOptions

__all__ = ["make_report", "ReportOptions", "ReportInputError", "load_run", "resolve_run_dir"]
