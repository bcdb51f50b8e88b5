"""Pretraining pieces: Google's schedule, the optimizer's decay exclusions, losses that fall on real examples."""

from __future__ import annotations

import numpy as np
import pytest

from vbert.modeling import BertConfig
from vbert.pretraining import (
    BertPretrainer,
    WarmupLinearDecay,
    make_optimizer,
    pretraining_dataset,
    reinitialise_replaced_rows,
)
from vbert.pretraining_data import InstanceConfig

from .helpers import tiny_pretraining_inputs


def tiny_tfrecords(tmp_path, documents: int) -> list[str]:
    """MSL-32 training files made by the tfrecords stage from the first documents of the sample."""
    phase = InstanceConfig(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=2)
    tiny_pretraining_inputs(tmp_path, documents=documents, phases=(phase,), eval_fraction=0.0)
    return sorted(str(p) for p in (tmp_path / "tf").glob("*.train-*"))


def tiny_pretrainer(hidden: int, layers: int, learning_rate: float, steps: int) -> BertPretrainer:
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
    )
    model = BertPretrainer(config)
    model.compile(optimizer=make_optimizer(learning_rate, num_train_steps=steps, num_warmup_steps=max(1, steps // 10)))
    return model


def test_warmup_then_linear_decay():
    schedule = WarmupLinearDecay(1e-3, num_train_steps=100, num_warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100, 120)]
    assert values == pytest.approx([0.0, 5e-4, 9e-4, 4.5e-4, 0.0, 0.0])


def test_reinitialise_replaced_rows_mean_of_old_pieces():
    embeddings = np.arange(12, dtype=np.float32).reshape(4, 3)
    replaced = [{"id": 0, "old_piece_ids": [1, 3]}, {"id": 2, "old_piece_ids": []}]
    result = reinitialise_replaced_rows(embeddings, replaced)
    assert result[0].tolist() == [6.0, 7.0, 8.0]  # mean of rows 1 and 3
    assert result[1].tolist() == embeddings[1].tolist() and result[3].tolist() == embeddings[3].tolist()
    assert np.all(np.abs(result[2]) <= 0.04)  # no pieces: random, truncated at 2 * initializer_range
    random_rows = reinitialise_replaced_rows(embeddings, replaced, mode="random")
    assert np.all(np.abs(random_rows[0]) <= 0.04)


@pytest.mark.xdist_group("heavy")
def test_tiny_bert_learns_from_our_tfrecords(tmp_path):
    train = tiny_tfrecords(tmp_path, documents=30)
    model = tiny_pretrainer(hidden=32, layers=2, learning_rate=3e-3, steps=60)
    dataset = pretraining_dataset(train, 32, 5, batch_size=16, training=True)
    before = model.evaluate(dataset, steps=4, return_dict=True, verbose=0)
    model.fit(dataset, steps_per_epoch=60, epochs=1, verbose=0)
    after = model.evaluate(dataset, steps=4, return_dict=True, verbose=0)
    assert set(after) >= {"masked_lm_loss", "masked_lm_accuracy", "next_sentence_loss", "next_sentence_accuracy"}
    assert after["masked_lm_loss"] < before["masked_lm_loss"] - 1.0
    decayed = {v.path for v in model.trainable_variables if model.optimizer._use_weight_decay(v)}
    assert any(p.endswith("kernel") for p in decayed)
    assert not any(p.endswith(("bias", "gamma", "beta")) for p in decayed)


def test_evaluate_equals_the_mean_of_its_batches(tmp_path):
    """Guards the explicit `steps=` in the pretrain stage: the reported metrics are the batch means."""
    train = tiny_tfrecords(tmp_path, documents=10)
    model = tiny_pretrainer(hidden=16, layers=1, learning_rate=1e-3, steps=10)
    dataset = pretraining_dataset(train, 32, 5, batch_size=8, training=False)
    reported = model.evaluate(dataset, steps=3, return_dict=True, verbose=0)
    manual = [model._pretraining_losses(batch, training=False)[1] for batch in dataset.take(3)]
    for name in ("next_sentence_accuracy", "next_sentence_loss", "masked_lm_loss"):
        assert reported[name] == pytest.approx(np.mean([float(parts[name][0]) for parts in manual]), rel=1e-5)
