"""Hugging Face folders that `transformers` loads as they are, giving our logits and our token ids; and that our
pipeline reads back (`pretrain.init_checkpoint`) as the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from tests.helpers import TINY_BERT, tiny_finetuned
from vbert.model.bert import BertConfig, build_pretrainer
from vbert.model.classifier import load_finetuned
from vbert.model.huggingface import export_classifier, export_masked_lm, hf_name
from vbert.model.weights import assign_weights, google_variable_map, initial_tensors
from vbert.text.encoding import Encoder
from vbert.text.tokenization import load_tokenizer

LABELS = ["games", "science"]
TEXTS = ["Ünïcödé Café: a naïve puzzle game", "chess engine for the terminal", "library " * 40]
PAIRS = [["résumé of the rules", "a board game"], ["numerical methods", "science " * 30]]


def test_names_map_to_hugging_face_and_back():
    assert hf_name("bert/encoder/layer_3/attention/self/query/kernel") == (
        "bert.encoder.layer.3.attention.self.query.weight",
        True,
    )
    assert hf_name("bert/embeddings/LayerNorm/gamma") == ("bert.embeddings.LayerNorm.weight", False)
    assert hf_name("cls/predictions/transform/dense/bias") == ("cls.predictions.transform.dense.bias", False)
    assert hf_name("cls/predictions/output_bias") == ("cls.predictions.bias", False)


def hf_inputs(features: dict) -> dict:
    return {
        "input_ids": torch.tensor(features["input_ids"], dtype=torch.long),
        "attention_mask": torch.tensor(features["input_mask"], dtype=torch.long),
        "token_type_ids": torch.tensor(features["segment_ids"], dtype=torch.long),
    }


def test_the_classifier_loads_in_transformers_with_our_logits_and_ids(tmp_path):
    best = tiny_finetuned(tmp_path / "best", LABELS, max_seq_length=32)
    model, config, serving = load_finetuned(best)
    folder = export_classifier(model, config, serving.labels, best, tmp_path / "hf" / "classifier")

    hf_model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
        folder, local_files_only=True, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert hf_model.config.id2label == {0: "games", 1: "science"}
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    encoder = Encoder(load_tokenizer(best), 32)
    for items in (TEXTS, PAIRS):
        ours = encoder.encode_items(items).features
        theirs = tokenizer(
            *(([t for t, _ in items], [t for _, t in items]) if isinstance(items[0], list) else (items,)),
            truncation="longest_first",
            max_length=32,
            padding="longest",
            return_tensors="np",
        )
        np.testing.assert_array_equal(theirs["input_ids"], ours["input_ids"])
        np.testing.assert_array_equal(theirs["token_type_ids"], ours["segment_ids"])
        expected = np.asarray(model(ours, training=False))
        with torch.no_grad():
            logits = hf_model(**hf_inputs(ours)).logits.numpy()
        np.testing.assert_allclose(logits, expected, atol=1e-4)


def random_pretrainer(config: BertConfig, seed: int):
    """A pretrainer whose every weight is random (the MLM bias too, which starts at zero)."""
    import keras

    keras.utils.set_random_seed(seed)
    pretrainer = build_pretrainer(config)
    rng = np.random.default_rng(seed)
    pretrainer.pretraining_heads.output_bias.assign(rng.normal(0, 0.5, config.vocab_size).astype(np.float32))
    return pretrainer


NEW_TOKENS = ["kubectl", "vsphere", "##ctl"]  # what the `extend` vocabulary appends after Google's 30,522


@pytest.mark.parametrize("appended", [[], NEW_TOKENS], ids=["google-vocab", "extended-vocab"])
def test_the_masked_lm_loads_in_transformers_and_reads_back_as_the_same_weights(tmp_path, appended):
    tokenizer_dir = tiny_finetuned(tmp_path / "tok", LABELS)  # Google's uncased vocabulary
    vocab_file = tokenizer_dir / "vocab.txt"
    vocab_file.write_text(vocab_file.read_text() + "".join(f"{token}\n" for token in appended))
    vocab_size = 30522 + len(appended)
    config = BertConfig(vocab_size=vocab_size, max_position_embeddings=128, gelu_approximate=False, **TINY_BERT)
    pretrainer = random_pretrainer(config, seed=3)
    folder = export_masked_lm(pretrainer, config, tokenizer_dir, tmp_path / "hf" / "masked_lm")

    hf_model, info = transformers.AutoModelForMaskedLM.from_pretrained(
        folder, local_files_only=True, output_loading_info=True
    )
    assert not info["missing_keys"], info
    assert type(hf_model).__name__ == "BertForMaskedLM" and hf_model.config.vocab_size == vocab_size
    pairs = [*PAIRS, ["kubectl apply", "vsphere cluster, minikubectl"]]
    features = Encoder(load_tokenizer(tokenizer_dir), 32).encode_items(pairs).features
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    theirs = tokenizer(*zip(*pairs, strict=True), truncation="longest_first", max_length=32, padding="longest")
    np.testing.assert_array_equal(np.asarray(theirs["input_ids"]), features["input_ids"])
    assert (features["input_ids"].max() >= 30522) == bool(appended)
    width = features["input_ids"].shape[1]
    positions = np.tile(np.arange(width, dtype=np.int32), (len(pairs), 1))
    outputs = pretrainer.backbone(
        {
            "token_ids": features["input_ids"],
            "segment_ids": features["segment_ids"],
            "padding_mask": features["input_mask"],
        },
        training=False,
    )
    expected, _ = pretrainer.pretraining_heads(outputs["sequence_output"], outputs["pooled_output"], positions)
    with torch.no_grad():
        logits = hf_model(**hf_inputs(features)).logits.numpy()
    np.testing.assert_allclose(logits, np.asarray(expected), atol=1e-4)

    tensors, _ = initial_tensors(str(folder))  # as `pretrain.init_checkpoint: <folder>` reads it
    fresh = build_pretrainer(config)
    variables = google_variable_map(config, fresh.backbone, fresh.pretraining_heads)
    gap = assign_weights(variables, tensors, str(folder))
    assert sorted(gap) == ["cls/seq_relationship/output_bias", "cls/seq_relationship/output_weights"]
    original = google_variable_map(config, pretrainer.backbone, pretrainer.pretraining_heads)
    for name, variable in variables.items():
        if name not in gap:
            np.testing.assert_array_equal(np.asarray(variable), np.asarray(original[name]), err_msg=name)
