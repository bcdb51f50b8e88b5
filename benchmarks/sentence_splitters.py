"""Benchmark: which sentence splitter the ingest stage uses. Each candidate splits the hand-checked paragraphs of
data/sample/segmentation/gold.txt (scored: sentences exactly right, precision / recall / F1, and paragraphs all
right) and the demo corpus's documents joined into paragraphs (timed: sentences per second, one core).

    python benchmarks/sentence_splitters.py --out benchmarks/results/sentence_splitters.json
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.bench.measure import machine  # noqa: E402
from vbert.bench.report import write_result  # noqa: E402
from vbert.text.corpus import CorpusReader  # noqa: E402
from vbert.text.sentences import split_sentences  # noqa: E402

log = logging.getLogger("benchmark")
_REGEX_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def candidates() -> dict[str, Callable[[str], list[str]]]:
    """name -> split(text) for every splitter that needs no download at run time."""
    import pysbd
    import sentencex
    import syntok.segmenter

    pysbd_en = pysbd.Segmenter(language="en", clean=False)

    def syntok_split(text: str) -> list[str]:  # tokens carry offsets: cut the text between sentence starts
        starts = [sentence[0].offset for paragraph in syntok.segmenter.analyze(text) for sentence in paragraph]
        return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]

    return {
        "regex (vbert before #12)": lambda text: _REGEX_END.split(text),
        "pysbd 0.3.4": pysbd_en.segment,
        "sentencex 1.0.32": lambda text: list(sentencex.segment("en", text)),
        "syntok 1.4.4": syntok_split,
        "vbert: sentencex, never inside a token": split_sentences,
    }


def gold_paragraphs(path: Path) -> list[list[str]]:
    paragraphs, current = [], []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(current)
            current = []
    return paragraphs


def score(split: Callable[[str], list[str]], paragraphs: list[list[str]]) -> dict:
    right = predicted = gold = whole = 0
    misses = []
    for sentences in paragraphs:
        got = [" ".join(s.split()) for s in split(" ".join(sentences)) if s.strip()]
        hits = len(set(got) & set(sentences))
        right, predicted, gold = right + hits, predicted + len(got), gold + len(sentences)
        whole += got == sentences
        if got != sentences and len(misses) < 3:
            misses.append(got)
    precision, recall = right / predicted, right / gold
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4),
        "paragraphs_exact": f"{whole}/{len(paragraphs)}",
        "first_misses": misses,
    }


def speed(split: Callable[[str], list[str]], texts: list[str]) -> float:
    started, count = time.perf_counter(), 0
    for text in texts:
        count += len(split(text))
    return round(count / (time.perf_counter() - started), 1)


def markdown(results: dict) -> str:
    lines = [
        f"# Sentence splitters ({results['machine']['cpu']})",
        "",
        "`python benchmarks/sentence_splitters.py`: scored on data/sample/segmentation/gold.txt "
        f"({results['gold_sentences']} hand-checked sentences in {results['gold_paragraphs']} paragraphs), timed on "
        f"the demo corpus ({results['timing_paragraphs']} documents as paragraphs, one core).",
        "",
        "| splitter | precision | recall | F1 | paragraphs exact | sentences/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["candidates"].items():
        lines.append(
            f"| {name} | {r['precision']} | {r['recall']} | {r['f1']} | {r['paragraphs_exact']} | "
            f"{r['sentences_per_second']} |"
        )
    return "\n".join([*lines, ""])


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/sentence_splitters.json")
def main(out: Path) -> None:
    """Score and time every candidate splitter."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    paragraphs = gold_paragraphs(REPO / "data/sample/segmentation/gold.txt")
    documents = [" ".join(d) for d in CorpusReader([REPO / "data/sample/docs.txt"])][:2000]
    results = {
        "machine": machine(),
        "gold_sentences": sum(len(p) for p in paragraphs),
        "gold_paragraphs": len(paragraphs),
        "timing_paragraphs": len(documents),
        "candidates": {},
    }
    for name, split in candidates().items():
        results["candidates"][name] = {**score(split, paragraphs), "sentences_per_second": speed(split, documents)}
        log.info("%s: %s", name, results["candidates"][name])
    click.echo(write_result(out, results, markdown))


if __name__ == "__main__":
    main()
