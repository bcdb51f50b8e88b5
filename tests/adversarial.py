"""Texts nobody writes but somebody sends: one character of each Unicode category repeated to a megabyte, and
alternations. Every text path must answer these in time linear in the text (tokenizer, encoder, server)."""

from __future__ import annotations

import time
from collections.abc import Callable

KINDS = {  # name -> the repeated unit
    "spaces": " ",
    "newlines": "\n",
    "no-break spaces": "\u00a0",
    "punctuation": ".",
    "combining marks": "\u0301",
    "CJK": "\u4e2d",
    "emoji": "\U0001f600",
    "control (DEL)": "\x7f",
    "zero-width space": "\u200b",
    "ASCII letters": "a",
    "letter and space": "a ",
    "stop and space": ". ",
    "accented and space": "é ",
    "spaces then a word": None,  # a megabyte of spaces, then one word: the quadratic case of a `\s*\S+` scan
}


def adversarial(name: str, size_bytes: int) -> str:
    """The text of kind `name`, about `size_bytes` of UTF-8."""
    unit = KINDS[name]
    if unit is None:
        return " " * (size_bytes - 4) + "word"
    return unit * max(1, size_bytes // len(unit.encode()))


def time_ratio(run: Callable[[str], object], name: str, repeats: int = 3) -> float:
    """The best time of `run` on a megabyte of kind `name` over its best time on a kilobyte of it."""

    def best(text: str) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            run(text)
            times.append(time.perf_counter() - started)
        return min(times)

    return best(adversarial(name, 1 << 20)) / max(best(adversarial(name, 1 << 10)), 1e-4)
