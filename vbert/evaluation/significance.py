"""Whether one model beats another beyond noise: a paired bootstrap over the test examples.

Each arm is fine-tuned with several seeds; its score is the mean over its seeds of the task's score on the test
set. The bootstrap draws the test examples with replacement, `samples` times, and scores both arms on the same
draw, so the interval reflects which examples happen to be in the test set; the seeds' spread is reported apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Score = Callable[[np.ndarray, np.ndarray], float]  # (gold, predicted) -> score


def mean_score(gold: np.ndarray, predictions: Sequence[np.ndarray], score: Score) -> float:
    return float(np.mean([score(gold, p) for p in predictions]))


def paired_bootstrap(
    gold: np.ndarray,
    ours: Sequence[np.ndarray],
    theirs: Sequence[np.ndarray],
    score: Score,
    samples: int = 1000,
    seed: int = 0,
) -> dict:
    """Mean score of `ours` minus that of `theirs` (each a list of per-seed predictions), with the 2.5th and
    97.5th percentiles of the same difference over `samples` resamplings of the test examples."""
    gold = np.asarray(gold)
    rng = np.random.default_rng(seed)
    differences = np.empty(samples)
    for i in range(samples):
        draw = rng.integers(0, len(gold), len(gold))
        differences[i] = mean_score(gold[draw], [p[draw] for p in ours], score) - mean_score(
            gold[draw], [p[draw] for p in theirs], score
        )
    low, high = np.percentile(differences, [2.5, 97.5])
    return {
        "difference": round(mean_score(gold, ours, score) - mean_score(gold, theirs, score), 6),
        "ci95": [round(float(low), 6), round(float(high), 6)],
        "samples": samples,
        "beyond_noise": bool(low > 0),
    }
