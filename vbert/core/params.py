"""Read one stage's section of params.yaml, with errors that name the file, line and key.

    with load_section("finetune") as p:
        epochs = p.integer("epochs", min=1)
        rate = p.number("learning_rate", min=0, min_open=True)

Every value is checked as it is read; leaving the `with` block checks that every key of the section was read, so a
misspelt key stops the stage (`params.yaml:57: finetune.learning_rte: unknown key; did you mean learning_rate?`)
instead of being silently ignored. Defaults live in params.yaml only: a missing key is an error too.

`python -m vbert.core.params freeze.model_name` prints one value, for the Makefile.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from vbert.core.errors import InputError

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


def _interval(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    return f"{left}{'-∞' if low is None else f'{low:g}'}, {'∞' if high is None else f'{high:g}'}{right}"


class Section:
    """A stage's parameters, read through typed getters that check bounds and remember what was read."""

    def __init__(self, path: Path, name: str, values: dict[str, Any], lines: dict[str, int]):
        self.path, self.name, self.values, self._lines = path, name, values, lines
        self._read: set[str] = set()

    def __enter__(self) -> Section:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.check_all_read()

    def where(self, key: str) -> str:
        line = self._lines.get(f"{self.name}.{key}") or self._lines.get(self.name)
        return f"{self.path}:{line}" if line else str(self.path)

    def error(self, key: str, message: str) -> InputError:
        value = self.values.get(key, "<missing>")
        return InputError(f"{self.where(key)}: {self.name}.{key} = {value!r}: {message}")

    def check_all_read(self) -> None:
        """Fail on the first key of the section that no getter asked for (a typo, or a param no longer used)."""
        for key in self.values:
            if key not in self._read:
                known = sorted(self._read)
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(known)}"
                raise InputError(f"{self.where(key)}: {self.name}.{key}: unknown key{hint}")

    def __getitem__(self, key: str) -> Any:
        self._read.add(key)
        if key not in self.values:
            unread = [k for k in self.values if k not in self._read]
            for misspelt in difflib.get_close_matches(key, unread, n=1):
                raise InputError(f"{self.where(misspelt)}: {self.name}.{misspelt}: unknown key; did you mean {key}?")
            raise InputError(f"{self.where(key)}: {self.name}.{key} is missing")
        return self.values[key]

    def text(self, key: str, *, empty: bool = True) -> str:
        """A string (YAML's null reads as ''); `empty=False` refuses ''."""
        value = self[key]
        value = "" if value is None else value
        if not isinstance(value, str):
            raise self.error(key, "must be a string")
        if not empty and not value:
            raise self.error(key, "must not be empty")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self[key]
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}")
        return value

    def boolean(self, key: str) -> bool:
        value = self[key]
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def integer(self, key: str, *, min: int | None = None, max: int | None = None) -> int:
        value = self[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "must be an integer")
        if (min is not None and value < min) or (max is not None and value > max):
            raise self.error(key, f"must be in {_interval(min, max)}")
        return value

    def number(
        self,
        key: str,
        *,
        min: float | None = None,
        max: float | None = None,
        min_open: bool = False,
        max_open: bool = False,
    ) -> float:
        """A number within bounds; `min_open`/`max_open` exclude the bound itself."""
        value = self[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, "must be a number")
        too_low = min is not None and (value <= min if min_open else value < min)
        too_high = max is not None and (value >= max if max_open else value > max)
        if too_low or too_high:
            raise self.error(key, f"must be in {_interval(min, max, min_open, max_open)}")
        return float(value)

    def probability(self, key: str, *, min_open: bool = False, max_open: bool = False) -> float:
        """A number in [0, 1] (either end excluded on request)."""
        return self.number(key, min=0, max=1, min_open=min_open, max_open=max_open)

    def integers(self, key: str, *, min: int | None = None, empty: bool = False) -> tuple[int, ...]:
        """A list of integers, each at least `min`; `empty` allows []."""
        value = self[key]
        value = [] if value is None else value
        if not isinstance(value, list) or (not value and not empty):
            raise self.error(key, "must be a non-empty list of integers" if not empty else "must be a list of integers")
        if any(isinstance(v, bool) or not isinstance(v, int) or (min is not None and v < min) for v in value):
            raise self.error(key, "every entry must be an integer" + (f" >= {min}" if min is not None else ""))
        return tuple(value)

    def strings(self, key: str, *, empty: bool = False) -> tuple[str, ...]:
        """A list of non-empty strings; `empty` allows []."""
        value = self[key]
        value = [] if value is None else value
        if not isinstance(value, list) or (not value and not empty):
            raise self.error(key, "must be a non-empty list of strings" if not empty else "must be a list of strings")
        if any(not isinstance(v, str) or not v for v in value):
            raise self.error(key, "every entry must be a non-empty string")
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


def load_params(path: str | os.PathLike = "params.yaml") -> tuple[dict, dict[str, int]]:
    """The whole params file and the line of every dotted key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such params file") from err
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: the params file must be a mapping of sections")
    return data, _key_lines(node) if node else {}


def load_section(name: str, path: str | os.PathLike = "params.yaml") -> Section:
    """Section `name` of the params file at `path`."""
    data, lines = load_params(path)
    if not isinstance(data.get(name), dict):
        raise InputError(f"{path}: no section '{name}:' (a mapping) in the params file")
    return Section(Path(path), name, data[name], lines)


def main(argv: list[str]) -> int:
    """Print the value of each dotted key (`freeze.model_name`) of params.yaml, one per line."""
    data, _ = load_params()
    for dotted in argv:
        value: Any = data
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                print(f"params.yaml: no key {dotted}", file=sys.stderr)
                return 2
            value = value[part]
        print(value)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
