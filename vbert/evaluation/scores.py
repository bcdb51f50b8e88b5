"""The scores the paper reports: accuracy, and precision, recall and F1 of the positive class for a binary task
(`positive_label`) or macro-averaged over the classes otherwise. One definition for every stage."""

from __future__ import annotations

import numpy as np

from vbert.core.errors import InputError


def positive_index(labels: list[str], positive_label: str | None) -> int | None:
    """The class whose precision, recall and F1 a binary task reports (None: macro over classes)."""
    if not positive_label:
        return None
    if positive_label not in labels:
        raise InputError(f"positive_label {positive_label!r} is not a label of the task ({', '.join(labels)})")
    return labels.index(positive_label)


def classification_scores(
    gold: np.ndarray, predicted: np.ndarray, num_labels: int, *, positive: int | None
) -> dict[str, float]:
    """Accuracy, precision, recall, F1: of the positive class for binary tasks, macro-averaged otherwise."""
    gold, predicted = np.asarray(gold), np.asarray(predicted)
    scores = {"accuracy": float(np.mean(gold == predicted))}
    classes = [positive] if positive is not None else list(range(num_labels))
    per_class = []
    for label in classes:
        tp = float(np.sum((predicted == label) & (gold == label)))
        precision = tp / max(1.0, float(np.sum(predicted == label)))
        recall = tp / max(1.0, float(np.sum(gold == label)))
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append((precision, recall, f1))
    precision, recall, f1 = (float(np.mean([c[i] for c in per_class])) for i in range(3))
    scores.update(precision=precision, recall=recall, f1=f1)
    if positive is None:
        scores["macro_f1"] = f1
    return {k: round(v, 6) for k, v in scores.items()}


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min, max and the values themselves, over seeds."""
    return {
        "mean": round(float(np.mean(values)), 6),
        "std": round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 6),
        "min": round(float(np.min(values)), 6),
        "max": round(float(np.max(values)), 6),
        "values": [round(float(v), 6) for v in values],
    }
