"""The documentation (issue 23): a README for users that stays short and whose links resolve, and a
docs/ site that builds offline with ``mkdocs build --strict`` (a broken link, a missing anchor or an
API page whose module moved fails it)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from studies import list_studies

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 250

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:  # a parent package is missing
        return True


# mkdocs, mkdocs-material, mkdocstrings and its python handler (mkdocstrings-python)
MISSING_DOCS_TOOLS = [m for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python") if _missing(m)]


def _links(text: str) -> list[str]:
    """Targets of the Markdown inline links outside code blocks and code spans."""
    return LINK.findall(CODE_SPAN.sub("", FENCE.sub("", text)))


def _github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = CODE_SPAN.sub(lambda m: m.group(0).strip("`"), heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, (f"README.md has {n} lines (at most {MAX_README_LINES}): move the detail "
                                   "into a docs/ page and link it")


def test_every_relative_link_in_the_readme_resolves():
    text = README.read_text()
    headings = {_github_slug(h) for h in re.findall(r"^#+ (.+)$", FENCE.sub("", text), re.M)}
    broken = []
    for target in _links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        if not path:
            if anchor not in headings:
                broken.append(f"{target} (no such heading in README.md)")
            continue
        file = (README.parent / path).resolve()
        if not file.exists():
            broken.append(f"{target} (no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file})")
        elif anchor and file.suffix == ".md":
            slugs = {_github_slug(h) for h in re.findall(r"^#+ (.+)$", FENCE.sub("", file.read_text()), re.M)}
            if anchor not in slugs:
                broken.append(f"{target} (no such heading in {path})")
    assert not broken, "README.md links that do not resolve:\n" + "\n".join(broken)
    assert any(t.startswith("docs/") for t in _links(text)), "README.md links no docs/ page"


def test_docs_study_table_names_every_study():
    """docs/studies.md repeats the README's study table; both name exactly the studies in studies/."""
    text = (DOCS / "studies.md").read_text()
    named = {line.split("`")[1] for line in text.splitlines() if line.startswith("| `")}
    assert named == set(list_studies())


def test_api_pages_name_modules_that_exist():
    """Each ``::: module`` of the API reference is a module of the tree (fails fast, without mkdocs,
    when a module moves)."""
    missing = []
    for page in sorted((DOCS / "api").glob("*.md")):
        for mod in re.findall(r"^::: ([\w.]+)", page.read_text(), re.M):
            base = ROOT.joinpath(*mod.split("."))
            if not (base.with_suffix(".py").exists() or (base / "__init__.py").exists()):
                missing.append(f"{page.relative_to(ROOT)}: {mod}")
    assert not missing, "API pages name modules that do not exist:\n" + "\n".join(missing)


@pytest.mark.skipif(bool(MISSING_DOCS_TOOLS),
                    reason=f"documentation tools not installed ({', '.join(MISSING_DOCS_TOOLS)}): "
                           "pip install -e '.[docs]' (the dev extra has them)")
def test_site_builds_strict(tmp_path):
    out = tmp_path / "site"
    # not -q: it would hide the warnings that --strict turns into a failure
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert (out / "index.html").exists()
    training = (out / "api" / "training" / "index.html").read_text()
    assert 'id="bench.training.engine.fit"' in training, "the API reference did not render engine.fit's docstring"
