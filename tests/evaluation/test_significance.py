"""The paired bootstrap on hand-checkable arms."""

from __future__ import annotations

import numpy as np

from vbert.evaluation.significance import paired_bootstrap


def accuracy(gold, predicted) -> float:
    return float(np.mean(gold == predicted))


def test_paired_bootstrap_on_hand_checkable_arms():
    gold = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    always_right, always_wrong = [gold.copy(), gold.copy()], [1 - gold]
    result = paired_bootstrap(gold, always_right, always_wrong, accuracy, samples=200)
    assert result["difference"] == 1.0 and result["ci95"] == [1.0, 1.0] and result["beyond_noise"]
    same = paired_bootstrap(gold, always_right, [gold.copy()], accuracy, samples=200)
    assert same["difference"] == 0.0 and same["ci95"] == [0.0, 0.0] and not same["beyond_noise"]
    half = np.array([0, 1, 0, 1, 1, 0, 1, 0])  # right on the first four only: accuracy 0.5
    mixed = paired_bootstrap(gold, [half], always_right, accuracy, samples=500)
    assert mixed["difference"] == -0.5 and mixed["ci95"][0] < -0.5 < mixed["ci95"][1] < 0
