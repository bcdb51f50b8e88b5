"""BERT in Keras 3 (keras-hub's BertBackbone) with Google's pretraining heads, loaded strictly from checkpoints.

Sources: Google's original TF checkpoint (`bert_model.ckpt.*` + `bert_config.json`, variables `bert/...` and
`cls/...`), or a Hugging Face BERT folder (`config.json` + `model.safetensors`). Names are translated to Google's,
which is the canonical form here, then every model variable must be found with the right shape and every
checkpoint variable must be used; anything else stops the load with the names and both shapes. The only allowed
gap is a source without pretraining heads (sentence encoders such as MiniLM): the heads then keep their fresh
initialisation, and the log says so.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vbert.errors import InputError

log = logging.getLogger(__name__)

_CONFIG_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)


@dataclass(frozen=True)
class BertConfig:
    """Google's bert_config.json fields (HF's config.json uses the same names)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_act: str = "gelu"
    initializer_range: float = 0.02
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    gelu_approximate: bool = True  # Google's "gelu" is the tanh approximation; Hugging Face's "gelu" is exact

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> BertConfig:
        """Read a Google `bert_config.json` or an HF `config.json` (told apart by HF's `model_type`)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise InputError(f"{path}: no such model config") from err
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{err.lineno}: not valid JSON: {err.msg}") from err
        missing = [f for f in _CONFIG_FIELDS if f not in data]
        if missing:
            raise InputError(f"{path}: missing field(s) {', '.join(missing)}")
        for name in _CONFIG_FIELDS:
            if isinstance(data[name], bool) or not isinstance(data[name], int) or data[name] <= 0:
                raise InputError(f"{path}: field {name} = {data[name]!r} must be a positive integer")
        if data["hidden_size"] % data["num_attention_heads"]:
            raise InputError(
                f"{path}: hidden_size {data['hidden_size']} is not a multiple of "
                f"num_attention_heads {data['num_attention_heads']}"
            )
        activation = data.get("hidden_act", "gelu")
        if activation not in ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh"):
            raise InputError(f"{path}: hidden_act {activation!r} is not supported (gelu variants only)")
        hugging_face = "model_type" in data
        fields = {f: data[f] for f in cls.__dataclass_fields__ if f in data and f != "gelu_approximate"}
        return cls(**fields, gelu_approximate=not (hugging_face and activation == "gelu"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def build_backbone(config: BertConfig):
    """keras-hub's BertBackbone for `config`, with the activation the checkpoint was trained with."""
    import keras
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size,
        num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        hidden_dim=config.hidden_size,
        intermediate_dim=config.intermediate_size,
        dropout=config.hidden_dropout_prob,
        max_sequence_length=config.max_position_embeddings,
        num_segments=config.type_vocab_size,
    )
    if not config.gelu_approximate:  # keras-hub builds every layer with the tanh approximation
        exact = lambda x: keras.activations.gelu(x, approximate=False)  # noqa: E731
        for i in range(config.num_hidden_layers):
            backbone.get_layer(f"transformer_layer_{i}")._feedforward_intermediate_dense.activation = exact
    return backbone


def build_pretraining_heads(config: BertConfig, backbone):
    """Google's heads: MLM (transform, LayerNorm, output bias; weights tied to the word embeddings) and NSP."""
    import keras

    class PretrainingHeads(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            initializer = keras.initializers.TruncatedNormal(stddev=config.initializer_range)
            self.transform = keras.layers.Dense(
                config.hidden_size, kernel_initializer=initializer, name="transform_dense"
            )
            self.transform_norm = keras.layers.LayerNormalization(epsilon=1e-12, name="transform_layer_norm")
            self.next_sentence = keras.layers.Dense(2, kernel_initializer=initializer, name="next_sentence")
            self.embeddings = backbone.get_layer("token_embedding")

        def build(self, input_shape=None):
            hidden = config.hidden_size
            self.transform.build((None, hidden))
            self.transform_norm.build((None, hidden))
            self.next_sentence.build((None, hidden))
            self.output_bias = self.add_weight(shape=(config.vocab_size,), initializer="zeros", name="output_bias")
            self.built = True

        def call(self, sequence_output, pooled_output, masked_positions):
            gathered = keras.ops.take_along_axis(sequence_output, masked_positions[:, :, None], axis=1)
            x = self.transform(gathered)
            x = keras.activations.gelu(x, approximate=config.gelu_approximate)
            x = self.transform_norm(x)
            logits = keras.ops.matmul(x, keras.ops.transpose(self.embeddings.embeddings)) + self.output_bias
            return logits, self.next_sentence(pooled_output)

    heads = PretrainingHeads(name="pretraining_heads")
    heads.build()
    return heads


# ---- names -------------------------------------------------------------------------------------------------

HEAD_PREFIX = "cls/"


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
    head_gap = [m for m in missing if m.startswith(HEAD_PREFIX)]
    if heads_optional and head_gap and not any(n.startswith(HEAD_PREFIX) for n in tensors):
        missing = [m for m in missing if not m.startswith(HEAD_PREFIX)]
        log.warning("%s has no pretraining heads (MLM, next sentence): they start from a fresh initialisation", source)
    else:
        head_gap = []
    problems += [f"{name}: missing from the checkpoint" for name in missing]
    problems += [
        f"{name}: in the checkpoint but not in the model {tuple(tensors[name].shape)}"
        for name in sorted(set(tensors) - assigned - set(variables))
    ]
    if problems:
        shown = "\n  ".join(problems[:30]) + (f"\n  ... and {len(problems) - 30} more" if len(problems) > 30 else "")
        raise InputError(f"{source}: checkpoint does not fit the model config:\n  {shown}")
    return head_gap
