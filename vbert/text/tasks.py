"""Labelled classification tasks: a folder with a train, an eval and a test split, as TSV, CSV or JSON lines.

    task_dir/train.tsv  eval.tsv  test.tsv        label<TAB>text (or label<TAB>text_a<TAB>text_b), a header line
    task_dir/train.csv  eval.csv  test.csv        the same columns, RFC 4180 quoting (texts may hold commas, newlines)
    task_dir/train.jsonl eval.jsonl test.jsonl    {"label": ..., "text": ...} per line
    task_dir/task.yaml                            optional: other column (field) names, e.g. for an export as it is

        label: category        # the label's column; default `label`
        text: description      # the text's column; default `text`, or `text_a` when the header has text_a/text_b
        text_b: null           # a pair's second text; default `text_b` when the header has it

The folder describes itself, so every stage that reads the task (vnlp, finetune, ir, bench) reads it the same way.
Other columns are ignored. Labels are strings; the label set is the training split's. Errors name the file and line.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from vbert.core.errors import InputError
from vbert.text.jsonl import json_objects

SPLITS = ("train", "eval", "test")
FORMATS = ("tsv", "csv", "jsonl")
DESCRIPTION = "task.yaml"


@dataclass(frozen=True)
class Split:
    labels: list[str]
    texts_a: list[str]
    texts_b: list[str] | None

    def items(self) -> list[str] | list[tuple[str, str]]:
        """The texts, or (text_a, text_b) pairs for a sentence-pair task."""
        return self.texts_a if self.texts_b is None else list(zip(self.texts_a, self.texts_b, strict=True))


@dataclass(frozen=True)
class Columns:
    """Which column (or JSON field) holds what; None where task.yaml does not say."""

    label: str = "label"
    text: str | None = None
    text_b: str | None = None

    def resolve(self, header: list[str]) -> tuple[str, str, str | None]:
        """(label, text, text_b) for a file with these column names: task.yaml's, else text, else text_a/text_b."""
        if self.text is not None:
            return self.label, self.text, self.text_b
        if "text" not in header and "text_a" in header:
            return self.label, "text_a", self.text_b or ("text_b" if "text_b" in header else None)
        return self.label, "text", self.text_b


def split_file(task_dir: str | os.PathLike, split: str) -> Path:
    """The file of one split: `split`.tsv, .csv or .jsonl (exactly one of them)."""
    task_dir = Path(task_dir)
    found = [task_dir / f"{split}.{kind}" for kind in FORMATS if (task_dir / f"{split}.{kind}").exists()]
    if not found:
        raise InputError(f"{task_dir}: no {split} split (expected {' or '.join(f'{split}.{k}' for k in FORMATS)})")
    if len(found) > 1:
        raise InputError(f"{task_dir}: {' and '.join(p.name for p in found)}: keep one {split} split")
    return found[0]


def read_columns(task_dir: Path) -> Columns:
    """The column names from task_dir/task.yaml, or the defaults when there is none."""
    path = task_dir / DESCRIPTION
    if not path.exists():
        return Columns()
    try:
        described = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(described, dict):
        raise InputError(f"{path}: expected a mapping of label/text/text_b to column names")
    unknown = sorted(set(described) - {"label", "text", "text_b"})
    if unknown:
        raise InputError(f"{path}: unknown key {unknown[0]!r} (known: label, text, text_b)")
    for key, value in described.items():
        if value is not None and not (isinstance(value, str) and value):
            raise InputError(f"{path}: {key}: expected a column name, got {value!r}")
    return Columns(described.get("label") or "label", described.get("text"), described.get("text_b"))


