"""BERT from Google's TF checkpoints and HF safetensors, checked against a numpy forward pass written here (which
checks the model in vbert.model.bert as much as the loading)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import save_file

from vbert.core.errors import InputError
from vbert.core.resources import packaged_model_dir
from vbert.model.bert import GOOGLE_CHECKPOINTS, BertConfig, build_backbone, build_pretraining_heads, named_config
from vbert.model.weights import (
    assign_weights,
    google_variable_map,
    read_google_checkpoint,
    read_hf_weights,
    reinitialise_replaced_rows,
)

TINY = {
    "vocab_size": 40,
    "hidden_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "max_position_embeddings": 16,
    "type_vocab_size": 2,
    "hidden_act": "gelu",
}


def google_weights(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights with Google's exact variable names and shapes."""
    rng = np.random.default_rng(seed)
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]

    def w(*shape):
        return rng.normal(0, 0.2, shape).astype(np.float32)

    weights = {
        "bert/embeddings/word_embeddings": w(v, h),
        "bert/embeddings/position_embeddings": w(config["max_position_embeddings"], h),
        "bert/embeddings/token_type_embeddings": w(config["type_vocab_size"], h),
        "bert/embeddings/LayerNorm/gamma": 1 + w(h),
        "bert/embeddings/LayerNorm/beta": w(h),
        "bert/pooler/dense/kernel": w(h, h),
        "bert/pooler/dense/bias": w(h),
        "cls/predictions/transform/dense/kernel": w(h, h),
        "cls/predictions/transform/dense/bias": w(h),
        "cls/predictions/transform/LayerNorm/gamma": 1 + w(h),
        "cls/predictions/transform/LayerNorm/beta": w(h),
        "cls/predictions/output_bias": w(v),
        "cls/seq_relationship/output_weights": w(2, h),
        "cls/seq_relationship/output_bias": w(2),
    }
    for layer in range(config["num_hidden_layers"]):
        p = f"bert/encoder/layer_{layer}"
        for part in ("query", "key", "value"):
            weights[f"{p}/attention/self/{part}/kernel"] = w(h, h)
            weights[f"{p}/attention/self/{part}/bias"] = w(h)
        weights.update(
            {
                f"{p}/attention/output/dense/kernel": w(h, h),
                f"{p}/attention/output/dense/bias": w(h),
                f"{p}/attention/output/LayerNorm/gamma": 1 + w(h),
                f"{p}/attention/output/LayerNorm/beta": w(h),
                f"{p}/intermediate/dense/kernel": w(h, i),
                f"{p}/intermediate/dense/bias": w(i),
                f"{p}/output/dense/kernel": w(i, h),
                f"{p}/output/dense/bias": w(h),
                f"{p}/output/LayerNorm/gamma": 1 + w(h),
                f"{p}/output/LayerNorm/beta": w(h),
            }
        )
    return weights


def save_google_checkpoint(weights: dict[str, np.ndarray], prefix: str) -> None:
    """A TF checkpoint with exactly these names (as Google's TF1 Saver writes them), plus optimizer slots."""
    extra = {f"{name}/adam_m": np.zeros_like(value) for name, value in weights.items()}
    extra["global_step"] = np.array(7, dtype=np.int64)
    names = [*weights, *extra]
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[*weights.values(), *extra.values()],
    )


