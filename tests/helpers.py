"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The vocabulary of google-research/bert's tokenization_test.py, then the special tokens it lacks.
GOOGLE_TEST_VOCAB = [
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "want",
    "##want",
    "##ed",
    "wa",
    "un",
    "runn",
    "##ing",
    ",",
    "[PAD]",
    "[MASK]",
]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def small_corpus(path: Path, source: Path, documents: int) -> Path:
    """The first `documents` documents of `source`."""
    out, count = [], 0
    for line in source.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            count += 1
            if count >= documents:
                break
        out.append(line)
    return write_lines(path, out)


def run_stage(script: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run stages/<script>.py as DVC would; returns the finished process (never raises)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / f"{script}.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
