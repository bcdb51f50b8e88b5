"""Retrieval-selected domain text (vbert.data.selection): passages, and nearest neighbours rank by rank."""

from __future__ import annotations

import numpy as np

from vbert.data.selection import nearest_first, nearest_similarity, passages


def test_passages_are_runs_of_sentences_of_at_least_the_words_within_a_document():
    documents = [["one two", "three four five", "six"], ["a b c d e f g"], ["x"]]
    found = [(p.document, p.sentences) for p in passages(documents, 4)]
    assert found == [
        (0, ("one two", "three four five")),  # 5 words >= 4
        (0, ("six",)),  # the document's shorter last run
        (1, ("a b c d e f g",)),  # a long sentence is a passage of its own
        (2, ("x",)),
    ]


def unit(*rows: list[float]) -> np.ndarray:
    values = np.asarray(rows, np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


# passages 0..5 on a circle; task texts near passage 1 and near passage 4
PASSAGES = unit(*[[np.cos(a), np.sin(a)] for a in np.linspace(0, np.pi, 6)])
TASK = unit([np.cos(0.65), np.sin(0.65)], [np.cos(2.5), np.sin(2.5)])


def test_every_task_text_gets_its_nearest_passage_before_any_gets_its_second():
    angles = np.linspace(0, np.pi, 6)  # passage angles 0, .63, 1.26, 1.88, 2.51, 3.14
    assert np.argmin(abs(angles - 0.65)) == 1 and np.argmin(abs(angles - 2.5)) == 4
    assert nearest_first(PASSAGES, TASK, 2).tolist() == [1, 4]
    # second neighbours: text 1 (angle 0.65) -> passage 2 (0.61 away; passage 0 is 0.65 away),
    # text 2 (angle 2.5) -> passage 3 (0.62 away; passage 5 is 0.64 away)
    assert nearest_first(PASSAGES, TASK, 4).tolist() == [1, 2, 3, 4]
    assert nearest_first(PASSAGES, TASK, 3).tolist() == [1, 2, 4]  # rank 2 in task order: text 1's first
    assert nearest_first(PASSAGES, TASK, 10).tolist() == [0, 1, 2, 3, 4, 5]  # the budget caps at the corpus
    assert nearest_first(PASSAGES, TASK, 0).tolist() == []


def test_nearest_similarity_is_the_cosine_to_the_closest_task_text():
    expected = (PASSAGES @ TASK.T).max(axis=1)
    np.testing.assert_allclose(nearest_similarity(PASSAGES, TASK), expected, atol=1e-6)
