"""The select stage: the part of the cleaned corpus that domain pretraining trains on. `fraction: 1` keeps it all
(the paper's DAPT); below 1, the passages nearest to the task's train texts (retrieval-selected DAPT, kNN-TAPT:
`vbert.data.selection`). Writes the vnlp stage's format (corpus.txt, info.json), so the tfrecords stage reads
either the same way.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from vbert.core import params as knob
from vbert.core.atomic import atomic_dir
from vbert.core.errors import InputError
from vbert.data.selection import Passage, embed, nearest_first, nearest_similarity, passages
from vbert.model.precision import SETTINGS as PRECISIONS
from vbert.text.corpus import CORPUS_FILE, CorpusReader, write_documents
from vbert.text.tasks import read_split, split_file

log = logging.getLogger(__name__)

INFO_FILE = "info.json"


@dataclass(frozen=True)
class SelectJob:
    SECTION: ClassVar[str] = "select"
    clean_dir: Path
    task_dir: Path  # the finetune task: its train texts are what the passages are chosen to be near
    out_dir: Path
    fraction: float = knob.probability(
        "share of the corpus's passages kept, those nearest the task's train texts (1: the whole corpus)", min_open=True
    )
    passage_words: int = knob.integer("a passage: consecutive sentences of a document, at least this many words", min=1)
    model: str = knob.text("the embedding model: minilm (packaged) or an HF BERT folder", empty=False)
    max_pieces: int = knob.integer("word pieces of each text embedded", min=8, max=512)
    batch_size: int = knob.integer("texts per embedding batch", min=1)
    mixed_precision: str = knob.choice(PRECISIONS, "as pretrain's: bf16 where the hardware has it")


def task_texts(task_dir: Path) -> list[str]:
    """The task's train texts (a pair's two texts joined by a space); never eval or test."""
    split = read_split(split_file(task_dir, "train"))
    if split.texts_b is None:
        return list(split.texts_a)
    return [f"{a} {b}" for a, b in zip(split.texts_a, split.texts_b, strict=True)]


def rejoined(chosen: list[Passage], order: np.ndarray) -> list[list[str]]:
    """The chosen passages as documents: passages next to each other in the same document stay one document."""
    documents: list[list[str]] = []
    previous = None
    for position in order.tolist():
        passage = chosen[position]
        if previous is not None and previous == position - 1 and chosen[previous].document == passage.document:
            documents[-1].extend(passage.sentences)
        else:
            documents.append(list(passage.sentences))
        previous = position
    return documents


def run_select(job: SelectJob) -> dict:
    """Write `out_dir` (corpus.txt, info.json); returns the metrics."""
    info = json.loads((job.clean_dir / INFO_FILE).read_text(encoding="utf-8"))
    started = time.perf_counter()
    with atomic_dir(job.out_dir) as tmp:
        if job.fraction >= 1:
            shutil.copy(job.clean_dir / CORPUS_FILE, tmp / CORPUS_FILE)
            selection = {"fraction": 1.0}
        else:
            selection = _select(job, tmp / CORPUS_FILE)
        (tmp / INFO_FILE).write_text(json.dumps({**info, "selection": selection}, indent=2) + "\n", encoding="utf-8")
    return {**selection, "seconds": round(time.perf_counter() - started, 1)}


def _select(job: SelectJob, out: Path) -> dict:
    from vbert.model.precision import computing_in
    from vbert.model.weights import starting_encoder
    from vbert.text.tokenization import load_tokenizer

    found = list(passages(CorpusReader([job.clean_dir / CORPUS_FILE]), job.passage_words))
    wanted = round(job.fraction * len(found))
    if wanted < 1:
        raise InputError(
            f"select.fraction = {job.fraction}: keeps none of the corpus's {len(found)} passages of "
            f"{job.passage_words}+ words; raise it to {1 / max(1, len(found)):.2g} at least (or 1 for all)"
        )
    texts = task_texts(job.task_dir)
    with computing_in(job.mixed_precision) as precision:
        backbone, folder = starting_encoder(job.model)
        tokenizer = load_tokenizer(folder)
        started = time.perf_counter()
        task = embed(backbone, tokenizer, texts, job.max_pieces, job.batch_size, "task texts")
        corpus = embed(backbone, tokenizer, [p.text for p in found], job.max_pieces, job.batch_size, "passages")
        embedding_seconds = time.perf_counter() - started
    order = nearest_first(corpus, task, wanted)
    with open(out, "w", encoding="utf-8") as handle:
        write_documents(handle, rejoined(found, order))
    similarity = nearest_similarity(corpus, task)
    kept_words = sum(len(found[i].text.split()) for i in order.tolist())
    log.info("selected %d of %d passages (%d words) in %.0f s", len(order), len(found), kept_words, embedding_seconds)
    return {
        "fraction": job.fraction,
        "passages": len(found),
        "selected_passages": len(order),
        "selected_words": kept_words,
        "task_texts": len(texts),
        "similarity_selected_mean": round(float(similarity[order].mean()), 4) if len(order) else None,
        "similarity_all_mean": round(float(similarity.mean()), 4),
        "embedding_seconds": round(embedding_seconds, 1),
        "mixed_precision": precision,
    }
