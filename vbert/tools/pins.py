"""The pinned versions of named packages, from pyproject.toml, the one place pins live.

    python -m vbert.tools.pins pyproject.toml openvino fastapi   ->  openvino==2026.4.1, fastapi==0.163.2 (a line each)

The serving image installs only what the server needs, with the same versions as the rest of the project.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def pins(pyproject: Path) -> dict[str, str]:
    """Every `name==version` requirement of the project (main and optional), by normalised name."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = [
        *project["dependencies"],
        *(r for group in project.get("optional-dependencies", {}).values() for r in group),
    ]
    found = {}
    for requirement in requirements:
        name, version = requirement.split("==")
        found[re.sub(r"[-_.]+", "-", name.strip().lower())] = version.strip()
    return found


def main(argv: list[str]) -> int:
    pyproject, names = Path(argv[0]), argv[1:]
    available = pins(pyproject)
    missing = [n for n in names if re.sub(r"[-_.]+", "-", n.lower()) not in available]
    if missing:
        print(f"{pyproject}: no pin for {', '.join(missing)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"{name}=={available[re.sub(r'[-_.]+', '-', name.lower())]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
