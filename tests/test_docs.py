"""The project's docs point only at files in the project: no path out of the repository (the
steering notes the docs were first written against are not shipped), and every file a doc
names in backticks exists (bare module names anywhere in the tree; generated and runtime files
excepted)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
NAMED = re.compile(r"`([^`\s]+\.(?:py|md|toml|json|html|txt|ya?ml))`")
OUTSIDE = re.compile(r"\.\./|(?<![\w.])/work/")
GENERATED = ("bench/results/",)
"""Written by a run (``python -m bench`` writes its results there)."""
RUNTIME = {"member.json", "report.html", "result.json"}
"""Files a node writes in its data directory, or a chaos run in its run directory."""


def project_files() -> set[str]:
    skip = {".git", ".venv", "__pycache__"}
    return {p.name for p in ROOT.rglob("*") if not skip & set(p.relative_to(ROOT).parts)}


def test_no_doc_points_outside_the_project() -> None:
    found = [
        f"{doc.name}:{n}: {line.strip()}"
        for doc in DOCS
        for n, line in enumerate(doc.read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert found == []


def test_every_file_a_doc_names_exists() -> None:
    names = project_files()
    missing = []
    for doc in DOCS:
        for ref in NAMED.findall(doc.read_text()):
            if any(c in ref for c in "*<") or ref.startswith(GENERATED) or ref in RUNTIME:
                continue
            exists = (ROOT / ref).exists() if "/" in ref else ref in names
            if not exists:
                missing.append(f"{doc.name}: {ref}")
    assert missing == []
