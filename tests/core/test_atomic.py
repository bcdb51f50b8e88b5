"""Outputs appear whole or not at all."""

from __future__ import annotations

import os

import pytest

from vbert.core.atomic import atomic_dir, atomic_open, write_json


def test_failed_directory_write_keeps_the_old_output(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "a").write_text("half")
        raise RuntimeError("killed")
    assert (out / "a").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failed_file_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "f.json") as handle:
        handle.write("{")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    write_json(tmp_path / "f.json", {"a": 1})
    assert (tmp_path / "f.json").read_text() == '{\n  "a": 1\n}\n'


def test_files_get_the_usual_permissions(tmp_path):
    write_json(tmp_path / "m.json", {})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~mask
