"""The package's shape: imports only go down the floors of the walk, no circle, and short functions.

The floors, bottom to top, are the walk of a study read from below (docs/layout.md): a
module may import its own floor and the floors under it, never one above, lazily or not. A
function of the package over ``MAX_FUNCTION_LINES`` is a spine that should read as named steps.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bench", "representations", "models", "studies")

# (floor name, module prefixes), bottom first. A module belongs to the floor of its longest prefix.
FLOORS = [
    ("core", ("bench.core", "bench.compat", "bench", "studies")),
    ("runtime", ("bench.runtime",)),
    ("data", ("bench.data",)),
    ("flow", ("bench.flow",)),
    ("representation", ("representations",)),
    ("protocols", ("bench.protocols",)),
    ("models", ("models",)),
    ("records", ("bench.results",)),
    ("evaluation", ("bench.evaluation",)),
    ("training", ("bench.training",)),
    ("plan", ("bench.plan",)),
    ("tracking", ("bench.tracking",)),
    ("report", ("bench.report",)),
    ("runner", ("bench.runner",)),
    ("commands", ("bench.run", "bench.score", "bench.data.__main__", "bench.report.__main__",
                  "bench.tracking.__main__")),
]
MAX_FUNCTION_LINES = 80


def _floor(module: str) -> int:
    best, floor = -1, -1
    for i, (_, prefixes) in enumerate(FLOORS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, floor = len(p), i
    return floor


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    """Every project module ``module`` imports, at the top or inside a function."""
    found = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_pkg else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)  # ``from bench.data import table``
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _known(name: str, modules: dict) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_every_module_has_a_floor():
    homeless = [m for m in _modules() if _floor(m) < 0]
    assert not homeless, f"modules outside every floor (add them to FLOORS): {homeless}"


def test_no_import_climbs_a_floor():
    modules = _modules()
    climbs = []
    for mod, path in modules.items():
        for imp in _imports(mod, path):
            target = _known(imp, modules)
            if target and _floor(target) > _floor(mod):
                climbs.append(f"{mod} ({FLOORS[_floor(mod)][0]}) imports {target} ({FLOORS[_floor(target)][0]})")
    assert not climbs, "imports that climb a floor:\n  " + "\n  ".join(sorted(set(climbs)))


def test_no_import_circle():
    modules = _modules()
    graph = {m: {t for i in _imports(m, p) if (t := _known(i, modules)) and t != m} for m, p in modules.items()}
    # a package importing its own submodules (an __init__ re-export) is not a circle of the walk
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (cycle := visit(t)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            pytest.fail("import circle: " + " -> ".join(cycle))


def test_functions_read_as_named_steps():
    long = []
    for mod, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{mod}.{node.name}: {n} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them into named steps):\n  " + "\n  ".join(long)


def test_the_floor_checks_see_a_climb(tmp_path):
    """The checker itself: an import from a higher floor is found, a lower one is not."""
    low = tmp_path / "low.py"
    low.write_text("from bench.runner.walk import run_study\nfrom bench.core.config import compose\n")
    found = {_known(i, _modules()) for i in _imports("bench.data.low", low)}
    assert {_floor(t) for t in found} == {_floor("bench.runner.walk"), _floor("bench.core.config")}
    assert max(_floor(t) for t in found) > _floor("bench.data.low")


# Test folders that are not a role of bench/: hostile input, slow science checks, the speed harness,
# the project itself (layout, docs), shared helpers and recorded fixtures.
TEST_EXTRAS = {"faults", "science", "benchmarks", "project", "helpers", "fixtures"}


def test_tests_mirror_the_package():
    """Every test sits in a folder named after a role of bench/ (or one of TEST_EXTRAS), none at the top."""
    tests = ROOT / "tests"
    roles = {p.name for p in (ROOT / "bench").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    roles |= {"representations", "models", "runtime"}
    stray = sorted(p.name for p in tests.glob("test_*.py"))
    assert not stray, f"tests at the top of tests/ (move them into tests/<role>/): {stray}"
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    unknown = sorted(folders - roles - TEST_EXTRAS)
    assert not unknown, f"test folders that name no role of bench/: {unknown}"
    bare = sorted(f for f in folders - {"fixtures"} if not (tests / f / "__init__.py").exists())
    assert not bare, f"test folders without __init__.py (test module names would collide): {bare}"
