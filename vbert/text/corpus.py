"""Stream a corpus in BERT's pretraining format: one sentence per line, a blank line between documents.

Plain or gzip-compressed files are read line by line, so memory does not grow with the input. Bytes that are
not UTF-8 stop the run with the file, line and byte offset.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from vbert.core.errors import InputError

CORPUS_FILE = "corpus.txt"  # the cleaned corpus in the vnlp stage's output folder


def open_binary(path: Path) -> BinaryIO:
    """Open `path` for reading bytes, decompressing `.gz` files."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def uncompressed_size(path: Path) -> int:
    """Size of the text in `path` (gzip keeps it modulo 2**32 in its last four bytes)."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix != ".gz":
        return path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        return struct.unpack("<I", handle.read(4))[0]


def _decode(raw: bytes, path: Path, line_number: int, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{path}:{line_number}: not UTF-8: byte 0x{raw[err.start]:02x} at byte offset {offset + err.start} "
            f"of the file (column {err.start + 1} of the line); re-encode the file as UTF-8"
        ) from err


class CorpusReader:
    """Iterate the documents of one or more files; `bytes_read` tells how far it got (for progress bars)."""

    def __init__(self, paths: Iterable[str | os.PathLike]):
        self.paths = [Path(p) for p in paths]
        self.bytes_read = 0
        self.documents = 0
        self.lines = 0

    @property
    def total_bytes(self) -> int:
        return sum(uncompressed_size(p) for p in self.paths)

    def iter_lines(self, path: Path) -> Iterator[str]:
        """Yield the lines of `path`, decoded and without the trailing newline."""
        offset = 0
        with open_binary(path) as handle:
            for line_number, raw in enumerate(handle, start=1):
                text = _decode(raw, path, line_number, offset)
                offset += len(raw)
                self.bytes_read += len(raw)
                yield text.rstrip("\r\n")

    def __iter__(self) -> Iterator[list[str]]:
        """Yield documents as lists of stripped, non-empty lines; a file's end also ends a document."""
        for path in self.paths:
            document: list[str] = []
            for text in self.iter_lines(path):
                line = text.strip()
                if line:
                    document.append(line)
                    self.lines += 1
                elif document:
                    self.documents += 1
                    yield document
                    document = []
            if document:
                self.documents += 1
                yield document

    def require_documents(self, minimum: int = 2) -> None:
        """After iterating: fail unless at least `minimum` documents were seen."""
        names = ", ".join(str(p) for p in self.paths)
        if self.documents == 0:
            raise InputError(f"{names}: no documents (the corpus is empty or holds only blank lines)")
        if self.documents < minimum:
            raise InputError(
                f"{names}: only {self.documents} document(s); at least {minimum} are needed for next-sentence "
                "pairs (separate documents with a blank line)"
            )


def write_documents(handle, documents: Iterable[list[str]]) -> None:
    """Write documents in the corpus format (a blank line after each document)."""
    for document in documents:
        handle.write("\n".join(document))
        handle.write("\n\n")


def is_heldout(document_index: int, fraction: float, seed: int) -> bool:
    """Deterministic choice of held-out documents, independent of chunking and worker count."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}:{document_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction
