"""Sentences of prose, for the corpus format (one sentence per line): sentencex, a maintained rule-based splitter
that needs no model download. Chosen by measurement (benchmarks/sentence_splitters.py on the hand-checked technical
text of data/sample/segmentation/): the best F1 of the candidates, at ~350k sentences/s on one core."""

from __future__ import annotations

import functools

from vbert.text.documents import Document


@functools.cache
def _segment():
    import sentencex

    return sentencex.segment


def split_sentences(text: str) -> list[str]:
    """The sentences of a prose text, white space inside each collapsed."""
    return [" ".join(s.split()) for s in _segment()("en", text) if s.strip()]


def document_lines(document: Document) -> list[str]:
    """A document as corpus lines: prose blocks cut into sentences, each code line whole."""
    lines: list[str] = []
    for block in document:
        lines += [block.text] if block.code else split_sentences(block.text)
    return lines
