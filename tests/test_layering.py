"""The layering of ``docs/architecture.md``: no module of a layer imports a layer above it.

Every ``import`` in the package is read (module level, inside functions, and under
``TYPE_CHECKING``: a type-only import of a layer above is still a dependency on it), and each
module is ranked by the layer it belongs to. The chain of the diagram is read from the doc, so
the doc and this test cannot drift apart.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ember"

CHAIN = ["actors", "transport", "mesh", "consensus", "registry", "contracts", "chaos", "cli"]
"""The diagram's chain, lowest first (checked against the doc below)."""

RANKS: dict[str, float] = {
    # What every layer may use: errors, validation helpers, rate-limited logging, task helpers.
    "ember._errors": 0,
    "ember._checks": 0,
    "ember._ratelog": 0,
    "ember._tasks": 0,
    "ember._skew": 0,  # the node's timers at a rate (clock-skew through the fault hook)
    "ember.actors": 1,
    # "imported by layers, imports only actors"
    "ember.observability": 1.5,
    "ember.transport": 2,
    "ember.mesh": 3,
    # The protocol a service reaches its node through: it names the transport's and the
    # mesh's types, and every service above the mesh imports it.
    "ember._services": 3.5,
    "ember.consensus": 4,
    "ember.registry": 5,
    "ember.contracts": 6,
    # The node: the transport, the mesh and every service, composed.
    "ember._node": 6.5,
    # The simulator, the checker and the local clusters of node processes, on the node.
    # The package's __init__: the public names of the layers up to the node.
    "ember": 6.7,
    "ember.testing": 6.8,
    "ember.chaos": 7,
    "ember.cli": 8,
    "ember.__main__": 9,
}

SEAM = "ember._services"
"""Type-only imports of the service protocol are allowed from any layer (observability's
admin service is handed a ``ServiceNode`` too)."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def rank(module: str) -> float:
    """The rank of the layer ``module`` belongs to (its longest ranked prefix)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in RANKS:
            return RANKS[prefix]
    raise AssertionError(f"module {module} belongs to no layer: add it to RANKS")


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[str, int, bool]]:
    """``(imported module, line, type_only)`` for every import of ``ember`` in the ``source``
    of ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(source, module)
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                type_only.update(id(n) for n in ast.walk(inner))
    out: list[tuple[str, int, bool]] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            # `from .. import actors` imports the subpackage, not the package's __init__.
            subs = [f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")]
            targets = subs if len(subs) == len(node.names) else [target]
        for t in targets:
            if t == "ember" or t.startswith("ember."):
                out.append((t, node.lineno, id(node) in type_only))
    return out


def test_the_chain_is_the_one_in_the_architecture_doc():
    text = (ROOT / "docs" / "architecture.md").read_text()
    line = next(x for x in text.splitlines() if x.startswith("cli ─►"))
    assert re.split(r"\s*─►\s*", line.strip()) == list(reversed(CHAIN))
    assert [RANKS[f"ember.{layer}"] for layer in CHAIN] == sorted(
        RANKS[f"ember.{layer}"] for layer in CHAIN
    )


def test_no_module_imports_a_layer_above_its_own():
    upward: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        own = rank(module)
        for target, line, type_only in imports(
            path.read_text(), module, path.name == "__init__.py"
        ):
            if type_only and target == SEAM:
                continue
            if rank(target) > own:
                kind = " (type-only)" if type_only else ""
                upward.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {target}{kind}")
    assert not upward, "imports of a layer above:\n" + "\n".join(upward)


def test_the_checker_sees_upward_imports_wherever_they_are():
    # The check must be able to fail: the chaos layer importing the CLI, as it once did (in a
    # function, and for types only), and the kernel importing the node.
    source = (
        "from typing import TYPE_CHECKING\n"
        "from .. import actors\n"
        "if TYPE_CHECKING:\n"
        "    from ..cli._cluster import LocalCluster\n"
        "def f():\n"
        "    from ..cli._cluster import LocalCluster\n"
    )
    found = imports(source, "ember.chaos._probe")
    assert found == [
        ("ember.actors", 2, False),
        ("ember.cli._cluster", 4, True),
        ("ember.cli._cluster", 6, False),
    ]
    assert [rank(t) > rank("ember.chaos._probe") for t, _, _ in found] == [False, True, True]
    assert rank("ember._node") > rank(imports("from . import _node\n", "ember.actors", True)[0][0])


def test_chaos_and_the_cli_import_without_the_test_dependencies():
    # `ember chaos run` and `ember cluster up` are commands a user runs with only the runtime
    # dependencies installed: nothing they import may need pytest (a test extra).
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pytest', '_pytest', 'hypothesis'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import ember.cli._main, ember.chaos._api, ember.chaos._runner, ember.chaos._procdriver\n"
        "import ember.chaos._simdriver, ember.testing._localcluster\n"
        "print('imported')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "imported"
