"""Security hygiene (issue 7): nothing the suite reads back can execute code, checked two ways.

Statically, over the package source (parsed with ``ast``, so calls split over lines and aliases
count): YAML is loaded safely, every ``torch.load`` passes ``weights_only=True``, no pickle-based
reader touches a file, ``np.load`` never allows pickles, no ``eval``/``exec``/``shell=True``.
Behaviourally: a YAML tag or a pickled object array that would run code is refused by the readers
the suite really uses, and the code never runs. And the README and the runner only ever show
``mlflow ui`` bound to localhost.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bench", "representations", "models", "studies")
SOURCES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
FORBIDDEN_CALLS = {  # dotted name -> why
    "pickle.load": "unpickling a file runs code", "pickle.loads": "unpickling runs code",
    "pickle.Unpickler": "unpickling runs code", "dill.load": "unpickling runs code",
    "cloudpickle.load": "unpickling runs code", "joblib.load": "joblib files are pickles",
    "pandas.read_pickle": "a pickle", "pd.read_pickle": "a pickle", "marshal.loads": "code objects",
    "yaml.unsafe_load": "unsafe YAML", "yaml.full_load": "not the safe loader",
    "eval": "evaluates text as code", "exec": "executes text as code",
}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def calls():
    """(file, line, dotted callee with import aliases resolved, Call node) over the package source."""
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        alias: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    alias[a.asname or a.name] = a.name
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    alias[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = dotted(node.func)
                head, _, rest = name.partition(".")
                name = alias.get(head, head) + (f".{rest}" if rest else "")
                yield path.relative_to(ROOT), node.lineno, name, node


def kw(node: ast.Call, key: str):
    for k in node.keywords:
        if k.arg == key:
            return k.value
    return None


def is_const(node, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def test_the_scan_sees_the_package():
    names = {n for _, _, n, _ in calls()}
    assert len(SOURCES) > 40 and "numpy.load" in names  # the alias resolution works (np -> numpy)


def test_no_forbidden_readers_or_code_evaluation():
    bad = [f"{f}:{line}: {name} ({FORBIDDEN_CALLS[name]})" for f, line, name, _ in calls() if name in FORBIDDEN_CALLS]
    assert not bad, "\n".join(bad)


def test_yaml_load_only_with_a_safe_loader():
    bad = []
    for f, line, name, node in calls():
        if name == "yaml.load":
            loader = kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if dotted(loader) not in ("yaml.SafeLoader", "yaml.CSafeLoader", "SafeLoader", "CSafeLoader"):
                bad.append(f"{f}:{line}")
    assert not bad, f"yaml.load without SafeLoader at {bad} (use yaml.safe_load or OmegaConf.load)"


def test_torch_load_only_with_weights_only():
    bad = [f"{f}:{line}" for f, line, name, node in calls()
           if name == "torch.load" and not is_const(kw(node, "weights_only"), True)]
    assert not bad, f"torch.load without weights_only=True at {bad}"


def test_np_load_never_allows_pickles():
    bad = [f"{f}:{line}" for f, line, name, node in calls()
           if name == "numpy.load" and kw(node, "allow_pickle") is not None and not is_const(kw(node, "allow_pickle"), False)]
    assert not bad, f"np.load with allow_pickle other than False at {bad}"


def test_no_shell_true():
    bad = [f"{f}:{line}" for f, line, name, node in calls()
           if name.startswith("subprocess.") and is_const(kw(node, "shell"), True)]
    assert not bad, f"subprocess with shell=True at {bad}"


# ------------------------------------------------------------------------ behaviour


class _Payload:
    """Unpickling this creates a marker file: proof that code from the file ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_yaml_python_tags_are_refused(tmp_path):
    from omegaconf import OmegaConf

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"x: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    with pytest.raises(Exception):
        OmegaConf.load(evil)  # what bench.core.config uses for study files
    assert not marker.exists()


def test_flow_cache_with_a_pickled_object_is_corrupt_not_run(tmp_path):
    from bench.flow.cache import CacheCorrupt, load_entry

    marker = tmp_path / "pwned"
    entry = tmp_path / "ab" / "entry.npz"
    entry.parent.mkdir()
    np.savez(entry, flows=np.array([_Payload(marker)], dtype=object), meta=np.array("{}"))
    with pytest.raises(CacheCorrupt):
        load_entry(entry, (2, 2, 4, 4))
    assert not marker.exists()


def test_precomputed_flow_file_with_a_pickled_object_is_refused(tmp_path):
    from bench.data.flowfiles import read_flow_file, spec_from_mapping

    marker = tmp_path / "pwned"
    path = tmp_path / "flow.npy"
    np.save(path, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        read_flow_file(str(path), spec_from_mapping(None), None)
    assert not marker.exists()


def test_report_npz_with_a_pickled_object_is_refused(tmp_path):
    from bench.report.load import _read_npz

    marker = tmp_path / "pwned"
    np.savez(tmp_path / "aux.npz", w=np.array([_Payload(marker)], dtype=object))
    with pytest.raises(Exception):
        _read_npz(tmp_path / "aux.npz")
    assert not marker.exists()


MLFLOW_UI = re.compile(r"mlflow\s+ui\b[^\n`]*")  # a command line, up to the end of the line or code span


def test_mlflow_ui_is_documented_bound_to_localhost():
    readme = (ROOT / "README.md").read_text()
    shown = MLFLOW_UI.findall(readme)
    assert shown, "README does not show how to open mlflow ui"
    for cmd in shown:
        assert "--host 127.0.0.1" in cmd, f"README shows {cmd!r} without --host 127.0.0.1"
    for path in SOURCES:  # every hint the code prints or documents
        for cmd in MLFLOW_UI.findall(path.read_text()):
            assert "--host 127.0.0.1" in cmd, f"{path.relative_to(ROOT)} shows {cmd!r} without --host 127.0.0.1"
