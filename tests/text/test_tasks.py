"""Task files and the scores, on hand-checkable cases."""

from __future__ import annotations

import pytest

from tests.helpers import REPO, write_lines
from vbert.core.errors import InputError
from vbert.text.tasks import read_split, read_task


def test_errors_name_file_and_line(tmp_path):
    path = write_lines(tmp_path / "train.tsv", ["label\ttext", "a\tfine", "b\ttoo\tmany", "c\t "])
    with pytest.raises(InputError, match=r"train.tsv:3: 3 columns, the header has 2"):
        read_split(path)
    write_lines(path, ["label\ttext", "a\tfine", "b\t  "])
    with pytest.raises(InputError, match=r"train.tsv:3: empty text"):
        read_split(path)
    write_lines(path, ["label\ttext", "a\tfine", "z\tunseen"])
    with pytest.raises(InputError, match=r"train.tsv:3: label 'z' does not occur in the training split"):
        read_split(path, ["a", "b"])
    write_lines(path, ["category\ttext"])
    with pytest.raises(InputError, match=r"train.tsv:1: header"):
        read_split(path)


def test_the_sample_task_reads():
    splits, labels = read_task(REPO / "data/sample/pkg_section")
    assert labels == ["admin", "devel", "games", "graphics", "net", "science", "sound", "utils"]
    assert [len(splits[s].labels) for s in ("train", "eval", "test")] == [2400, 400, 400]