def _tsv_rows(path: Path) -> Iterator[tuple[int, list[str] | dict]]:
    with path.open(encoding="utf-8", newline="") as lines:
        for number, line in enumerate(lines, start=1):
            line = line.rstrip("\r\n")
            if line.strip() or number == 1:
                yield number, line.split("\t")


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str] | dict]]:
    with path.open(encoding="utf-8", newline="") as lines:
        rows = csv.reader(lines)
        try:
            for row in rows:
                if (row and any(field.strip() for field in row)) or rows.line_num == 1:
                    yield rows.line_num, row
        except csv.Error as error:
            raise InputError(f"{path}:{rows.line_num}: {error}") from None


def _jsonl_rows(path: Path) -> Iterator[tuple[int, list[str] | dict]]:
    with path.open(encoding="utf-8") as lines:
        yield from json_objects(lines, path)


READERS = {".tsv": _tsv_rows, ".csv": _csv_rows, ".jsonl": _jsonl_rows}


def _records(path: Path, columns: Columns) -> Iterator[tuple[int, str, str, str | None, tuple[str, ...]]]:
    """(line, label, text, text_b, the names of the wanted columns) per example of a TSV, CSV or JSONL file."""
    rows = READERS[path.suffix](path)
    if path.suffix == ".jsonl":
        for number, record in rows:
            wanted = columns.resolve(list(record))
            values = [record.get(name) if name else None for name in wanted]
            for name, value in zip(wanted, values, strict=True):
                if name and name not in record:
                    raise InputError(f"{path}:{number}: no field {name!r} (fields: {', '.join(record)})")
                if name and not isinstance(value, str | int):
                    raise InputError(f"{path}:{number}: {name}: expected a string, got {type(value).__name__}")
            yield number, *(None if v is None else str(v) for v in values), wanted
        return
    first = next(rows, None)
    if first is None or not any(first[1]):
        raise InputError(f"{path}:1: empty file (expected a header line: label, text or label, text_a, text_b)")
    header = [name.strip() for name in first[1]]
    wanted = columns.resolve(header)
    missing = [name for name in wanted if name and name not in header]
    if missing:
        raise InputError(f"{path}:1: header {header}: no column {missing[0]!r} (task.yaml names other columns)")
    index = [header.index(name) if name else None for name in wanted]
    for number, fields in rows:
        if len(fields) != len(header):
            raise InputError(f"{path}:{number}: {len(fields)} columns, the header has {len(header)}")
        yield number, *(None if i is None else fields[i] for i in index), wanted


def read_split(path: str | os.PathLike, known_labels: list[str] | None = None) -> Split:
    """Read one split file (.tsv, .csv or .jsonl, columns from task.yaml beside it); `known_labels` (the
    training labels) rejects labels training never saw."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such task file")
    if path.suffix not in READERS:
        raise InputError(f"{path}: unknown task format (expected {', '.join(READERS)})")
    columns = read_columns(path.parent)
    labels, texts_a, texts_b, pair = [], [], [], None
    for number, label, text_a, text_b, names in _records(path, columns):
        label = label.strip()
        if not label:
            raise InputError(f"{path}:{number}: empty {names[0]}")
        if known_labels is not None and label not in known_labels:
            raise InputError(f"{path}:{number}: label {label!r} does not occur in the training split")
        for name, text in zip(names[1:], (text_a, text_b), strict=True):
            if name and not (text or "").strip():
                raise InputError(f"{path}:{number}: empty {name}")
        pair = names[2] is not None
        labels.append(label)
        texts_a.append(text_a.strip())
        if pair:
            texts_b.append(text_b.strip())
    if not labels:
        raise InputError(f"{path}: no examples")
    return Split(labels, texts_a, texts_b if pair else None)


def read_task(task_dir: str | os.PathLike) -> tuple[dict[str, Split], list[str]]:
    """The three splits and the sorted label list of the training split."""
    train_file = split_file(task_dir, "train")
    train = read_split(train_file)
    label_list = sorted(set(train.labels))
    if len(label_list) < 2:
        raise InputError(f"{train_file}: needs at least two labels, found {label_list}")
    splits = {"train": train}
    for name in ("eval", "test"):
        splits[name] = read_split(split_file(task_dir, name), label_list)
    return splits, label_list
