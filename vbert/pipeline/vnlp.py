"""The vnlp stage: two streaming passes over the corpus, both spread over all cores.

Pass 1 counts candidate words, so that words the corpus itself uses often are protected as domain terms.
Pass 2 corrects and splits, keeping the corpus format (one sentence per line, a blank line between documents).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path
from typing import ClassVar

from tqdm import tqdm

from vbert.core import params as knob
from vbert.core.atomic import atomic_dir
from vbert.core.errors import InputError
from vbert.core.parallel import default_workers, ordered_map, worker_state
from vbert.text.corpus import CORPUS_FILE, CorpusReader, write_documents
from vbert.text.sentences import split_sentences
from vbert.text.spelling import CorpusCounts, SpellConfig, SpellFixer, count_candidate_words
from vbert.text.tasks import read_split, split_file

log = logging.getLogger(__name__)

CORPORA = {"docs": ("docs",), "docs+informal": ("docs", "informal")}
AUDIT_ROWS = 500  # the most frequent changes listed in audit.tsv


@dataclass(frozen=True)
class VnlpJob:
    SECTION: ClassVar[str] = "vnlp"
    out_dir: Path
    task_dir: Path  # the finetune task: its train texts join the corpus when task_text_repeat > 0
    corpus: str = knob.choice(CORPORA, "docs, or docs+informal (the paper's DOCS_REDDIT)", switch="corpus")
    input_dir: Path = knob.path(
        "holds docs.txt[.gz] and informal.txt[.gz]: the ingest stage's output, or a corpus already in that format"
    )
    lexicon: Path | None = knob.path("terms never to correct, one per line ('' for none)", empty=True)
    spell: SpellConfig = knob.nested()
    task_text_repeat: int = knob.integer(
        "N > 0: the task's train texts join the corpus N times (never its eval or test texts)", min=0
    )
    chunk_documents: int = knob.integer("documents per worker task", min=1)
    workers: int = knob.integer("processes; 0 = every core", min=0)

    @property
    def inputs(self) -> tuple[Path, ...]:
        return corpus_files(self.input_dir, self.corpus)


def corpus_files(input_dir: Path, corpus: str) -> tuple[Path, ...]:
    """The files of a corpus switch (`docs`, `docs+informal`): NAME.txt or NAME.txt.gz in `input_dir`."""
    if corpus not in CORPORA:
        raise InputError(f"unknown corpus {corpus!r}: choose one of {', '.join(CORPORA)}")
    files = []
    for name in CORPORA[corpus]:
        candidates = [input_dir / f"{name}.txt", input_dir / f"{name}.txt.gz"]
        found = [c for c in candidates if c.exists()]
        if not found:
            raise InputError(f"{input_dir}: corpus {corpus!r} needs {candidates[0].name} or {candidates[1].name}")
        files.append(found[0])
    return tuple(files)


def read_lexicon(path: Path | None) -> set[str]:
    """One protected term per line; blank lines and `#` comments are ignored."""
    if path is None:
        return set()
    if not path.exists():
        raise InputError(f"{path}: lexicon file not found")
    terms = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        term = line.split("#", 1)[0].strip()
        if term:
            terms.add(term.lower())
    return terms


def task_documents(task_dir: Path, repeat: int) -> list[list[str]]:
    """The task's training texts as documents (a text's sentences, a pair's two texts in turn), `repeat` times
    over: task-adaptive pretraining text. Never the eval or test split."""
    if repeat == 0:
        return []
    split = read_split(split_file(task_dir, "train"))
    texts = zip(split.texts_a, split.texts_b or [""] * len(split.texts_a), strict=True)
    documents = [split_sentences(a) + split_sentences(b) for a, b in texts]
    return [document for _ in range(repeat) for document in documents if document]


def batched_documents(documents: Iterable[list[str]], size: int) -> Iterator[list[list[str]]]:
    batch: list[list[str]] = []
    for document in documents:
        batch.append(document)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _count_batch(documents: list[list[str]]) -> CorpusCounts:
    return count_candidate_words([line for document in documents for line in document])


def _fix_batch(documents: list[list[str]]) -> tuple[list[list[str]], Counter, Counter]:
    fixer, stats, changes = worker_state(), Counter(), Counter()
    fixed = [[fixer.fix_line(line, stats, changes) for line in document] for document in documents]
    return fixed, stats, changes


def _progress_pass(job: VnlpJob, description: str) -> tuple[CorpusReader, tqdm]:
    reader = CorpusReader(job.inputs)
    return reader, tqdm(total=reader.total_bytes, unit="B", unit_scale=True, desc=description)


def run_vnlp(job: VnlpJob) -> dict:
    """Clean the corpus into `job.out_dir` (corpus.txt, audit.tsv, info.json); returns the metrics."""
    lexicon = read_lexicon(job.lexicon)
    workers = default_workers(job.workers)
    started = time.perf_counter()
    task = task_documents(job.task_dir, job.task_text_repeat)

    reader, progress = _progress_pass(job, "vnlp count")
    counts = CorpusCounts(Counter(), set())
    with progress:
        batches = batched_documents(chain(reader, task), job.chunk_documents)
        for batch_counts in ordered_map(_count_batch, batches, workers):
            counts.merge(batch_counts)
            progress.update(reader.bytes_read - progress.n)
    reader.require_documents(2)
    log.info(
        "pass 1: %d documents, %d distinct words, %d code terms",
        reader.documents,
        len(counts.words),
        len(counts.code_terms),
    )

    stats, changes = Counter(), Counter()
    reader, progress = _progress_pass(job, "vnlp fix")
    with atomic_dir(job.out_dir) as out_dir, progress:
        with open(out_dir / CORPUS_FILE, "w", encoding="utf-8") as out:
            batches = batched_documents(chain(reader, task), job.chunk_documents)
            for fixed, batch_stats, batch_changes in ordered_map(
                _fix_batch, batches, workers, setup=(SpellFixer, (counts, lexicon, job.spell))
            ):
                write_documents(out, fixed)
                stats.update(batch_stats)
                changes.update(batch_changes)
                progress.update(reader.bytes_read - progress.n)
        _write_audit(out_dir / "audit.tsv", changes, AUDIT_ROWS)
        seconds = time.perf_counter() - started
        metrics = {**_metrics(reader, stats, changes, seconds), "task_documents": len(task)}
        info = {
            "corpus": job.corpus,
            "inputs": [str(p) for p in job.inputs],
            "spell": asdict(job.spell),
            "lexicon_terms": len(lexicon),
        }
        if task:  # only then: without task text the output does not depend on the task
            info["task_text"] = {"task_dir": str(job.task_dir), "repeat": job.task_text_repeat, "documents": len(task)}
        (out_dir / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info(
        "vnlp: %d corrections, %d splits, %d protected tokens in %.1fs",
        metrics["corrections"],
        metrics["splits"],
        metrics["protected_tokens"],
        seconds,
    )
    return metrics


def _write_audit(path: Path, changes: Counter, rows: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("kind\toriginal\treplacement\tcount\n")
        for (kind, original, replacement), count in changes.most_common(rows):
            out.write(f"{kind}\t{original}\t{replacement}\t{count}\n")


def _metrics(reader: CorpusReader, stats: Counter, changes: Counter, seconds: float) -> dict:
    protected = {k.removeprefix("protected_"): v for k, v in sorted(stats.items()) if k.startswith("protected_")}
    return {
        "documents": reader.documents,
        "lines": reader.lines,
        "words": stats["words"],
        "corrections": sum(v for (kind, _, _), v in changes.items() if kind == "correct"),
        "splits": sum(v for (kind, _, _), v in changes.items() if kind == "split"),
        "protected_tokens": sum(protected.values()),
        "protected": protected,
        "unknown_left": stats["unknown"],
        "seconds": round(seconds, 2),
        "mb_per_second": round(reader.bytes_read / 1e6 / max(seconds, 1e-9), 3),
        "words_per_second": round(stats["words"] / max(seconds, 1e-9)),
    }
