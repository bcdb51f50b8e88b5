"""Sentences of prose, for the corpus format (one sentence per line): sentencex, a maintained rule-based splitter
that needs no model download. Chosen by measurement (benchmarks/sentence_splitters.py on the hand-checked technical
text of data/sample/segmentation/): the best F1 of the candidates, at ~350k sentences/s on one core."""

from __future__ import annotations

import functools
import re

from vbert.text.documents import Document


@functools.cache
def _segment():
    import sentencex

    return sentencex.segment


# A full stop, question or exclamation mark with no white space after it, inside a token: os.EOL, dns.lookup(),
# dhat.out.<pid>, C:\foo.html, v1.2.3. The splitter never cuts there: they are swapped for stand-ins (private-use
# characters, which no splitter takes for a sentence end) first. Abbreviations (e.g., i.e., U.S.) are left as they
# are: the splitter knows them.
_INSIDE_TOKEN = re.compile(r"[.?!](?=[^\s.?!\"')\]])(?![A-Za-z]\.)(?<=\S[.?!])|\.(?=\.?/)(?<!\S\.)")  # and ./, ../
_STAND_IN = {".": "\ue000", "?": "\ue001", "!": "\ue002"}


def split_sentences(text: str) -> list[str]:
    """The sentences of a prose text, white space inside each collapsed; never cut inside a token."""
    if any(stand_in in text for stand_in in _STAND_IN.values()):  # a text that holds one already: left as it is
        return [" ".join(s.split()) for s in _segment()("en", text) if s.strip()]
    shielded = _INSIDE_TOKEN.sub(_shield, text)
    sentences = [" ".join(s.split()) for s in _segment()("en", shielded) if s.strip()]
    return [_restore(s) for s in sentences] if shielded is not text else sentences


def _restore(sentence: str) -> str:
    for mark, stand_in in _STAND_IN.items():
        sentence = sentence.replace(stand_in, mark)
    return sentence


def _shield(match: re.Match) -> str:
    return _STAND_IN[match.group()]


PROSE_CHUNK_LINES = 20  # a prose block is handed to the splitter at most this many max-length lines at a time


def cut_line(line: str, max_chars: int) -> list[str]:
    """`line` as pieces of at most `max_chars` characters, each cut at the last white space that keeps it within the
    limit (a hard cut where a piece has none): nothing dropped, nothing longer than the limit."""
    pieces, start, end = [], 0, len(line)
    while end - start > max_chars:  # by index, never copying what is left: linear in the line
        cut = line.rfind(" ", start + 1, start + max_chars + 1)
        cut = cut if cut > start else start + max_chars
        pieces.append(line[start:cut].rstrip())
        start = cut
        while start < end and line[start] == " ":
            start += 1
    return [*pieces, line[start:]] if start < end else pieces


def document_lines(document: Document, max_chars: int = 1_000_000) -> list[str]:
    """A document as corpus lines of at most `max_chars` characters: prose blocks cut into sentences (a huge block
    in chunks, so the splitter's work stays bounded), each code line and heading whole; longer lines cut at white
    space."""
    lines: list[str] = []
    for block in document:
        if block.code or block.heading:
            lines += cut_line(block.text, max_chars)
            continue
        for chunk in cut_line(block.text, max_chars * PROSE_CHUNK_LINES):
            for sentence in split_sentences(chunk):
                lines += cut_line(sentence, max_chars)
    return lines
