"""Baselines every fine-tuning run reports on the same splits: the majority class, TF-IDF + logistic regression
(scikit-learn) with its n-gram range and C chosen on the eval split, and the starting model's frozen sentence
embeddings + logistic regression with C chosen on eval (what a practitioner tries first: seconds, no fine-tuning)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from vbert.text.tasks import Split

log = logging.getLogger(__name__)

NGRAM_RANGES = ((1, 1), (1, 2))
C_VALUES = (0.3, 1.0, 3.0, 10.0, 30.0)
EMBEDDING_C_VALUES = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # unit-length embeddings want weaker regularisation

Scores = Callable[[np.ndarray, np.ndarray], dict]  # (gold, predicted) -> the task's scores


def majority(train_y: np.ndarray, test_y: np.ndarray, scores: Scores, labels: list[str]) -> dict:
    """Always the most frequent training label."""
    label = int(np.bincount(train_y).argmax())
    return {"label": labels[label], **scores(test_y, np.full_like(test_y, label))}


def _texts(split: Split) -> list[str]:
    return (
        split.texts_a
        if split.texts_b is None
        else [f"{a} [SEP] {b}" for a, b in zip(split.texts_a, split.texts_b, strict=True)]
    )


def tfidf_logistic_regression(splits: dict[str, Split], y: dict[str, np.ndarray], scores: Scores) -> dict:
    """TF-IDF (sublinear tf, words seen in 2+ training texts) + logistic regression, the n-gram range and C with
    the best eval F1; returns its test scores, its eval F1 and the choice."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    best = None
    for ngram_range in NGRAM_RANGES:
        vectorizer = TfidfVectorizer(ngram_range=ngram_range, sublinear_tf=True, min_df=2)
        train = vectorizer.fit_transform(_texts(splits["train"]))
        evaluation, test = (vectorizer.transform(_texts(splits[name])) for name in ("eval", "test"))
        for c in C_VALUES:
            model = LogisticRegression(C=c, max_iter=2000).fit(train, y["train"])
            eval_f1 = scores(y["eval"], model.predict(evaluation))["f1"]
            if best is None or eval_f1 > best["eval_f1"]:
                best = {"eval_f1": eval_f1, "ngram_range": list(ngram_range), "C": c, "test": model.predict(test)}
    assert best is not None
    log.info("TF-IDF + LR: n-grams %s, C %s chosen on eval (F1 %.4f)", best["ngram_range"], best["C"], best["eval_f1"])
    return {
        **{f"test_{k}": v for k, v in scores(y["test"], best.pop("test")).items()},
        **best,
    }


def embeddings_logistic_regression(x: dict[str, np.ndarray], y: dict[str, np.ndarray], scores: Scores) -> dict:
    """Logistic regression on fixed features (frozen sentence embeddings) per split, C with the best eval F1;
    returns its test scores, its eval F1 and C."""
    from sklearn.linear_model import LogisticRegression

    best = None
    for c in EMBEDDING_C_VALUES:
        model = LogisticRegression(C=c, max_iter=3000).fit(x["train"], y["train"])
        eval_f1 = scores(y["eval"], model.predict(x["eval"]))["f1"]
        if best is None or eval_f1 > best["eval_f1"]:
            best = {"eval_f1": eval_f1, "C": c, "test": model.predict(x["test"])}
    assert best is not None
    log.info("frozen embeddings + LR: C %s chosen on eval (F1 %.4f)", best["C"], best["eval_f1"])
    return {**{f"test_{k}": v for k, v in scores(y["test"], best.pop("test")).items()}, **best}
