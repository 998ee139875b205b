"""Issue 12, items 1, 7, 8, 9 and 14: nothing stale, nothing trusted blindly, the command line wins.

- a unit's key covers what the data *is* (sample table rows and the flows' content keys), so an
  edited annotation reruns the units it affects and a moved cache reruns nothing;
- duplicate or same-labelled axis items are refused at plan time;
- every unit record is validated before it is resumed or tabled (the file is named, the unit redone);
- a key on the command line beats a study item's params; an empty seed list and a broken study
  file are refused for what they are.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import bench.core.config
import studies
from bench.core.config import ConfigError
from bench.data import load_dataset
from bench.results.tables import UnitStore, read_tables
from bench.run import main, run_study
from bench.plan.planner import plan_study

TINY = ["trainer.epochs=1", "flow.size=32", "tracking=none", "report=false", "progress=false",
        "executor.workers=1"]


def _generic_copy(tmp_path: Path, session_cache: Path) -> Path:
    """A tiny synthetic set written to disk, copied into a user folder read by the generic loader."""
    table = load_dataset({"name": "synthetic", "cache_dir": str(session_cache / "synthetic"), "n_subjects": 3,
                          "clips_per_class": 1, "size": 48, "n_frames": [8, 10]})
    src = Path(table.source).parent
    dst = tmp_path / "mydata"
    shutil.copytree(src, dst)
    return dst


def _run_generic(root: Path, tmp_path: Path, cache: Path, capsys) -> tuple[Path, str]:
    run_dir = run_study(["study=smoke", "dataset=generic", f"dataset.root={root}", "study.representations=[single_phase]",
                         *TINY, f"paths.cache={cache}", f"paths.runs={tmp_path / 'runs'}"])
    return run_dir, capsys.readouterr().out


def test_editing_the_labels_reruns_the_affected_units_and_the_table_follows(tmp_path, session_cache, capsys):
    root = _generic_copy(tmp_path, session_cache)
    run_dir, _ = _run_generic(root, tmp_path, session_cache, capsys)
    _, preds = read_tables(run_dir)
    ann = root / "annotations.csv"
    lines = ann.read_text().splitlines()
    i = next(j for j, line in enumerate(lines) if line.startswith("s01,") and ",negative," in line)
    lines[i] = lines[i].replace(",negative,", ",positive,")  # fix one label of subject s01
    ann.write_text("\n".join(lines) + "\n")
    clip = lines[i].split(",")[1]
    run_dir, out = _run_generic(root, tmp_path, session_cache, capsys)
    # s01 trains every other fold and is tested in its own: under LOSO every unit is affected
    assert "resume:" not in out or "0 finished unit(s)" in out
    _, after = read_tables(run_dir)
    classes = json.loads((run_dir / "run.json").read_text())["classes"]
    before_y = preds.set_index("clip").loc[clip, "y_true"]
    assert classes[before_y] == "negative" and classes[after.set_index("clip").loc[clip, "y_true"]] == "positive"
    # the same data again: nothing reruns
    _, out = _run_generic(root, tmp_path, session_cache, capsys)
    assert "3 finished unit(s) found" in out and ", 0 to run" in out


def test_moving_the_cache_or_the_data_reruns_nothing(tmp_path, session_cache, capsys):
    root = _generic_copy(tmp_path, session_cache)
    _run_generic(root, tmp_path, tmp_path / "cache_a", capsys)
    moved = tmp_path / "elsewhere"
    shutil.move(str(root), moved)
    _, out = _run_generic(moved, tmp_path, tmp_path / "cache_b", capsys)
    assert "3 finished unit(s) found" in out and ", 0 to run" in out


# ------------------------------------------------------------------------------- item 7

@pytest.mark.parametrize("axis,value,match", [
    ("representations", "[single_phase,single_phase]", "are the same"),
    ("representations", "[{option: cof, label: cof, params: {theta1: 0.2}},{option: cof, label: cof, params: {theta1: 0.8}}]",
     "share the label 'cof'"),
    ("models", "[ststnet,{option: ststnet, label: again}]", "are the same"),
    ("models", "[ststnet,{option: ststnet, label: again, params: {dropout: 0.5}}]", "have the same config"),
])
def test_duplicate_or_same_labelled_items_are_refused_at_plan_time(axis, value, match):
    with pytest.raises(ConfigError, match=match):
        plan_study(["study=smoke", f"study.{axis}={value}"])


# ------------------------------------------------------------------------------- item 8

@pytest.mark.parametrize("damage,problem", [
    (lambda rec: b"\x89\xff random bytes \x00", "unreadable"),
    (lambda rec: json.dumps({**rec, "predictions": []}).encode(), "but 0 prediction(s)"),
    (lambda rec: json.dumps({**rec, "predictions": [{**p, "prob_0": float("nan")} for p in rec["predictions"]]}).encode(),
     "non-finite probabilities"),
    (lambda rec: json.dumps({**rec, "row": {k: v for k, v in rec["row"].items() if k != "n_test"}}).encode(),
     "lacks n_test"),
])
def test_a_damaged_unit_file_is_named_and_redone(tmp_path, session_cache, capsys, damage, problem):
    ovs = ["study=smoke", "study.representations=[single_phase]", *TINY, f"paths.cache={session_cache}",
           "study.datasets=[{option: synthetic, label: synthetic, params: {n_subjects: 3, clips_per_class: 1, size: 48}}]",
           f"paths.runs={tmp_path / 'runs'}"]
    run_dir = run_study(ovs)
    _, ref = read_tables(run_dir)
    unit = sorted((run_dir / "units").glob("*.json"))[1]
    unit.write_bytes(damage(json.loads(unit.read_text())))
    capsys.readouterr()
    run_study(ovs)
    out = capsys.readouterr().out
    assert f"resume: {unit} is not a valid unit record" in out and problem in out
    assert "2 finished unit(s) found" in out and ", 1 to run" in out
    results, preds = read_tables(run_dir)
    assert len(preds) == len(ref) and (results["status"] == "ok").all()
    assert UnitStore(run_dir).load(unit.stem) is not None  # redone and valid again


# ------------------------------------------------------------------------------- item 9

def test_the_command_line_beats_a_study_items_params():
    plain = plan_study(["study=smoke"])
    over = plan_study(["study=smoke", "dataset.n_subjects=6"])
    assert {c.cfg["dataset"]["n_subjects"] for c in plain.cells} == {4}
    assert {c.cfg["dataset"]["n_subjects"] for c in over.cells} == {6}
    assert {c.cfg_hash for c in plain.cells}.isdisjoint({c.cfg_hash for c in over.cells})
    # an unlabelled item's label shows the value it really runs with
    theta = plan_study(["study=ablation_theta", "representation.theta1=0.5", "study.models=[ststnet]",
                        "study.representations=[single_phase,{option: cof, params: {theta1: 0.3, theta2: 0.7}}]"])
    assert [c.representation.name for c in theta.cells] == ["single_phase", "cof[theta1=0.5,theta2=0.7]"]


# ------------------------------------------------------------------------------ item 14

def test_an_empty_seed_list_says_so():
    with pytest.raises(ConfigError, match="study.seeds is empty"):
        plan_study(["study=smoke", "study.seeds=[]"])


def test_a_broken_study_file_blocks_only_itself(tmp_path, monkeypatch, capsys):
    for p in studies.STUDY_DIR.glob("*.yaml"):
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "broken.yaml").write_text("name: broken\nmodels: [ststnet\n")  # unclosed list
    monkeypatch.setattr(studies, "STUDY_DIR", tmp_path)
    monkeypatch.setattr(bench.core.config, "_registered", False)
    monkeypatch.setattr(bench.core.config, "_broken_studies", {})
    assert plan_study(["study=smoke"]).cells
    assert main(["study=broken", "--plan"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read study file ") and "broken.yaml" in err
