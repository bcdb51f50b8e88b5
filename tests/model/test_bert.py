"""The model: its config loads what it saves, the pretrainer learns from our TFRecords and reports Google's metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import from_params, tiny_pretraining_inputs
from vbert.core.resources import packaged_model_dir
from vbert.data.features import pretraining_dataset
from vbert.data.instances import InstanceConfig
from vbert.model.bert import BertConfig, BertPretrainer, classifier_flops
from vbert.model.optimization import make_optimizer

GOOGLE = {  # a bert_config.json as Google ships it: "gelu" is the tanh form
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 8,
    "initializer_range": 0.02,
    "intermediate_size": 16,
    "max_position_embeddings": 16,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "type_vocab_size": 2,
    "vocab_size": 40,
}


@pytest.mark.parametrize(
    ("source", "approximate"),
    [
        (GOOGLE, True),
        ({**GOOGLE, "model_type": "bert"}, False),  # Hugging Face's "gelu" is exact
        ({**GOOGLE, "model_type": "bert", "hidden_act": "gelu_new"}, True),
    ],
    ids=["google", "hf-exact", "hf-tanh"],
)
def test_config_loads_what_it_saves(tmp_path, source, approximate):
    (tmp_path / "in.json").write_text(json.dumps(source))
    config = BertConfig.from_json(tmp_path / "in.json")
    assert config.gelu_approximate is approximate
    (tmp_path / "out.json").write_text(config.to_json())
    assert BertConfig.from_json(tmp_path / "out.json") == config
    (tmp_path / "again.json").write_text(BertConfig.from_json(tmp_path / "out.json").to_json())
    assert (tmp_path / "again.json").read_text() == (tmp_path / "out.json").read_text()


def test_minilm_config_keeps_its_exact_gelu_through_a_save(tmp_path):
    config = BertConfig.from_json(packaged_model_dir("minilm") / "config.json")
    assert not config.gelu_approximate
    (tmp_path / "config.json").write_text(config.to_json())
    assert BertConfig.from_json(tmp_path / "config.json") == config
    assert json.loads(config.to_json())["hidden_act"] == "gelu"


def tiny_tfrecords(tmp_path, documents: int) -> list[str]:
    """MSL-32 training files made by the tfrecords stage from the first documents of the sample."""
    phase = from_params(InstanceConfig, "tfrecords", max_seq_length=32, max_predictions_per_seq=5, dupe_factor=2)
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


def test_flops_by_hand_for_a_tiny_config():
    config = BertConfig(vocab_size=10, hidden_size=4, num_hidden_layers=2, num_attention_heads=2, intermediate_size=8)
    # per layer, s=3: projections 4*2*3*4*4 = 384, attention 2*2*3*3*4 = 144, feed-forward 2*2*3*4*8 = 384 -> 912
    # two layers 1824, pooler 2*4*4 = 32, classifier 2*4*5 = 40
    assert classifier_flops(config, seq_len=3, num_labels=5) == 1824 + 32 + 40


def test_bert_base_at_msl_128_is_22_35_gflop_per_sequence():
    # per layer 603,979,776 (projections) + 50,331,648 (attention) + 1,207,959,552 (feed-forward); x 12 layers
    base = BertConfig(
        vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    )
    assert classifier_flops(base, 128, 2) == 12 * 1_862_270_976 + 2 * 768 * 768 + 2 * 768 * 2


def test_the_keras_and_keras_hub_internals_we_rely_on_are_the_pinned_ones():
    """vbert/model/weights.py reaches into keras-hub's TransformerEncoder privates and vbert/model/bert.py overrides
    Keras' `_maybe_symbolic_build`: an upgrade of either must fail here, by name, before it fails in a stage."""
    import tomllib

    import keras
    import keras_hub

    from tests.helpers import REPO, TINY_BERT
    from vbert.model.bert import BertConfig, build_backbone

    pins = {
        line.split("==")[0]: line.split("==")[1]
        for line in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
        if "==" in line
    }
    assert keras.__version__ == pins["keras"] and keras_hub.__version__ == pins["keras-hub"]
    assert hasattr(keras.Model, "_maybe_symbolic_build")
    block = build_backbone(BertConfig(vocab_size=100, max_position_embeddings=16, **TINY_BERT)).get_layer(
        "transformer_layer_0"
    )
    for private in (
        "_self_attention_layer",
        "_self_attention_layer_norm",
        "_feedforward_intermediate_dense",
        "_feedforward_output_dense",
        "_feedforward_layer_norm",
    ):
        assert hasattr(block, private), f"keras-hub {keras_hub.__version__}: TransformerEncoder has no {private}"
