"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import shutil
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


def tiny_pretraining_inputs(
    root: Path, documents: int, phases: tuple, num_shards: int = 2, eval_fraction: float = 0.1
) -> Path:
    """What the model stages read, made by the real text stages on the first documents of the sample:
    `root/tf` (TFRecords and manifest) and `root/vocab/vocab.txt` (Google's uncased vocabulary)."""
    from vbert.resources import resolve_vocab
    from vbert.tfrecords import TFRecordsJob, build_tfrecords

    corpus = small_corpus(root / "corpus.txt", REPO / "data" / "sample" / "docs.txt", documents=documents)
    build_tfrecords(
        TFRecordsJob(
            corpus=corpus,
            vocab=resolve_vocab("minilm"),
            out_dir=root / "tf",
            phases=phases,
            dataset_name="t",
            num_shards=num_shards,
            eval_fraction=eval_fraction,
            workers=1,
        )
    )
    (root / "vocab").mkdir(exist_ok=True)
    shutil.copy(resolve_vocab("minilm"), root / "vocab" / "vocab.txt")
    return root


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
