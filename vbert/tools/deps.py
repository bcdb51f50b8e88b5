"""Which project modules each pipeline stage runs, found by reading imports, against its deps in dvc.yaml; and which
params.yaml keys it reads (its job's section and switches) against its `params:`.

A stage runs its script (`python -m stages.<name>`) and every `vbert` or `stages` module that script imports,
directly or through other modules, wherever the import statement stands (module top or inside a function), plus any
module it starts as `[..., "-m", "vbert.x"]`. Nothing is executed for that: the source is read with `ast`. Package
`__init__.py` files that hold only a docstring run no code and are not counted. The keys a stage reads come from
its script's `JOB` (the dataclass whose fields declare the knobs: `vbert.core.params`), which is imported.

    python -m vbert.tools.deps      # per stage, the modules its deps miss and the params it misreads; exit 1 if any
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

PACKAGES = ("vbert", "stages")
ALL_PARAMS = "params.yaml"  # `params: [params.yaml:]`: the whole file (the params stage checks every key)


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
        if parts[0] not in PACKAGES:
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


def declared_params(stage: dict) -> set[str]:
    """The keys a dvc.yaml stage lists under `params:` (`params.yaml` alone for the whole file)."""
    keys = set()
    for entry in stage.get("params", []):
        keys |= {ALL_PARAMS} if isinstance(entry, dict) and ALL_PARAMS in entry else {str(entry)}
    return keys


def params_read(script: Path, root: Path) -> set[str]:
    """The params.yaml keys the stage script at `script` reads: its JOB's section and switches, or the whole file for
    a script that checks every job (the params stage: `JOBS`)."""
    import importlib

    from vbert.core.params import keys_read

    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(".".join(script.relative_to(root).with_suffix("").parts))
    finally:
        sys.path.remove(str(root))
    if hasattr(module, "JOBS"):
        return {ALL_PARAMS}
    return keys_read(module.JOB)


def params_mismatches(root: Path) -> dict[str, str]:
    """Per stage of `root/dvc.yaml` whose `params:` differ from the keys its script reads, what differs."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    found = {}
    for name, stage in stages.items():
        scripts = [s for s in stage_scripts(stage["cmd"], root) if s.parent.name == "stages"]
        reads = set().union(*(params_read(s, root) for s in scripts))
        listed = declared_params(stage)
        if reads != listed:
            unlisted, unread = sorted(reads - listed), sorted(listed - reads)
            found[name] = "; ".join(
                part
                for part in (
                    f"reads {', '.join(unlisted)} but params: does not list it" if unlisted else "",
                    f"params: lists {', '.join(unread)}, which it does not read" if unread else "",
                )
                if part
            )
    return found


def main() -> int:
    root = Path.cwd()
    missing = uncovered_modules(root)
    for stage, files in missing.items():
        print(f"{stage}: deps miss {', '.join(map(str, files))}")
    mismatched = params_mismatches(root)
    for stage, what in mismatched.items():
        print(f"{stage}: {what}")
    return 1 if missing or mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
