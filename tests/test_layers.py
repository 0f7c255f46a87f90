"""The packages' layering, checked on every import statement (top-level and inside functions).

Bottom to top: the generated contracts (``fashionsearch``) and the core; ``training`` beside ``services``
(neither imports the other); ``indexer`` over ``services``; ``deploy``, the CLI and the benchmarks on top.
A lower layer never imports an upper one (ARCHITECTURE.md, "Each decision has one home").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fashion_core", "training", "services", "indexer", "deploy", "fashion_cli", "benchmarks")
ALLOWED: dict[str, set[str]] = {
    "fashion_core": set(),
    "training": {"fashion_core"},
    "services": {"fashion_core", "fashionsearch"},
    "indexer": {"fashion_core", "fashionsearch", "services"},
    "deploy": {"fashion_core", "fashionsearch", "services", "indexer"},
    "fashion_cli": {"fashion_core", "fashionsearch", "services", "indexer", "training", "deploy"},
    "benchmarks": {"fashion_core", "fashionsearch", "services", "indexer", "training"},
}
OURS = set(PACKAGES) | {"fashionsearch"}


def imported_packages(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports, anywhere in the file (relative imports excluded)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_runs_from_a_lower_layer_up(package: str) -> None:
    offences = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted((imported_packages(path) & OURS) - ALLOWED[package] - {package}):
            offences.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offences, "\n".join(offences)


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from fashion_cli.main import main\n    import services.wiring\n")
    assert imported_packages(source) == {"os", "fashion_cli", "services"}
