"""params.yaml: each knob declared once, on the field of the stage's Job dataclass that holds it, and read with
every mistake of a section reported at once.

    @dataclass(frozen=True)
    class FinetuneJob:
        SECTION: ClassVar[str] = "finetune"
        pretrain_dir: Path                                           # given by the stage's command line
        epochs: int = params.integer("passes over the train split", min=1)
        model: str = params.choice(MODEL_NAMES, "...", switch="model")  # top-level: `dvc exp run -S model=tiny`

    job = read_job(FinetuneJob, "params.yaml", pretrain_dir=Path("models/pretrain"))

A knob's field has a type, bounds and a help line; `read_job` checks every knob of the section, refuses keys no
knob reads (`params.yaml:57: finetune.learning_rte: unknown key; did you mean learning_rate?`), then runs the job's
own cross-field checks (`problems()`), and raises one InputError whose lines name every mistake with file:line and
key. Defaults live in params.yaml only: a missing key is an error too.

Switches are the paper's experiment knobs (`vocab`, `corpus`, `msl512`, `do_whole_word_mask`, `model`): top-level
keys that `dvc exp run -S vocab=unused` sets as the design card writes them; each is read by the one stage it
changes. Numbers are read as YAML 1.2 (and DVC's `-S`) read them: `1e-4`, `5e-05`, `1E-3` and `.5` are numbers.

`python -m vbert.core.params freeze.model_name` prints one value, for the Makefile.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vbert.core.errors import InputError

PARAMS_FILE = "params.yaml"
_KNOB, _NESTED = "vbert.knob", "vbert.nested"


class Invalid(ValueError):
    """A value a knob refuses; the message says what it must be."""


# ---- reading the file -------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: `1e-4` and `5e-05` (which DVC writes) are numbers, not strings."""


_FLOAT_12 = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _key_lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Map dotted key paths of a composed YAML mapping to 1-based line numbers."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            dotted = f"{prefix}{key_node.value}"
            lines[dotted] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, dotted + "."))
    return lines


@dataclass(frozen=True)
class ParamsFile:
    """The whole params file, and the line of every dotted key."""

    path: Path
    data: dict
    lines: dict[str, int]

    @classmethod
    def load(cls, path: str | os.PathLike = PARAMS_FILE) -> ParamsFile:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            node = yaml.compose(text, Loader=_Loader)
            data = yaml.load(text, Loader=_Loader) or {}  # a safe loader, with YAML 1.2's floats
        except FileNotFoundError as err:
            raise InputError(f"{path}: no such params file") from err
        except yaml.YAMLError as err:
            raise InputError(f"{path}: not valid YAML: {err}") from err
        if not isinstance(data, dict):
            raise InputError(f"{path}: the params file must be a mapping of sections")
        return cls(path, data, _key_lines(node) if node else {})

    def where(self, *dotted: str) -> str:
        """`params.yaml:LINE` of the first of `dotted` that has a line (the file alone if none has)."""
        line = next((self.lines[d] for d in dotted if d in self.lines), None)
        return f"{self.path}:{line}" if line else str(self.path)


def load_params(path: str | os.PathLike = PARAMS_FILE) -> tuple[dict, dict[str, int]]:
    """The whole params file and the line of every dotted key."""
    params = ParamsFile.load(path)
    return params.data, params.lines


# ---- declaring knobs --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Knob:
    """What a params.yaml key holds: a parser that returns the value or raises Invalid, a help line, and whether it
    is a switch (a top-level key) rather than a key of the job's section."""

    parse: Callable[[Any], Any]
    kind: str  # for --help: "integer >= 1", "one of a | b"
    help: str
    switch: str | None = None  # the top-level key it is read from, instead of the field's name in the section


def _knob(parse: Callable[[Any], Any], kind: str, help: str, switch: str | None = None) -> Any:
    return dataclasses.field(metadata={_KNOB: Knob(parse, kind, help, switch)})


