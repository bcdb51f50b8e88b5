"""Read one stage's section of params.yaml, with errors that name the file, line and key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from vbert.errors import InputError

_MISSING = object()


def _key_lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Map dotted key paths of a composed YAML mapping to 1-based line numbers."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            dotted = f"{prefix}{key_node.value}"
            lines[dotted] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, dotted + "."))
    return lines


class Section:
    """A stage's parameters: `params.section("vocab")["variant"]`, with range checks."""

    def __init__(self, path: Path, name: str, values: dict[str, Any], lines: dict[str, int]):
        self.path, self.name, self.values, self._lines = path, name, values, lines

    def where(self, key: str) -> str:
        line = self._lines.get(f"{self.name}.{key}") or self._lines.get(self.name)
        return f"{self.path}:{line}" if line else str(self.path)

    def error(self, key: str, message: str) -> InputError:
        value = self.values.get(key, "<missing>")
        return InputError(f"{self.where(key)}: {self.name}.{key} = {value!r}: {message}")

    def __getitem__(self, key: str) -> Any:
        if key not in self.values:
            raise InputError(f"{self.where(key)}: {self.name}.{key} is missing")
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self[key]
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}")
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self[key] if default is _MISSING else self.values.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def integer(self, key: str, low: int | None = None, high: int | None = None, default: Any = _MISSING) -> int:
        value = self[key] if default is _MISSING else self.values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "must be an integer")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(key, f"must be in [{low}, {high if high is not None else '∞'}]")
        return value

    def integers(self, key: str, low: int = 1) -> tuple[int, ...]:
        """A non-empty list of integers, each at least `low`."""
        value = self[key]
        if not isinstance(value, list) or not value:
            raise self.error(key, "must be a non-empty list of integers")
        if any(isinstance(v, bool) or not isinstance(v, int) or v < low for v in value):
            raise self.error(key, f"every entry must be an integer >= {low}")
        return tuple(value)

    def choices(self, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        """A non-empty list of names from `allowed`, without repeats."""
        value = self[key]
        if not isinstance(value, list) or not value or len(set(map(str, value))) != len(value):
            raise self.error(key, f"must be a non-empty list of distinct names from {', '.join(allowed)}")
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise self.error(key, f"unknown {', '.join(map(str, unknown))}; choose from {', '.join(allowed)}")
        return tuple(value)

    def number(self, key: str, low: float = 0.0) -> float:
        value = self[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            raise self.error(key, f"must be a number >= {low:g}")
        return float(value)

    def probability(self, key: str, *, open_low: bool = False, open_high: bool = False) -> float:
        value = self[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, "must be a number")
        too_low = value <= 0 if open_low else value < 0
        too_high = value >= 1 if open_high else value > 1
        if too_low or too_high:
            interval = ("(" if open_low else "[") + "0, 1" + (")" if open_high else "]")
            raise self.error(key, f"must be in {interval}")
        return float(value)


def load_section(name: str, path: str | os.PathLike = "params.yaml") -> Section:
    """Load section `name` of the params file at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such params file") from err
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get(name), dict):
        raise InputError(f"{path}: no section '{name}:' (a mapping) in the params file")
    return Section(path, name, data[name], _key_lines(node) if node else {})
