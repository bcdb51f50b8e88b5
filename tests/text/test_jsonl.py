"""JSON lines: blank lines skipped, numbers counted from 1, errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from vbert.core.errors import InputError
from vbert.text.jsonl import json_objects


def test_objects_with_their_line_numbers():
    lines = ['{"text": "a"}', "", "   ", '{"text": "b", "n": 2}']
    assert list(json_objects(lines, Path("x.jsonl"))) == [(1, {"text": "a"}), (4, {"text": "b", "n": 2})]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{oops", r"x.jsonl:2: not valid JSON: Expecting property name enclosed in double quotes \(column 2\)"),
        ('["a list"]', r"x.jsonl:2: expected a JSON object, got list"),
    ],
)
def test_errors_name_file_and_line(line, message):
    with pytest.raises(InputError, match=message):
        list(json_objects(['{"ok": 1}', line], Path("x.jsonl")))
