"""Our models as Hugging Face folders: the domain-adapted encoder with its MLM head (`BertForMaskedLM`) and the
fine-tuned classifier (`BertForSequenceClassification`), each with config.json, model.safetensors and the tokenizer.

Names go through Google's, the canonical form (`vbert.model.weights`): every variable's Google name becomes its HF
name by `hf_name`, the inverse of the `google_name` that reads HF folders in, so reading an exported folder back
(`pretrain.init_checkpoint: models/hf/masked_lm`) gives the same weights.

    export_masked_lm(pretrainer, config, tokenizer_dir, "models/hf/masked_lm")
    export_classifier(classifier, config, labels, tokenizer_dir, "models/hf/classifier")
    transformers.AutoModelForMaskedLM.from_pretrained("models/hf/masked_lm")
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from vbert.core.atomic import atomic_dir
from vbert.model.weights import google_name, google_variable_map
from vbert.text.tokenization import copy_tokenizer

SAFETENSORS = "model.safetensors"
_NORM = {"gamma": "weight", "beta": "bias"}
_DENSE = {"kernel": "weight", "bias": "bias"}
_TRANSPOSED_IN_GOOGLE = {"cls/seq_relationship/output_weights"}  # Google (and HF) store it [2, hidden]


def hf_name(google: str) -> tuple[str, bool]:
    """HF's name for a Google variable name, and whether our [in, out] kernel must be transposed to HF's [out, in].

    bert/encoder/layer_3/attention/self/query/kernel -> bert.encoder.layer.3.attention.self.query.weight (transposed)
    """
    special = {
        "bert/embeddings/word_embeddings": "bert.embeddings.word_embeddings.weight",
        "bert/embeddings/position_embeddings": "bert.embeddings.position_embeddings.weight",
        "bert/embeddings/token_type_embeddings": "bert.embeddings.token_type_embeddings.weight",
        "cls/predictions/output_bias": "cls.predictions.bias",
        "cls/seq_relationship/output_weights": "cls.seq_relationship.weight",
        "cls/seq_relationship/output_bias": "cls.seq_relationship.bias",
    }
    if google in special:
        return special[google], google in _TRANSPOSED_IN_GOOGLE
    path, leaf = google.rsplit("/", 1)
    dotted = re.sub(r"layer_(\d+)", r"layer.\1", path).replace("/", ".")
    if path.endswith("LayerNorm"):
        return f"{dotted}.{_NORM[leaf]}", False
    return f"{dotted}.{_DENSE[leaf]}", leaf == "kernel"


def google_shaped(google: str, value: np.ndarray) -> np.ndarray:
    """Google's 2-D [in, out] kernels and 1-D biases from keras-hub's per-head shapes: query/key/value kernels are
    [hidden, heads, head_size] and their biases [heads, head_size]; the attention output kernel is [heads, head_size,
    hidden]."""
    if value.ndim == 3:
        return (
            value.reshape(-1, value.shape[-1]) if "/attention/output/" in google else value.reshape(value.shape[0], -1)
        )
    if google.endswith("/bias"):
        return value.reshape(-1)
    return value


def hf_tensors(variables: dict[str, object]) -> dict[str, np.ndarray]:
    """Our variables (by Google name) as HF tensors (float32, HF's layouts); checked against `google_name`."""
    tensors = {}
    for google, variable in variables.items():
        name, transpose = hf_name(google)
        back, _ = google_name(name)
        if back != google:  # one mapping, read both ways: a name that does not come back would load elsewhere
            raise AssertionError(f"{google} -> {name} -> {back}")
        value = google_shaped(google, np.asarray(variable, np.float32))
        tensors[name] = np.ascontiguousarray(value.T if transpose else value)
    return tensors


def _write(folder: Path, tensors: dict[str, np.ndarray], config: dict, tokenizer_dir: Path) -> None:
    from safetensors.numpy import save_file

    with atomic_dir(folder) as tmp:
        save_file(tensors, str(tmp / SAFETENSORS), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        copy_tokenizer(tokenizer_dir, tmp)
        (tmp / "special_tokens_map.json").write_text(
            json.dumps(
                {
                    "unk_token": "[UNK]",
                    "sep_token": "[SEP]",
                    "pad_token": "[PAD]",
                    "cls_token": "[CLS]",
                    "mask_token": "[MASK]",
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )


def export_masked_lm(pretrainer, config, tokenizer_dir: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """A `BertForMaskedLM` folder from a pretrainer: the encoder and MLM head (its decoder tied to the word
    embeddings, as in BERT), and the pooler, which that class ignores on loading but fine-tuning from the folder
    needs (`pretrain.init_checkpoint`); the next-sentence head is left out (no HF class with an MLM head only has
    it)."""
    variables = google_variable_map(config, pretrainer.backbone, pretrainer.pretraining_heads)
    kept = {k: v for k, v in variables.items() if not k.startswith("cls/seq_relationship/")}
    hf_config = {**config.to_dict(), "architectures": ["BertForMaskedLM"], "tie_word_embeddings": True}
    _write(Path(folder), hf_tensors(kept), hf_config, Path(tokenizer_dir))
    return Path(folder)


def export_classifier(
    classifier, config, labels: list[str], tokenizer_dir: str | os.PathLike, folder: str | os.PathLike
) -> Path:
    """A `BertForSequenceClassification` folder (encoder, pooler, classifier; `id2label`/`label2id` from the task)."""
    backbone = next(layer for layer in classifier.layers if type(layer).__name__ == "BertBackbone")
    tensors = hf_tensors(google_variable_map(config, backbone))
    dense = classifier.get_layer("classifier")
    tensors["classifier.weight"] = np.ascontiguousarray(np.asarray(dense.kernel.numpy(), np.float32).T)
    tensors["classifier.bias"] = np.asarray(dense.bias.numpy(), np.float32)
    hf_config = {
        **config.to_dict(),
        "architectures": ["BertForSequenceClassification"],
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
        "problem_type": "single_label_classification",
    }
    _write(Path(folder), tensors, hf_config, Path(tokenizer_dir))
    return Path(folder)
