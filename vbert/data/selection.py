"""Retrieval-selected domain text (kNN-TAPT, Gururangan et al. 2020, "Don't Stop Pretraining", section 5): the
passages of the domain corpus nearest to the task's train texts, so that domain pretraining spends its updates on
the part of the corpus that looks like the task.

    passages   each document cut into runs of consecutive sentences of about `passage_words` words
    embed      passages and task texts: the starting model's mean-pooled, L2-normalised encoder outputs (its own
               sentence embedding for all-MiniLM-L6-v2), each text cut to `max_pieces` word pieces
    select     every task text's nearest passage, then every one's second nearest, ... (exact cosine nearest
               neighbours, scikit-learn) until `fraction` of the passages are chosen; kept in corpus order

The paper embedded with VAMPIRE and took k neighbours per task text; taking them rank by rank until a budget is
met is the same choice with the budget stated as a share of the corpus.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Passage:
    document: int  # its document's index in the corpus
    sentences: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def passages(documents: Iterable[list[str]], words: int) -> Iterator[Passage]:
    """Each document's sentences in runs of at least `words` words (a document's last run may be shorter; a longer
    sentence is a run of its own)."""
    for index, document in enumerate(documents):
        run: list[str] = []
        count = 0
        for sentence in document:
            run.append(sentence)
            count += len(sentence.split())
            if count >= words:
                yield Passage(index, tuple(run))
                run, count = [], 0
        if run:
            yield Passage(index, tuple(run))


def nearest_first(passage_vectors: np.ndarray, task_vectors: np.ndarray, count: int) -> np.ndarray:
    """Indices of `count` passages: each task text's nearest passage, then each one's second nearest, and so on
    (each passage once), as sorted indices. Vectors are rows, L2-normalised."""
    from sklearn.neighbors import NearestNeighbors

    total = len(passage_vectors)
    count = min(count, total)
    if count <= 0:
        return np.zeros(0, np.int64)
    index = NearestNeighbors(metric="cosine", algorithm="brute").fit(passage_vectors)
    k = min(total, max(1, -(-2 * count // max(1, len(task_vectors)))))
    while True:
        neighbours = index.kneighbors(task_vectors, n_neighbors=k, return_distance=False)
        by_rank = neighbours.T.ravel()  # every text's 1st neighbour, then every text's 2nd, ...
        _, first = np.unique(by_rank, return_index=True)
        if len(first) >= count or k == total:
            chosen = by_rank[np.sort(first)[:count]]
            return np.sort(chosen)
        k = min(total, 2 * k)


def nearest_similarity(passage_vectors: np.ndarray, task_vectors: np.ndarray) -> np.ndarray:
    """Each passage's cosine similarity to its nearest task text (computed in chunks: memory stays bounded)."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(metric="cosine", algorithm="brute").fit(task_vectors)
    distances, _ = index.kneighbors(passage_vectors, n_neighbors=1)
    return 1.0 - distances[:, 0]


def embed(backbone, tokenizer, texts: list[str], max_pieces: int, batch_size: int, desc: str) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings of `texts` (each cut to `max_pieces` pieces), with a progress bar."""
    from tqdm import tqdm

    from vbert.model.classifier import mean_pooled
    from vbert.text.encoding import Encoder

    encoder = Encoder(tokenizer, max_pieces)
    step = 50 * batch_size
    parts = []
    with tqdm(total=len(texts), desc=desc, unit=" texts", mininterval=5) as progress:
        for start in range(0, len(texts), step):
            rows = encoder.rows(texts[start : start + step])[0]
            parts.append(mean_pooled(backbone, rows, batch_size))
            progress.update(len(rows))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
