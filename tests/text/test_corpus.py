"""Reading the corpus format, and the errors a user sees for bad files."""

from __future__ import annotations

import gzip

import pytest

from vbert.core.errors import InputError
from vbert.text.corpus import CorpusReader


def test_documents_are_split_on_blank_lines(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("a b\n  c  \n\n\n  \nd\n\ne\nf", encoding="utf-8")
    reader = CorpusReader([path])
    assert list(reader) == [["a b", "c"], ["d"], ["e", "f"]]
    assert (reader.documents, reader.lines, reader.bytes_read) == (3, 5, path.stat().st_size)


def test_gzip_and_several_files(tmp_path):
    first, second = tmp_path / "a.txt.gz", tmp_path / "b.txt"
    with gzip.open(first, "wt", encoding="utf-8") as handle:
        handle.write("one\ntwo\n")
    second.write_text("three\n\nfour\n", encoding="utf-8")
    reader = CorpusReader([first, second])
    assert list(reader) == [["one", "two"], ["three"], ["four"]]
    assert reader.total_bytes == len("one\ntwo\n") + len("three\n\nfour\n")


def test_not_utf8_names_file_line_and_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("first line\n\nna\u00efve\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1.txt:3: not UTF-8: byte 0xef at byte offset 14 .*column 3"):
        list(CorpusReader([path]))


def test_empty_and_single_document_corpora_are_refused(tmp_path):
    empty, single = tmp_path / "empty.txt", tmp_path / "single.txt"
    empty.write_text("\n\n", encoding="utf-8")
    single.write_text("only\none document\n", encoding="utf-8")
    for path, message in ((empty, "no documents"), (single, "only 1 document")):
        reader = CorpusReader([path])
        list(reader)
        with pytest.raises(InputError, match=message):
            reader.require_documents(2)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(CorpusReader([tmp_path / "nope.txt"]))
