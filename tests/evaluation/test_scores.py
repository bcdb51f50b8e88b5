"""The scores on hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest

from vbert.core.errors import InputError
from vbert.evaluation.scores import classification_scores, positive_index


def test_scores_exact():
    gold = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    scores = classification_scores(gold, predicted, 3, positive=None)
    # class 0: p=1/2 r=1/2; class 1: p=2/3 r=1; class 2: p=1 r=1/2
    f1s = [0.5, 0.8, 2 / 3]
    assert scores["accuracy"] == pytest.approx(4 / 6, abs=1e-6)
    assert scores["macro_f1"] == pytest.approx(sum(f1s) / 3, abs=1e-6)
    binary = classification_scores(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]), 2, positive=1)
    assert binary == {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5}


def test_positive_label_names_a_class_of_the_task():
    assert positive_index(["neg", "pos"], "pos") == 1
    assert positive_index(["neg", "pos"], None) is None
    with pytest.raises(InputError, match="positive_label 'yes' is not a label of the task"):
        positive_index(["neg", "pos"], "yes")