def to_hf(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same weights under Hugging Face's BertForPreTraining names and [out, in] layout."""
    out = {}
    for name, value in weights.items():
        hf = name.replace("bert/encoder/layer_", "bert/encoder/layer/").replace("/", ".")
        hf = hf.replace(".LayerNorm.gamma", ".LayerNorm.weight").replace(".LayerNorm.beta", ".LayerNorm.bias")
        if hf.endswith(".kernel"):
            hf, value = hf[: -len(".kernel")] + ".weight", value.T
        hf = (
            hf.replace("word_embeddings", "word_embeddings.weight")
            .replace("position_embeddings", "position_embeddings.weight")
            .replace("token_type_embeddings", "token_type_embeddings.weight")
        )
        hf = {
            "cls.predictions.output_bias": "cls.predictions.bias",
            "cls.seq_relationship.output_weights": "cls.seq_relationship.weight",
            "cls.seq_relationship.output_bias": "cls.seq_relationship.bias",
        }.get(hf, hf)
        out[hf] = np.ascontiguousarray(value)
    out["bert.embeddings.position_ids"] = np.arange(16, dtype=np.int64)[None, :]
    return out


# ---- the reference ---------------------------------------------------------------------------------------


def gelu(x, approximate):
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def layer_norm(x, gamma, beta):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * gamma + beta


def numpy_bert(w, config, ids, segments, mask, approximate):
    """Google's modeling.py, in numpy: returns sequence output, pooled output."""
    h, heads = config["hidden_size"], config["num_attention_heads"]
    d = h // heads
    x = (
        w["bert/embeddings/word_embeddings"][ids]
        + w["bert/embeddings/position_embeddings"][: ids.shape[1]]
        + w["bert/embeddings/token_type_embeddings"][segments]
    )
    x = layer_norm(x, w["bert/embeddings/LayerNorm/gamma"], w["bert/embeddings/LayerNorm/beta"])
    bias = (1.0 - mask[:, None, None, :]) * -1e9
    for layer in range(config["num_hidden_layers"]):
        p = f"bert/encoder/layer_{layer}"

        def proj(part, x=x, p=p):
            y = x @ w[f"{p}/attention/self/{part}/kernel"] + w[f"{p}/attention/self/{part}/bias"]
            return y.reshape(*y.shape[:2], heads, d).transpose(0, 2, 1, 3)

        scores = proj("query") @ proj("key").transpose(0, 1, 3, 2) / math.sqrt(d) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ proj("value")).transpose(0, 2, 1, 3).reshape(x.shape)
        attended = context @ w[f"{p}/attention/output/dense/kernel"] + w[f"{p}/attention/output/dense/bias"]
        x = layer_norm(
            attended + x, w[f"{p}/attention/output/LayerNorm/gamma"], w[f"{p}/attention/output/LayerNorm/beta"]
        )
        inner = gelu(x @ w[f"{p}/intermediate/dense/kernel"] + w[f"{p}/intermediate/dense/bias"], approximate)
        out = inner @ w[f"{p}/output/dense/kernel"] + w[f"{p}/output/dense/bias"]
        x = layer_norm(out + x, w[f"{p}/output/LayerNorm/gamma"], w[f"{p}/output/LayerNorm/beta"])
    pooled = np.tanh(x[:, 0] @ w["bert/pooler/dense/kernel"] + w["bert/pooler/dense/bias"])
    return x, pooled


def numpy_heads(w, sequence, pooled, positions, approximate):
    gathered = np.take_along_axis(sequence, positions[:, :, None], axis=1)
    t = gelu(
        gathered @ w["cls/predictions/transform/dense/kernel"] + w["cls/predictions/transform/dense/bias"], approximate
    )
    t = layer_norm(t, w["cls/predictions/transform/LayerNorm/gamma"], w["cls/predictions/transform/LayerNorm/beta"])
    mlm = t @ w["bert/embeddings/word_embeddings"].T + w["cls/predictions/output_bias"]
    nsp = pooled @ w["cls/seq_relationship/output_weights"].T + w["cls/seq_relationship/output_bias"]
    return mlm, nsp


INPUTS = {
    "token_ids": np.array([[2, 5, 9, 3, 7, 3, 0, 0], [2, 11, 12, 13, 3, 14, 15, 3]], dtype=np.int32),
    "segment_ids": np.array([[0, 0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1, 1, 1]], dtype=np.int32),
    "padding_mask": np.array([[1, 1, 1, 1, 1, 1, 0, 0], [1] * 8], dtype=np.int32),
}
POSITIONS = np.array([[1, 4], [2, 6]], dtype=np.int32)


def check_against_numpy(config: BertConfig, weights: dict, backbone, heads, approximate: bool):
    outputs = backbone(INPUTS)
    expected_seq, expected_pooled = numpy_bert(
        weights,
        config.to_dict(),
        INPUTS["token_ids"],
        INPUTS["segment_ids"],
        INPUTS["padding_mask"].astype(np.float64),
        approximate,
    )
    valid = INPUTS["padding_mask"].astype(bool)
    np.testing.assert_allclose(np.asarray(outputs["sequence_output"])[valid], expected_seq[valid], atol=2e-5)
    np.testing.assert_allclose(np.asarray(outputs["pooled_output"]), expected_pooled, atol=2e-5)
    mlm, nsp = heads(outputs["sequence_output"], outputs["pooled_output"], POSITIONS)
    expected_mlm, expected_nsp = numpy_heads(weights, expected_seq, expected_pooled, POSITIONS, approximate)
    np.testing.assert_allclose(np.asarray(mlm), expected_mlm, atol=5e-5)
    np.testing.assert_allclose(np.asarray(nsp), expected_nsp, atol=2e-5)


def load(config: BertConfig, tensors: dict, source: str):
    backbone = build_backbone(config)
    heads = build_pretraining_heads(config, backbone)
    left = assign_weights(google_variable_map(config, backbone, heads), tensors, source)
    return backbone, heads, left


def test_google_checkpoint_matches_numpy(tmp_path):
    weights = google_weights(TINY)
    save_google_checkpoint(weights, str(tmp_path / "bert_model.ckpt"))
    (tmp_path / "bert_config.json").write_text(json.dumps(TINY))
    config = BertConfig.from_json(tmp_path / "bert_config.json")
    assert config.gelu_approximate  # Google's "gelu" is the tanh form
    backbone, heads, left = load(config, read_google_checkpoint(tmp_path / "bert_model.ckpt"), "google")
    assert left == []
    check_against_numpy(config, weights, backbone, heads, approximate=True)


