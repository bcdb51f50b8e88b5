"""Labelled classification tasks as TSV files.

Each split is `train.tsv`, `eval.tsv`, `test.tsv` with a header: `label<TAB>text`, or `label<TAB>text_a<TAB>text_b`
for sentence pairs. Labels are strings; the label set is the training split's. Errors name the file and line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vbert.core.errors import InputError

SPLITS = ("train", "eval", "test")


@dataclass(frozen=True)
class Split:
    labels: list[str]
    texts_a: list[str]
    texts_b: list[str] | None

    def items(self) -> list[str] | list[tuple[str, str]]:
        """The texts, or (text_a, text_b) pairs for a sentence-pair task."""
        return self.texts_a if self.texts_b is None else list(zip(self.texts_a, self.texts_b, strict=True))


def read_split(path: str | os.PathLike, known_labels: list[str] | None = None) -> Split:
    """Read one TSV split; `known_labels` (the training labels) rejects labels training never saw."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such task file")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise InputError(f"{path}:1: empty file (expected a header: label<TAB>text or label<TAB>text_a<TAB>text_b)")
    header = lines[0].split("\t")
    if header not in (["label", "text"], ["label", "text_a", "text_b"]):
        raise InputError(f"{path}:1: header {lines[0]!r}: expected label<TAB>text or label<TAB>text_a<TAB>text_b")
    labels, texts_a, texts_b = [], [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise InputError(f"{path}:{number}: {len(fields)} columns, the header has {len(header)}")
        label, *texts = (f.strip() for f in fields)
        if not label:
            raise InputError(f"{path}:{number}: empty label")
        if known_labels is not None and label not in known_labels:
            raise InputError(f"{path}:{number}: label {label!r} does not occur in the training split")
        for name, text in zip(header[1:], texts, strict=True):
            if not text:
                raise InputError(f"{path}:{number}: empty {name}")
        labels.append(label)
        texts_a.append(texts[0])
        if len(texts) == 2:
            texts_b.append(texts[1])
    if not labels:
        raise InputError(f"{path}: no examples")
    return Split(labels, texts_a, texts_b if len(header) == 3 else None)


def read_task(task_dir: str | os.PathLike) -> tuple[dict[str, Split], list[str]]:
    """The three splits and the sorted label list of the training split."""
    task_dir = Path(task_dir)
    train = read_split(task_dir / "train.tsv")
    label_list = sorted(set(train.labels))
    if len(label_list) < 2:
        raise InputError(f"{task_dir / 'train.tsv'}: needs at least two labels, found {label_list}")
    splits = {"train": train}
    for name in ("eval", "test"):
        splits[name] = read_split(task_dir / f"{name}.tsv", label_list)
    return splits, label_list
