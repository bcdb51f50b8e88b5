"""Weights in and out of the model by Google's checkpoint names, and the keras-hub internals that takes.

Sources: Google's original TF checkpoint (`bert_model.ckpt.*`, variables `bert/...` and `cls/...`), a Hugging Face
BERT folder (`config.json` + `model.safetensors`), or nothing (`scratch`). HF names are translated to Google's,
the canonical form here; then every model variable must be found with the right shape and every checkpoint
variable must be used, or the load stops naming each problem and both shapes. The one allowed gap is a source
without pretraining heads (sentence encoders such as MiniLM): the heads keep their fresh initialisation, and the
log says so.

keras-hub's `BertBackbone` keeps its sublayers in private attributes (`_self_attention_layer`, ...); this module
is the only place that reaches into them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vbert.core.errors import InputError
from vbert.core.resources import PACKAGED_MODELS, packaged_model_dir

if TYPE_CHECKING:
    from vbert.model.bert import BertConfig

log = logging.getLogger(__name__)


# ---- keras-hub internals -----------------------------------------------------------------------------------


def use_exact_gelu(backbone, num_layers: int) -> None:
    """keras-hub builds every feed-forward layer with the tanh GELU; switch them to the exact one (HF's "gelu")."""
    import keras

    exact = lambda x: keras.activations.gelu(x, approximate=False)  # noqa: E731
    for i in range(num_layers):
        backbone.get_layer(f"transformer_layer_{i}")._feedforward_intermediate_dense.activation = exact


def query_key_value(backbone, layer: int) -> tuple:
    """Transformer layer `layer`'s query, key and value projections: each maps [batch, seq, hidden] to
    [batch, seq, heads, head size]."""
    attention = backbone.get_layer(f"transformer_layer_{layer}")._self_attention_layer
    return attention.query_dense, attention.key_dense, attention.value_dense


HEADS = {"cls/predictions/": "masked-LM", "cls/seq_relationship/": "next-sentence"}


def google_variable_map(config: BertConfig, backbone, heads=None) -> dict[str, object]:
    """Google checkpoint name -> Keras variable, for every variable of the backbone (and heads)."""
    layer = backbone.get_layer
    names = {
        "bert/embeddings/word_embeddings": layer("token_embedding").embeddings,
        "bert/embeddings/position_embeddings": layer("position_embedding").position_embeddings,
        "bert/embeddings/token_type_embeddings": layer("segment_embedding").embeddings,
        "bert/embeddings/LayerNorm/gamma": layer("embeddings_layer_norm").gamma,
        "bert/embeddings/LayerNorm/beta": layer("embeddings_layer_norm").beta,
        "bert/pooler/dense/kernel": layer("pooled_dense").kernel,
        "bert/pooler/dense/bias": layer("pooled_dense").bias,
    }
    for i in range(config.num_hidden_layers):
        block, prefix = layer(f"transformer_layer_{i}"), f"bert/encoder/layer_{i}"
        attention = block._self_attention_layer
        for part, dense in (
            ("query", attention.query_dense),
            ("key", attention.key_dense),
            ("value", attention.value_dense),
        ):
            names[f"{prefix}/attention/self/{part}/kernel"] = dense.kernel
            names[f"{prefix}/attention/self/{part}/bias"] = dense.bias
        names[f"{prefix}/attention/output/dense/kernel"] = attention.output_dense.kernel
        names[f"{prefix}/attention/output/dense/bias"] = attention.output_dense.bias
        names[f"{prefix}/attention/output/LayerNorm/gamma"] = block._self_attention_layer_norm.gamma
        names[f"{prefix}/attention/output/LayerNorm/beta"] = block._self_attention_layer_norm.beta
        names[f"{prefix}/intermediate/dense/kernel"] = block._feedforward_intermediate_dense.kernel
        names[f"{prefix}/intermediate/dense/bias"] = block._feedforward_intermediate_dense.bias
        names[f"{prefix}/output/dense/kernel"] = block._feedforward_output_dense.kernel
        names[f"{prefix}/output/dense/bias"] = block._feedforward_output_dense.bias
        names[f"{prefix}/output/LayerNorm/gamma"] = block._feedforward_layer_norm.gamma
        names[f"{prefix}/output/LayerNorm/beta"] = block._feedforward_layer_norm.beta
    if heads is not None:
        names.update(
            {
                "cls/predictions/transform/dense/kernel": heads.transform.kernel,
                "cls/predictions/transform/dense/bias": heads.transform.bias,
                "cls/predictions/transform/LayerNorm/gamma": heads.transform_norm.gamma,
                "cls/predictions/transform/LayerNorm/beta": heads.transform_norm.beta,
                "cls/predictions/output_bias": heads.output_bias,
                "cls/seq_relationship/output_weights": heads.next_sentence.kernel,  # Google: [2, hidden]
                "cls/seq_relationship/output_bias": heads.next_sentence.bias,
            }
        )
    return names


# Checkpoint variables that are not model weights: optimizer slots, step counters, HF buffers.
_NOT_WEIGHTS = re.compile(r"(/adam_[mv]$|^global_step$|_power$|^embeddings\.position_ids$|position_ids$)")
_TRANSPOSED = {"cls/seq_relationship/output_weights"}  # stored [out, in] in Google's checkpoints


def read_google_checkpoint(prefix: str | os.PathLike) -> dict[str, np.ndarray]:
    """All model variables of a TF checkpoint (`.../bert_model.ckpt`), by Google's names."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as err:
        raise InputError(f"{prefix}: cannot read a TensorFlow checkpoint ({err})") from err
    return {
        name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map() if not _NOT_WEIGHTS.search(name)
    }


_HF_RULES = [  # (HF name pattern, Google name template); Linear weights are [out, in] and get transposed
    (r"embeddings\.word_embeddings\.weight", "bert/embeddings/word_embeddings"),
    (r"embeddings\.position_embeddings\.weight", "bert/embeddings/position_embeddings"),
    (r"embeddings\.token_type_embeddings\.weight", "bert/embeddings/token_type_embeddings"),
    (r"embeddings\.LayerNorm\.(weight|gamma)", "bert/embeddings/LayerNorm/gamma"),
    (r"embeddings\.LayerNorm\.(bias|beta)", "bert/embeddings/LayerNorm/beta"),
    (
        r"encoder\.layer\.(\d+)\.(attention\.self\.(?:query|key|value)|attention\.output\.dense|intermediate\.dense"
        r"|output\.dense)\.(weight|bias)",
        None,
    ),
    (r"encoder\.layer\.(\d+)\.(attention\.output|output)\.LayerNorm\.(weight|gamma|bias|beta)", None),
    (r"pooler\.dense\.(weight|bias)", None),
    (r"cls\.predictions\.transform\.dense\.(weight|bias)", None),
    (r"cls\.predictions\.transform\.LayerNorm\.(weight|gamma|bias|beta)", None),
    (r"cls\.predictions\.bias", "cls/predictions/output_bias"),
    (r"cls\.seq_relationship\.weight", "cls/seq_relationship/output_weights"),
    (r"cls\.seq_relationship\.bias", "cls/seq_relationship/output_bias"),
]
_LEAF = {"weight": "kernel", "bias": "bias", "gamma": "gamma", "beta": "beta"}
_NORM_LEAF = {"weight": "gamma", "gamma": "gamma", "bias": "beta", "beta": "beta"}


def google_name(hf_name: str) -> tuple[str | None, bool]:
    """Google's name for an HF weight, and whether its layout must be transposed; (None, False) if unknown."""
    name = hf_name.removeprefix("bert.")
    for pattern, template in _HF_RULES:
        match = re.fullmatch(pattern, name)
        if not match:
            continue
        if template:
            return template, False
        if "LayerNorm" in name:
            path, leaf = name.rsplit(".LayerNorm.", 1)
            google = path.replace("encoder.layer.", "encoder/layer_").replace(".", "/")
            prefix = "" if google.startswith("cls/") else "bert/"
            return f"{prefix}{google}/LayerNorm/{_NORM_LEAF[leaf]}", False
        path, leaf = name.rsplit(".", 1)
        google = path.replace("encoder.layer.", "encoder/layer_").replace(".", "/")
        prefix = "" if google.startswith("cls/") else "bert/"
        return f"{prefix}{google}/{_LEAF[leaf]}", leaf == "weight"
    return None, False


def read_hf_weights(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """All weights of an HF BERT folder (`model.safetensors`), renamed and laid out as Google's."""
    from safetensors.numpy import load_file

    path = Path(folder) / "model.safetensors"
    if not path.exists():
        raise InputError(f"{folder}: no model.safetensors (an HF BERT folder has config.json and model.safetensors)")
    tensors, unknown = {}, []
    for name, value in load_file(str(path)).items():
        if _NOT_WEIGHTS.search(name) or name.endswith("cls.predictions.decoder.weight"):
            continue  # buffers, and the decoder tied to the word embeddings
        google, transpose = google_name(name)
        if google is None:
            unknown.append(name)
            continue
        tensors[google] = value.T if transpose else value
    if unknown:
        raise InputError(f"{path}: variables with no BERT counterpart: {', '.join(sorted(unknown)[:20])}")
    return tensors


def assign_weights(
    variables: dict[str, object], tensors: dict[str, np.ndarray], source: str, heads_optional: bool = True
) -> list[str]:
    """Copy `tensors` into `variables` (both by Google's names); returns the names left at initialisation.

    Fails, naming every problem, on a missing variable, a shape that does not fit, or a tensor left over.
    """
    problems, assigned, missing = [], set(), []
    for name, variable in variables.items():
        if name not in tensors:
            missing.append(name)
            continue
        value = tensors[name].T if name in _TRANSPOSED else tensors[name]
        shape = tuple(variable.shape)
        if int(np.prod(value.shape)) != int(np.prod(shape)):
            problems.append(f"{name}: checkpoint shape {tuple(tensors[name].shape)}, model shape {shape}")
            continue
        variable.assign(np.reshape(value, shape).astype(variable.dtype))
        assigned.add(name)
    head_gap = []
    if heads_optional:  # a head the source lacks entirely (MiniLM: both; HF's BertForMaskedLM: next sentence)
        for head, what in HEADS.items():
            absent = [m for m in missing if m.startswith(head)]
            if absent and not any(n.startswith(head) for n in tensors):
                head_gap += absent
                log.warning("%s has no %s head: it starts from a fresh initialisation", source, what)
        missing = [m for m in missing if m not in head_gap]
    problems += [f"{name}: missing from the checkpoint" for name in missing]
    problems += [
        f"{name}: in the checkpoint but not in the model {tuple(tensors[name].shape)}"
        for name in sorted(set(tensors) - assigned - set(variables))
    ]
    if problems:
        shown = "\n  ".join(problems[:30]) + (f"\n  ... and {len(problems) - 30} more" if len(problems) > 30 else "")
        raise InputError(f"{source}: checkpoint does not fit the model config:\n  {shown}")
    return head_gap


# ---- where training starts -------------------------------------------------------------------------------


def initial_tensors(init_checkpoint: str) -> tuple[dict | None, str]:
    """Weights to start from: a packaged model, an HF folder, a Google checkpoint prefix, or none (`scratch`)."""
    if init_checkpoint == "scratch":
        return None, "scratch"
    if init_checkpoint in PACKAGED_MODELS:
        folder = packaged_model_dir(init_checkpoint)
        return read_hf_weights(folder), str(folder)
    path = Path(init_checkpoint)
    if (path / "model.safetensors").exists():
        return read_hf_weights(path), str(path)
    if Path(f"{path}.index").exists():
        return read_google_checkpoint(path), str(path)
    raise InputError(
        f"init_checkpoint {init_checkpoint!r}: not an HF folder (model.safetensors) nor a TF checkpoint "
        f"prefix ({path}.index), nor {', '.join(PACKAGED_MODELS)} or scratch"
    )


GROWN_BY_VOCABULARY = ("bert/embeddings/word_embeddings", "cls/predictions/output_bias")


def grow_vocabulary_rows(tensors: dict, vocab_size: int, source: str) -> dict:
    """The word embeddings and masked-LM bias of `tensors` with zero rows appended up to `vocab_size` (the
    `extend` vocabulary; the new rows are set from their pieces afterwards)."""
    grown = dict(tensors)
    for name in GROWN_BY_VOCABULARY:
        if name not in tensors:
            continue
        rows = tensors[name].shape[0]
        if rows > vocab_size:
            raise InputError(f"{source}: {name} has {rows} rows, more than the vocabulary's {vocab_size} tokens")
        padding = np.zeros((vocab_size - rows, *tensors[name].shape[1:]), tensors[name].dtype)
        grown[name] = np.concatenate([tensors[name], padding])
    return grown


def reinitialise_replaced_rows(
    embeddings: np.ndarray,
    replaced: Sequence[dict],
    mode: str,
    initializer_range: float = 0.02,
    seed: int = 12345,
) -> np.ndarray:
    """Rows of new tokens: the mean of the old rows of the token's pieces (`mean`) or `random`. For a vector (the
    masked-LM bias) the mean of the pieces' entries (`mean`) or zero."""
    if mode not in ("mean", "random"):
        raise ValueError(f"unknown embedding initialisation {mode!r} (mean or random)")
    result = embeddings.copy()
    rng = np.random.default_rng(seed)
    if embeddings.ndim == 1:  # the masked-LM bias: the mean of the pieces' biases, or zero
        for entry in replaced:
            ids = entry["old_piece_ids"] if mode == "mean" else []
            result[entry["id"]] = embeddings[ids].mean() if ids else 0.0
        return result
    for entry in replaced:
        if mode == "mean" and entry["old_piece_ids"]:
            result[entry["id"]] = embeddings[entry["old_piece_ids"]].mean(axis=0)
        else:
            result[entry["id"]] = np.clip(
                rng.normal(0, initializer_range, embeddings.shape[1]), -2 * initializer_range, 2 * initializer_range
            )
    return result


def starting_encoder(model: str):
    """The encoder (a keras-hub BertBackbone with its weights) of a packaged model (`minilm`) or an HF BERT folder,
    and that folder (its tokenizer files). Heads in the folder are left out."""
    from vbert.model.bert import BertConfig, build_backbone

    folder = packaged_model_dir(model) if model in PACKAGED_MODELS else Path(model)
    if not (folder / "config.json").exists():
        raise InputError(f"model {model!r}: not {', '.join(PACKAGED_MODELS)} nor an HF folder (config.json)")
    config = BertConfig.from_json(folder / "config.json")
    backbone = build_backbone(config)
    variables = google_variable_map(config, backbone)
    tensors = {name: value for name, value in read_hf_weights(folder).items() if name in variables}
    assign_weights(variables, tensors, str(folder), heads_optional=False)
    return backbone, folder
