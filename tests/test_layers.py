"""The package's import direction: a stage may import only the stages below it.

Each subpackage's ``__init__`` docstring says what it owns and what it may import; ``ALLOWED``
here is the same rule in code.  Every ``import`` statement of every module counts, at the top
or inside a function, so a lazy import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import qpsweep

PACKAGE = Path(qpsweep.__file__).parent
BASE = {"errors", "_version"}  # modules any stage may import
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "datasets": {"config"},
    "records": {"config"},
    "analysis": {"config", "records"},
    "output": {"config", "records", "analysis"},
    "http": {"config", "datasets", "records"},
    "load": {"config", "datasets", "records", "analysis", "output", "http"},
    "sim": set(),
    "cli": {"config", "datasets", "records", "analysis", "output", "http", "load", "sim"},
}


def _stage(module: str) -> str:
    """``qpsweep.load.sweep`` -> ``load``; ``qpsweep.errors`` -> ``errors``; root -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every qpsweep import in ``path``; ``from qpsweep import x`` names
    ``qpsweep.x``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("qpsweep")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "qpsweep":
                found += [(node.lineno, f"qpsweep.{a.name}") for a in node.names]
            elif node.module.startswith("qpsweep."):
                found.append((node.lineno, node.module))
    return found


def upward_imports(package: Path) -> list[str]:
    """Every import in ``package`` that breaks ``ALLOWED``, as ``path:line: a -> b``."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if len(rel.parts) == 1:  # the top-level modules: the API facade and the base
            continue
        stage = rel.parts[0]
        for line, module in _imports(path):
            target = _stage(module)
            if target not in BASE and target != stage and target not in ALLOWED[stage]:
                problems.append(f"{rel}:{line}: {stage} imports {module}")
    return problems


def test_every_subpackage_has_a_rule_and_a_docstring() -> None:
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages == set(ALLOWED)
    for name in packages:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and "May import" in doc, name


def test_no_stage_imports_a_higher_one() -> None:
    assert upward_imports(PACKAGE) == []


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    for stage in ("records", "output"):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "__init__.py").write_text('"""May import: nothing."""\n')
    (tmp_path / "records" / "bad.py").write_text(
        "def f():\n    from qpsweep.output.text import format_table\n"
    )
    assert upward_imports(tmp_path) == ["records/bad.py:2: records imports qpsweep.output.text"]


@pytest.mark.parametrize("module", ["qpsweep.load.sweep", "qpsweep.errors", "qpsweep"])
def test_stage_names(module: str) -> None:
    assert _stage(module) == {"qpsweep.load.sweep": "load", "qpsweep.errors": "errors"}.get(
        module, ""
    )
