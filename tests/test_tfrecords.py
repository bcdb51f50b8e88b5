"""The tfrecords stage end to end: shards, eval file, both phases, determinism across worker counts."""

from __future__ import annotations

import json

import pytest
import tensorflow as tf

from vbert.errors import InputError
from vbert.pretraining import feature_schema
from vbert.pretraining_data import InstanceConfig
from vbert.tfrecords import TFRecordsJob, build_tfrecords, chunk_documents, is_heldout

from .helpers import GOOGLE_TEST_VOCAB, small_corpus, write_lines

PHASES = (
    InstanceConfig(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2, do_whole_word_mask=True),
    InstanceConfig(max_seq_length=512, max_predictions_per_seq=80, dupe_factor=1, do_whole_word_mask=True),
)


def job(tmp_path, corpus, vocab, name="out", **overrides) -> TFRecordsJob:
    settings = dict(
        corpus=corpus,
        vocab=vocab,
        out_dir=tmp_path / name,
        phases=PHASES,
        dataset_name="docs-wwm-x",
        num_shards=3,
        eval_fraction=0.1,
        chunk_bytes=20_000,
        workers=1,
    )
    return TFRecordsJob(**{**settings, **overrides})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sample_docs):
    return small_corpus(tmp_path_factory.mktemp("c") / "corpus.txt", sample_docs, documents=40)


def test_chunks_are_bounded_and_split_train_eval():
    documents = [[f"line {i} " * 10] for i in range(100)]
    chunks = list(chunk_documents(iter(documents), chunk_bytes=500, eval_fraction=0.2, seed=1))
    assert sum(len(c.documents) for c in chunks) == 100
    assert all(sum(len(line) + 1 for d in c.documents for line in d) < 500 + 80 for c in chunks)
    eval_docs = sum(len(c.documents) for c in chunks if c.split == "eval")
    assert eval_docs == sum(is_heldout(i, 0.2, 1) for i in range(100)) and 5 < eval_docs < 40


@pytest.mark.xdist_group("heavy")
def test_outputs_parse_and_are_identical_for_one_or_two_workers(tmp_path, corpus, bert_vocab_path):
    metrics = build_tfrecords(job(tmp_path, corpus, bert_vocab_path, "one", workers=1))
    build_tfrecords(job(tmp_path, corpus, bert_vocab_path, "two", workers=2))
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir())
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name

    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert [p["max_seq_length"] for p in manifest["phases"]] == [64, 512]
    assert manifest["phases"][0]["train_files"] == [
        f"docs-wwm-x-msl64.train-0000{i}-of-00003.tfrecord" for i in range(3)
    ]
    for phase in manifest["phases"]:
        msl, predictions = phase["max_seq_length"], phase["max_predictions_per_seq"]
        schema = feature_schema(msl, predictions)
        files = [str(tmp_path / "one" / f) for f in [*phase["train_files"], phase["eval_file"]]]
        count = 0
        for record in tf.data.TFRecordDataset(files):
            parsed = tf.io.parse_single_example(record, schema)
            assert parsed["input_ids"][0] == 101 and int(tf.reduce_sum(parsed["masked_lm_weights"])) >= 1
            count += 1
        assert count == phase["train_examples"] + phase["eval_examples"] > 0
        assert phase["eval_examples"] > 0
    assert metrics["msl64"]["train_examples"] == manifest["phases"][0]["train_examples"]
    assert 0.4 < metrics["msl64"]["random_next_fraction"] < 0.7


def test_bad_vocab_leaves_no_output(tmp_path, corpus):
    vocab = write_lines(tmp_path / "vocab.txt", [t for t in GOOGLE_TEST_VOCAB if t != "[CLS]"])
    with pytest.raises(InputError, match=r"lacks the special token\(s\) \[CLS\]"):
        build_tfrecords(job(tmp_path, corpus, vocab))
    assert not (tmp_path / "out").exists()


def test_single_document_corpus_is_refused_and_leaves_no_output(tmp_path, bert_vocab_path):
    corpus = write_lines(tmp_path / "one.txt", ["Just one document.", "With two sentences."])
    with pytest.raises(InputError, match="only 1 document"):
        build_tfrecords(job(tmp_path, corpus, bert_vocab_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.txt"]
