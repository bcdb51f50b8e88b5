"""The package's layering: stage modules (vbert/pipeline) sit on top; nothing else in vbert/ imports them."""

from __future__ import annotations

import ast

from tests.helpers import REPO


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):  # function-level imports too
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_no_package_but_the_pipeline_imports_the_pipeline():
    offenders = {
        str(path.relative_to(REPO)): sorted(m for m in imported_modules(path) if m.startswith("vbert.pipeline"))
        for path in (REPO / "vbert").rglob("*.py")
        if "pipeline" not in path.relative_to(REPO / "vbert").parts
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}
