"""Task files, their encoding, and the scores, on hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest

from vbert.errors import InputError
from vbert.tasks import classification_scores, encode_split, read_split, read_task
from vbert.tokenization import FullTokenizer, load_vocab

from .helpers import REPO, write_lines


def test_errors_name_file_and_line(tmp_path):
    path = write_lines(tmp_path / "train.tsv", ["label\ttext", "a\tfine", "b\ttoo\tmany", "c\t "])
    with pytest.raises(InputError, match=r"train.tsv:3: 3 columns, the header has 2"):
        read_split(path)
    write_lines(path, ["label\ttext", "a\tfine", "b\t  "])
    with pytest.raises(InputError, match=r"train.tsv:3: empty text"):
        read_split(path)
    write_lines(path, ["label\ttext", "a\tfine", "z\tunseen"])
    with pytest.raises(InputError, match=r"train.tsv:3: label 'z' does not occur in the training split"):
        read_split(path, ["a", "b"])
    write_lines(path, ["category\ttext"])
    with pytest.raises(InputError, match=r"train.tsv:1: header"):
        read_split(path)


def test_the_sample_task_reads():
    splits, labels = read_task(REPO / "data/sample/pkg_section")
    assert labels == ["admin", "devel", "games", "graphics", "net", "science", "sound", "utils"]
    assert [len(splits[s].labels) for s in ("train", "eval", "test")] == [2400, 400, 400]


def test_encoding_single_and_pair(google_test_vocab):
    tokenizer = FullTokenizer(load_vocab(google_test_vocab))
    single = read_split(write_lines(google_test_vocab.parent / "s.tsv", ["label\ttext", "x\tunwanted running"]))
    encoded = encode_split(single, tokenizer, 6)
    # [CLS]=1 un=7 ##want=4 ##ed=5 [SEP]=2: truncated to 6 tokens
    assert encoded["input_ids"].tolist() == [[1, 7, 4, 5, 8, 2]]
    pair = read_split(
        write_lines(google_test_vocab.parent / "p.tsv", ["label\ttext_a\ttext_b", "x\tunwanted\trunning"])
    )
    encoded = encode_split(pair, tokenizer, 10)
    assert encoded["input_ids"].tolist() == [[1, 7, 4, 5, 2, 8, 9, 2, 0, 0]]
    assert encoded["segment_ids"].tolist() == [[0, 0, 0, 0, 0, 1, 1, 1, 0, 0]]
    assert encoded["input_mask"].tolist() == [[1] * 8 + [0, 0]]


def test_scores_exact():
    gold = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    scores = classification_scores(gold, predicted, 3)
    # class 0: p=1/2 r=1/2; class 1: p=2/3 r=1; class 2: p=1 r=1/2
    f1s = [0.5, 0.8, 2 / 3]
    assert scores["accuracy"] == pytest.approx(4 / 6, abs=1e-6)
    assert scores["macro_f1"] == pytest.approx(sum(f1s) / 3, abs=1e-6)
    binary = classification_scores(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]), 2, positive=1)
    assert binary == {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5}