LARGE_SCALED_DOWN = {  # BERT-large's layout (24 layers, 16 heads, intermediate 4 x hidden) at hidden 32
    **TINY,
    "hidden_size": 32,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 128,
}


def test_model_large_is_bert_large_and_loads_googles_large_checkpoint_names(tmp_path):
    config = named_config("large", 30522)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (24, 1024, 16)
    assert config.intermediate_size == 4096 and GOOGLE_CHECKPOINTS["large"] == "wwm_uncased_L-24_H-1024_A-16"
    weights = google_weights(LARGE_SCALED_DOWN, seed=2)
    assert "bert/encoder/layer_23/output/LayerNorm/gamma" in weights  # the names Google's BERT-large checkpoint has
    save_google_checkpoint(weights, str(tmp_path / "bert_model.ckpt"))
    scaled = BertConfig.from_dict(LARGE_SCALED_DOWN)
    backbone, heads, left = load(scaled, read_google_checkpoint(tmp_path / "bert_model.ckpt"), "google")
    assert left == []
    check_against_numpy(scaled, weights, backbone, heads, approximate=True)


def test_hf_safetensors_matches_numpy(tmp_path):
    weights = google_weights(TINY, seed=1)
    save_file(to_hf(weights), str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "model_type": "bert"}))
    config = BertConfig.from_json(tmp_path / "config.json")
    assert not config.gelu_approximate  # Hugging Face's "gelu" is exact
    backbone, heads, left = load(config, read_hf_weights(tmp_path), "hf")
    assert left == []
    check_against_numpy(config, weights, backbone, heads, approximate=False)


def test_reinitialise_replaced_rows_mean_of_old_pieces():
    embeddings = np.arange(12, dtype=np.float32).reshape(4, 3)
    replaced = [{"id": 0, "old_piece_ids": [1, 3]}, {"id": 2, "old_piece_ids": []}]
    result = reinitialise_replaced_rows(embeddings, replaced, mode="mean")
    assert result[0].tolist() == [6.0, 7.0, 8.0]  # mean of rows 1 and 3
    assert result[1].tolist() == embeddings[1].tolist() and result[3].tolist() == embeddings[3].tolist()
    assert np.all(np.abs(result[2]) <= 0.04)  # no pieces: random, truncated at 2 * initializer_range
    random_rows = reinitialise_replaced_rows(embeddings, replaced, mode="random")
    assert np.all(np.abs(random_rows[0]) <= 0.04)


def test_missing_leftover_and_mismatched_variables_are_named(tmp_path):
    weights = google_weights(TINY)
    del weights["bert/encoder/layer_1/output/dense/bias"]
    weights["bert/encoder/layer_9/output/dense/bias"] = np.zeros(8, np.float32)
    weights["bert/pooler/dense/kernel"] = np.zeros((12, 12), np.float32)
    config = BertConfig.from_dict(TINY)
    with pytest.raises(InputError) as error:
        load(config, weights, "ckpt")
    message = str(error.value)
    assert "bert/encoder/layer_1/output/dense/bias: missing from the checkpoint" in message
    assert "bert/encoder/layer_9/output/dense/bias: in the checkpoint but not in the model (8,)" in message
    assert "bert/pooler/dense/kernel: checkpoint shape (12, 12), model shape (8, 8)" in message


def test_config_errors_name_the_file_and_field(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps({k: v for k, v in TINY.items() if k != "num_hidden_layers"}))
    with pytest.raises(InputError, match=r"bert_config.json: missing field\(s\) num_hidden_layers"):
        BertConfig.from_json(path)
    path.write_text(json.dumps({**TINY, "num_attention_heads": 3}))
    with pytest.raises(InputError, match="hidden_size 8 is not a multiple of num_attention_heads 3"):
        BertConfig.from_json(path)


@pytest.mark.xdist_group("heavy")
def test_minilm_loads_every_backbone_variable_and_reports_missing_heads(caplog):
    folder = packaged_model_dir("minilm")
    config = BertConfig.from_json(folder / "config.json")
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (384, 6, 30522)
    tensors = read_hf_weights(folder)
    backbone, _, left = load(config, tensors, str(folder))
    assert left and all(name.startswith("cls/") for name in left)
    assert "has no masked-LM head" in caplog.text and "has no next-sentence head" in caplog.text
    ids = np.array([[101, 7592, 2088, 102, 2023, 2003, 102]], dtype=np.int32)
    inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
    expected, _ = numpy_bert(
        tensors,
        {"hidden_size": 384, "num_attention_heads": 12, "num_hidden_layers": 6},
        ids,
        inputs["segment_ids"],
        inputs["padding_mask"].astype(np.float64),
        approximate=False,
    )
    np.testing.assert_allclose(np.asarray(backbone(inputs)["sequence_output"]), expected, atol=1e-4)
