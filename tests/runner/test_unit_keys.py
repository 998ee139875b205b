"""A unit's key is its identity on disk (``units/<key>.json``): resume skips a unit whose key it finds.

A change of code that changes any key silently reruns every study a user has, or worse, keeps a
stale result whose key did not move. So the keys of ``study=smoke`` are recorded in
``tests/fixtures/unit_keys_smoke.json`` with the reason for each change of them: this test fails when
the keys change and the file was not updated, or was updated without a reason. To record a change
that is meant: ``python tests/runner/test_unit_keys.py --update "why the keys changed"``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

RECORD = Path(__file__).resolve().parents[1] / "fixtures" / "unit_keys_smoke.json"


def smoke_keys(cache: Path) -> dict[str, list[str]]:
    """Each planned cell's label -> its cell hash and its units' keys, as ``bench.run`` computes them."""
    from bench.plan.planner import plan_study
    from bench.results.tables import UnitStore
    from bench.runner.prepare import Prepared
    from bench.runner.tasks import RunContext, plan_units

    plan = plan_study(["study=smoke", f"paths.cache={cache}", "tracking=none", "report=false"])
    ctx = RunContext(study="smoke", run_dir=cache / "run", commit="", resume=False, audit=False)
    units = plan_units(plan, Prepared(plan, progress=False), UnitStore(ctx.run_dir), ctx)
    out: dict[str, list[str]] = {c.label: [c.cfg_hash] for c in plan.cells}
    for task in units.tasks:
        out[task.cell].append(task.unit_key)
    return out


def _digest(keys: dict) -> str:
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def test_unit_keys_change_only_with_a_recorded_reason(tmp_path):
    record = json.loads(RECORD.read_text())
    keys = smoke_keys(tmp_path)
    assert keys == record["keys"], (
        "the unit keys of study=smoke changed: every finished unit of every user's run would be redone "
        "(or a stale one kept). If that is meant, record why: python tests/runner/test_unit_keys.py --update 'reason'")
    last = record["history"][-1]
    assert last["keys"] == _digest(record["keys"]) and last["reason"].strip(), \
        "tests/fixtures/unit_keys_smoke.json: its keys were edited without a reason in its history"


def test_the_record_says_why_for_every_change():
    history = json.loads(RECORD.read_text())["history"]
    assert history and all(h["reason"].strip() and len(h["keys"]) == 16 for h in history)


if __name__ == "__main__":  # python tests/runner/test_unit_keys.py --update "reason"
    import tempfile

    if len(sys.argv) != 3 or sys.argv[1] != "--update" or not sys.argv[2].strip():
        sys.exit('usage: python tests/runner/test_unit_keys.py --update "why the unit keys changed"')
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    with tempfile.TemporaryDirectory() as tmp:
        new = smoke_keys(Path(tmp))
    old = json.loads(RECORD.read_text()) if RECORD.exists() else {"history": []}
    history = old["history"] + [{"keys": _digest(new), "reason": sys.argv[2].strip()}]
    RECORD.write_text(json.dumps({"keys": new, "history": history}, indent=1, sort_keys=True) + "\n")
    print(f"recorded {sum(len(v) - 1 for v in new.values())} unit keys of {len(new)} cells in {RECORD}")