def nested() -> Any:
    """A field holding another dataclass whose knobs are keys of the same section (a config the job passes on)."""
    return dataclasses.field(metadata={_NESTED: True})


def _interval(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    return f"{left}{'-∞' if low is None else f'{low:g}'}, {'∞' if high is None else f'{high:g}'}{right}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_integer(value: Any) -> int:
    if _is_number(value) and float(value).is_integer():
        return int(value)  # 1e5 and 2.0 are the integers people mean
    raise Invalid("must be an integer")


def _bounded(value: float, low, high, low_open=False, high_open=False) -> None:
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise Invalid(f"must be in {_interval(low, high, low_open, high_open)}")


def integer(help: str, *, min: int | None = None, max: int | None = None) -> Any:
    def parse(value: Any) -> int:
        number = _as_integer(value)
        _bounded(number, min, max)
        return number

    return _knob(parse, f"integer in {_interval(min, max)}", help)


def number(
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
    max_open: bool = False,
) -> Any:
    """A number within bounds; `min_open`/`max_open` exclude the bound itself."""

    def parse(value: Any) -> float:
        if not _is_number(value):
            raise Invalid("must be a number")
        _bounded(value, min, max, min_open, max_open)
        return float(value)

    return _knob(parse, f"number in {_interval(min, max, min_open, max_open)}", help)


def probability(help: str, *, min_open: bool = False, max_open: bool = False) -> Any:
    """A number in [0, 1] (either end excluded on request)."""
    return number(help, min=0, max=1, min_open=min_open, max_open=max_open)


def boolean(help: str, *, switch: str | None = None) -> Any:
    def parse(value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid("must be true or false")
        return value

    return _knob(parse, "true | false", help, switch)


def _string(value: Any, empty: bool) -> str:
    value = "" if value is None else value
    if not isinstance(value, str):
        raise Invalid("must be a string")
    if not empty and not value:
        raise Invalid("must not be empty")
    return value


def text(help: str, *, empty: bool = True) -> Any:
    """A string (YAML's null reads as ''); `empty=False` refuses ''."""
    return _knob(lambda value: _string(value, empty), "text" if empty else "non-empty text", help)


def path(help: str, *, empty: bool = False) -> Any:
    """A file or folder: a Path; '' reads as None when `empty`."""

    def parse(value: Any) -> Path | None:
        value = _string(value, empty)
        return Path(value) if value else None

    return _knob(parse, "path" + (" or ''" if empty else ""), help)


def label(help: str) -> Any:
    """A class label as the task files write it: `1` (a YAML integer) is the label "1"; '' reads as None."""

    def parse(value: Any) -> str | None:
        if _is_number(value):
            return str(value)
        return _string(value, True) or None

    return _knob(parse, "label or ''", help)


def choice(choices: Iterable[str], help: str, *, switch: str | None = None) -> Any:
    choices = tuple(choices)

    def parse(value: Any) -> str:
        if value not in choices:
            raise Invalid(f"must be one of {', '.join(choices)}")
        return value

    return _knob(parse, " | ".join(choices), help, switch)


def _list(value: Any, empty: bool, what: str) -> list:
    value = [] if value is None else value
    if not isinstance(value, list) or (not value and not empty):
        raise Invalid(f"must be a list of {what}" if empty else f"must be a non-empty list of {what}")
    return value


def integers(help: str, *, min: int | None = None, empty: bool = False, distinct: bool = False) -> Any:
    """A list of integers, each at least `min`; `empty` allows []; `distinct` refuses repeats."""

    def parse(value: Any) -> tuple[int, ...]:
        entries = _list(value, empty, "integers")
        try:
            numbers = tuple(_as_integer(v) for v in entries)
        except Invalid:
            numbers = ()
        if len(numbers) != len(entries) or (min is not None and any(v < min for v in numbers)):
            raise Invalid("every entry must be an integer" + (f" >= {min}" if min is not None else ""))
        if distinct and len(set(numbers)) != len(numbers):
            raise Invalid("must not repeat an entry")
        return numbers

    return _knob(parse, "list of integers" + (f" >= {min}" if min is not None else ""), help)


def strings(help: str, *, empty: bool = False) -> Any:
    """A list of non-empty strings; `empty` allows []."""

    def parse(value: Any) -> tuple[str, ...]:
        entries = _list(value, empty, "strings")
        if any(not isinstance(v, str) or not v for v in entries):
            raise Invalid("every entry must be a non-empty string")
        return tuple(entries)

    return _knob(parse, "list of strings", help)


def choices(allowed: Iterable[str], help: str) -> Any:
    """A non-empty list of names from `allowed`, without repeats."""
    allowed = tuple(allowed)

    def parse(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or len(set(map(str, value))) != len(value):
            raise Invalid(f"must be a non-empty list of distinct names from {', '.join(allowed)}")
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise Invalid(f"unknown {', '.join(map(str, unknown))}; choose from {', '.join(allowed)}")
        return tuple(value)

    return _knob(parse, f"list of {' | '.join(allowed)}", help)


# ---- reading a job ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnobField:
    key: str  # the key in params.yaml: a field name in the section, or a switch at the top
    knob: Knob
    field: tuple[str, ...]  # the field's path from the job: ("config", "variant") for a nested config's knob


def knob_fields(cls: type) -> Iterator[KnobField]:
    """Every knob of a job dataclass, nested configs' included, in declaration order."""
    for field in dataclasses.fields(cls):
        if _KNOB in field.metadata:
            knob = field.metadata[_KNOB]
            yield KnobField(knob.switch or field.name, knob, (field.name,))
        elif inner_cls := nested_type(cls, field):
            for inner in knob_fields(inner_cls):
                yield dataclasses.replace(inner, field=(field.name, *inner.field))


def nested_type(cls: type, field: dataclasses.Field) -> type | None:
    """The config class a `nested()` field of `cls` holds (its annotation, a string under `from __future__`), or
    None for any other field."""
    import typing

    if not field.metadata.get(_NESTED):
        return None
    return field.type if isinstance(field.type, type) else typing.get_type_hints(cls)[field.name]


def keys_read(cls: type) -> set[str]:
    """The params.yaml keys a job reads: its section and its switches (what dvc.yaml's `params:` must list)."""
    return {cls.SECTION} | {k.key for k in knob_fields(cls) if k.knob.switch}


class ParamsError(InputError):
    """Every mistake found in a params file, one per line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


class _Reader:
    """Reads one job's knobs from a params file, collecting every problem instead of stopping at the first."""

    def __init__(self, params: ParamsFile, section: str):
        self.params, self.section = params, section
        self.problems: list[str] = []
        self.missing: list[str] = []
        raw = params.data.get(section)
        if not isinstance(raw, dict):
            self.problems.append(f"{params.path}: no section '{section}:' (a mapping) in the params file")
            raw = {}
        self.has_section = isinstance(params.data.get(section), dict)
        self.values: dict = raw

    def dotted(self, key: str, switch: bool) -> str:
        return key if switch else f"{self.section}.{key}"

    def problem(self, key: str, message: str, switch: bool = False) -> None:
        dotted = self.dotted(key, switch)
        source = self.params.data if switch else self.values
        shown = f" = {_shown(source[key])}" if key in source else ""
        self.problems.append(f"{self.params.where(dotted, self.section)}: {dotted}{shown}: {message}")

    def read(self, knob_field: KnobField) -> Any:
        key, knob = knob_field.key, knob_field.knob
        source = self.params.data if knob.switch else self.values
        if key not in source:
            if knob.switch:
                self.problems.append(f"{self.params.path}: {key} is missing (a top-level switch)")
            else:
                self.missing.append(key)
            return None
        try:
            return knob.parse(source[key])
        except Invalid as err:
            self.problem(key, str(err), knob.switch)
            return None

    def unknown_keys(self, known: set[str]) -> None:
        """Keys of the section no knob reads, each with the missing key it most likely misspells."""
        unknown = [key for key in self.values if key not in known]
        for key in unknown:
            close = difflib.get_close_matches(str(key), self.missing, n=1) or difflib.get_close_matches(
                str(key), sorted(known), n=1
            )
            hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(sorted(known))}"
            dotted = f"{self.section}.{key}"
            self.problems.append(f"{self.params.where(dotted)}: {dotted}: unknown key; {hint}")
            if close and close[0] in self.missing:
                self.missing.remove(close[0])
        for key in self.missing:
            self.problems.append(f"{self.params.where(self.section)}: {self.section}.{key} is missing")


def _build(cls: type, values: dict[tuple[str, ...], Any], given: dict[str, Any], prefix: tuple = ()) -> Any:
    """An instance of `cls` from knob values (by field path) and given fields; nested configs built first."""
    arguments = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        path = (*prefix, field.name)
        if not prefix and field.name in given:
            arguments[field.name] = given[field.name]
        elif inner := nested_type(cls, field):
            arguments[field.name] = _build(inner, values, {}, path)
        elif path in values:
            arguments[field.name] = values[path]
        else:
            arguments[field.name] = None  # a given field the caller left out (checking params alone)
    return cls(**arguments)


def check_job(cls: type, params: ParamsFile, **given: Any) -> tuple[Any, list[str]]:
    """The job and every problem of its knobs (the job is None when a knob is wrong). Fields the job does not get
    from params.yaml come from `given` (the stage's command line); a given knob overrides the file's value, which is
    still checked. The job's `problems()` (cross-field checks: `(key, message)` pairs) run when every knob is valid."""
    reader = _Reader(params, cls.SECTION)
    fields = list(knob_fields(cls))
    values = {k.field: reader.read(k) for k in fields}
    if reader.has_section:
        reader.unknown_keys({k.key for k in fields if not k.knob.switch})
    if reader.problems:
        return None, reader.problems
    job = _build(cls, values, given)
    switches = {k.key for k in fields if k.knob.switch}
    for key, message in getattr(job, "problems", lambda: ())():
        reader.problem(key, message, key in switches)
    return (None if reader.problems else job), reader.problems


def read_job(cls: type, path: str | os.PathLike = PARAMS_FILE, **given: Any) -> Any:
    """The job `cls` with its knobs from the params file at `path` and the other fields from `given`; raises one
    ParamsError naming every problem."""
    job, problems = check_job(cls, ParamsFile.load(path), **given)
    if problems:
        raise ParamsError(problems)
    return job


def job_from(cls: type, section: dict, switches: dict | None = None, **given: Any) -> Any:
    """The job from a section as a mapping (and the switches it reads), as `read_job` checks it: for code and tests
    that hold params in memory."""
    params = ParamsFile(Path("<params>"), {**(switches or {}), cls.SECTION: section}, {})
    job, problems = check_job(cls, params, **given)
    if problems:
        raise ParamsError(problems)
    return job


def params_help(cls: type) -> str:
    """The knobs of a job for a stage's `--help`: key, kind and help, one per line (click's `\\b` keeps the lines)."""
    fields = list(knob_fields(cls))
    width = max(len(k.key) for k in fields) + 2
    lines = ["\b", f"params.yaml, section {cls.SECTION}:"]
    lines += [f"  {k.key:<{width}}{k.knob.kind}: {k.knob.help}" for k in fields if not k.knob.switch]
    switches = [k for k in fields if k.knob.switch]
    if switches:
        lines.append("switches (top-level keys: dvc exp run -S KEY=VALUE):")
        lines += [f"  {k.key:<{width}}{k.knob.kind}: {k.knob.help}" for k in switches]
    return "\n".join(lines)


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
