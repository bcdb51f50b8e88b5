"""Which project modules each pipeline stage runs, found by reading imports, against its deps in dvc.yaml.

A stage runs its script (`python -m stages.<name>`) and every `vbert` module that script imports, directly or
through other modules, wherever the import statement stands (module top or inside a function), plus any module it
starts as `[..., "-m", "vbert.x"]`. Nothing is executed: the source is read with `ast`. Package `__init__.py` files
that hold only a docstring run no code and are not counted.

    python -m vbert.tools.deps      # per stage, the modules its deps miss; exit 1 if any
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

PACKAGE = "vbert"


def module_file(name: str, root: Path) -> Path | None:
    """The file of module `vbert.a.b` under `root` (`vbert/a/b.py` or `vbert/a/b/__init__.py`), if it exists."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _named_modules(tree: ast.AST) -> Iterator[str]:
    """Every absolute module name an import statement or a `-m NAME` argument list names."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
        elif isinstance(node, ast.List | ast.Tuple):
            values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            for flag, name in itertools.pairwise(values):
                if flag == "-m" and isinstance(name, str):
                    yield from (name, f"{name}.__main__")  # `-m package` runs the package's __main__.py


def imported_files(path: Path, root: Path) -> set[Path]:
    """The project files that importing (or running) `path` executes first: the modules it names and their packages."""
    files = set()
    for name in _named_modules(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        parts = name.split(".")
        if parts[0] != PACKAGE:
            continue
        for depth in range(1, len(parts) + 1):  # importing vbert.a.b runs vbert/__init__ and vbert/a/__init__ too
            found = module_file(".".join(parts[:depth]), root)
            if found is not None:
                files.add(found)
    return files


def runs_code(path: Path) -> bool:
    """Whether a module does anything when imported (a package file with only a docstring does not)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return bool(body)


def closure(script: Path, root: Path) -> set[Path]:
    """`script` and every project file it executes, transitively (relative to `root`)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(imported_files(path, root) - seen)
    return {p.relative_to(root) for p in seen if p.name != "__init__.py" or runs_code(p)}


def stage_scripts(command: str, root: Path) -> list[Path]:
    """The project scripts a stage command runs: `python stages/x.py ...`, `python -m vbert.x ...`."""
    words = command.split()
    scripts = [root / w for w in words if w.endswith(".py") and (root / w).is_file()]
    for flag, name in itertools.pairwise(words):
        if flag == "-m":
            scripts += [f for m in (name, f"{name}.__main__") if (f := module_file(m, root))]
    return scripts


def covered(path: Path, deps: list[str]) -> bool:
    """Whether a dep names `path` or a folder above it."""
    return any(path == Path(dep) or Path(dep) in path.parents for dep in deps)


def uncovered_modules(root: Path) -> dict[str, list[Path]]:
    """Per stage of `root/dvc.yaml`, the files it runs that its deps do not cover."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    missing = {}
    for name, stage in stages.items():
        deps = [str(d) for d in stage.get("deps", [])]
        runs = set().union(*(closure(s, root) for s in stage_scripts(stage["cmd"], root)))
        gaps = sorted(p for p in runs if not covered(p, deps))
        if gaps:
            missing[name] = gaps
    return missing


def main() -> int:
    missing = uncovered_modules(Path.cwd())
    for stage, files in missing.items():
        print(f"{stage}: deps miss {', '.join(map(str, files))}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
