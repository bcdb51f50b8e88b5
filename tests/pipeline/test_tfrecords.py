"""The tfrecords stage end to end: shards, eval file, both phases, determinism across worker counts."""

from __future__ import annotations

import json

import pytest
import tensorflow as tf

from tests.helpers import GOOGLE_TEST_VOCAB, google_flags, small_corpus, write_lines
from vbert.core.errors import InputError
from vbert.data.features import tf_schema
from vbert.pipeline.tfrecords import TFRecordsJob, build_tfrecords, chunk_documents, is_heldout
from vbert.text.tokenization import Vocab, save_tokenizer

PHASES = (
    google_flags(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2, do_whole_word_mask=True),
    google_flags(max_seq_length=512, max_predictions_per_seq=80, dupe_factor=1, do_whole_word_mask=True),
)


def job(tmp_path, corpus, vocab_dir, name="out", **overrides) -> TFRecordsJob:
    settings = dict(
        corpus=corpus,
        vocab_dir=vocab_dir,
        out_dir=tmp_path / name,
        phases=PHASES,
        dataset_name="docs-wwm-x",
        random_seed=12345,
        num_shards=3,
        eval_fraction=0.1,
        chunk_bytes=20_000,
        workers=1,
        extra_info={},
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
def test_outputs_parse_and_are_identical_for_one_or_two_workers(tmp_path, corpus, bert_tokenizer_dir):
    metrics = build_tfrecords(job(tmp_path, corpus, bert_tokenizer_dir, "one", workers=1))
    build_tfrecords(job(tmp_path, corpus, bert_tokenizer_dir, "two", workers=2))
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
        schema = tf_schema(msl, predictions)
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
    vocab_dir = tmp_path / "vocab"
    vocab_dir.mkdir()
    save_tokenizer(vocab_dir, Vocab(GOOGLE_TEST_VOCAB), do_lower_case=True)
    lines = (vocab_dir / "vocab.txt").read_text().splitlines()
    (vocab_dir / "vocab.txt").write_text("".join(f"{t}\n" for t in lines if t != "[CLS]"))
    with pytest.raises(InputError, match=r"lacks the special token\(s\) \[CLS\]"):
        build_tfrecords(job(tmp_path, corpus, vocab_dir))
    assert not (tmp_path / "out").exists()


def test_single_document_corpus_is_refused_and_leaves_no_output(tmp_path, bert_tokenizer_dir):
    corpus = write_lines(tmp_path / "one.txt", ["Just one document.", "With two sentences."])
    with pytest.raises(InputError, match="only 1 document"):
        build_tfrecords(job(tmp_path, corpus, bert_tokenizer_dir))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.txt"]


def test_the_manifest_records_the_vocabularys_casing(tmp_path, corpus, bert_tokenizer_dir):
    build_tfrecords(job(tmp_path, corpus, bert_tokenizer_dir, phases=PHASES[:1]))
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["do_lower_case"] is True


def test_a_shards_first_records_sample_the_whole_corpus(tmp_path, bert_tokenizer_dir):
    """The global shuffle: a short pretraining reads only the start of a shard; it must see every part of the
    corpus, not its first documents (each document here repeats its own word, which tells records apart)."""
    from vbert.text.tokenization import load_vocab

    vocab = load_vocab(bert_tokenizer_dir / "vocab.txt")
    words = [t for t in vocab.tokens[2000:2400] if t.isalpha()][:60]
    lines = []
    for word in words:
        lines += [f"{word} {word} {word} .", f"the {word} {word} .", ""]
    corpus = write_lines(tmp_path / "corpus.txt", lines)
    phase = google_flags(max_seq_length=32, max_predictions_per_seq=2, dupe_factor=2, short_seq_prob=0.0)
    build_tfrecords(job(tmp_path, corpus, bert_tokenizer_dir, phases=(phase,), num_shards=2, chunk_bytes=100))
    schema = tf_schema(32, 2)
    document_of = {vocab.ids[w]: i for i, w in enumerate(words)}
    shard = tmp_path / "out" / "docs-wwm-x-msl32.train-00000-of-00002.tfrecord"
    documents = []
    for record in list(tf.data.TFRecordDataset(str(shard)))[:12]:
        ids = tf.io.parse_single_example(record, schema)["input_ids"].numpy().tolist()
        documents.append(next(document_of[i] for i in ids if i in document_of))
    assert min(documents) < 20 and max(documents) >= 40, documents  # not the corpus's first dozen documents
