"""Study definitions: one YAML per study (see docs/studies.md)."""

from pathlib import Path

STUDY_DIR = Path(__file__).parent


def list_studies() -> list[str]:
    return sorted(p.stem for p in STUDY_DIR.glob("*.yaml"))
