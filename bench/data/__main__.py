"""``python -m bench.data summary dataset=NAME dataset.root=DIR [dataset.key=value ...]`` and ``... list``.

Overrides are composed with the project's Hydra config (``bench.core.config.compose``). The summary checks the
annotation even when no frames are present: missing frames become one summarised problem and bad rows are
reported instead of aborting (set ``dataset.check_frames=true`` / ``dataset.errors=raise`` to be strict).
"""

from __future__ import annotations

import logging
import sys

from bench.data.table import DataError

USAGE = (
    "usage: python -m bench.data summary dataset=NAME [dataset.root=DIR] [dataset.KEY=VALUE ...]\n"
    "       python -m bench.data list\n"
    "\n"
    "exit status:\n"
    "  0    the summary lists no errors (fallbacks and notes may be listed: a study runs with them)\n"
    "  1    the summary was printed and lists errors (rows a study would refuse: its 'error:' problems)\n"
    "  2    nothing to summarise: a bad command line, config or dataset (one 'error: ...' line)"
)


def _explicit_keys(overrides: list[str]) -> list[str]:
    keys = []
    for o in overrides:
        k = o.split("=", 1)[0].lstrip("+~")
        if k.startswith("dataset."):
            keys.append(k[len("dataset."):])
    return keys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, overrides = argv[0], argv[1:]
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if cmd == "list":
        from bench.data import list_datasets
        from bench.data.classes import list_class_sets

        print("datasets:", ", ".join(list_datasets()))
        print("class sets:")
        for k, v in list_class_sets().items():
            print(f"  {k:<10} {v}")
        return 0
    if cmd != "summary":
        print(f"unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
        return 2
    from omegaconf import OmegaConf

    from bench.core.config import compose  # the project's Hydra composition (dataset group + root config)
    from bench.data import load_dataset
    from bench.data.summary import summarize, summary_config

    try:
        cfg = compose(overrides)
        ds = OmegaConf.to_container(cfg.dataset, resolve=True)
        table = load_dataset(summary_config(ds, _explicit_keys(overrides)))
    except (DataError, KeyError, TypeError, ValueError, OSError) as e:
        print(f"error: {' '.join(str(e).split()) or type(e).__name__}", file=sys.stderr)
        return 2
    print(summarize(table))
    # collected errors (errors=collect, the summary's default) are problems prefixed "error: "
    return 1 if any(str(p).startswith("error: ") for p in table.problems) else 0


if __name__ == "__main__":
    sys.exit(main())
