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
    "       python -m bench.data list"
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
    from bench.data.summary import run_summary

    try:
        cfg = compose(overrides)
        ds = OmegaConf.to_container(cfg.dataset, resolve=True)
        print(run_summary(ds, _explicit_keys(overrides)))
    except (DataError, KeyError, TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
