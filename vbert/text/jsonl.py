"""JSON lines, read alike everywhere (the ingest stage's documents, a task's splits): blank lines skipped, every
other line one JSON object, errors naming file and line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from vbert.core.errors import InputError


def json_objects(lines: Iterable[str], path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of `path` (whose `lines` these are)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{number}: not valid JSON: {error.msg} (column {error.colno})") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield number, record
