"""The serving format: a fine-tuned classifier as a TF SavedModel in TF-Serving's layout.

    <base>/<model_name>/<version>/saved_model.pb
                                 variables/                   every weight once
                                 assets/vocab.txt             the tokenizer: its vocabulary
                                 assets/tokenizer_config.json   and its casing (do_lower_case)
                                 assets/labels.txt            label names, by class index
                                 assets/serving.json          labels, max_seq_length, positive_label
                                 assets/bert_config.json      the architecture (for FLOPs, exports)

Signature `serving_default`: int32 `input_ids`, `input_mask`, `segment_ids` of shape [batch, seq] (both dynamic)
→ float32 `probabilities` and `logits` of shape [batch, labels]. Keras 3's own `model.export` saves each
variable twice (once through the model's object graph, once as captured by the endpoint); here a bare tf.Module
holds the variables and the signature function, so they are stored once.

This module imports neither TensorFlow nor Keras at the top: the server reads the layout without them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from vbert.core.atomic import atomic_dir
from vbert.core.errors import InputError
from vbert.text.encoding import INPUT_NAMES
from vbert.text.tokenization import copy_tokenizer

OUTPUT_NAMES = ("probabilities", "logits")
SERVING_CONFIG = "serving.json"
ASSET_FILES = ("vocab.txt", "tokenizer_config.json", "labels.txt", SERVING_CONFIG, "bert_config.json")


@dataclass(frozen=True)
class ServingConfig:
    """What a server needs besides the graph and the tokenizer: what the outputs mean, how long inputs may be."""

    labels: list[str]
    max_seq_length: int
    positive_label: str | None  # binary tasks: the class whose F1 the scores report (None: macro over classes)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> ServingConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(data["labels"], int(data["max_seq_length"]), data.get("positive_label"))
        except FileNotFoundError as err:
            raise InputError(f"{path}: missing; not a model exported by the freeze or ir stage") from err
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise InputError(f"{path}: not a serving config ({err})") from err

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def version_folders(model_dir: Path) -> list[Path]:
    """The numbered version folders of one model in TF-Serving's layout (`<model_dir>/<N>/`), lowest first."""
    return sorted((p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def latest_version(model_dir: Path) -> Path:
    """The highest numbered version folder, as TF-Serving picks it."""
    folders = version_folders(model_dir) if model_dir.is_dir() else []
    if not folders:
        raise InputError(f"{model_dir}: no numbered version folders; run the freeze stage first")
    return folders[-1]


def serving_module(model):
    """A tf.Module with the model's weights (once) and the `serving_default` function."""
    import tensorflow as tf

    module = tf.Module()
    module.weights = [v.value if hasattr(v, "value") else v for v in model.weights]
    spec = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUT_NAMES}

    @tf.function(input_signature=[spec])
    def serve(inputs):
        logits = model(inputs, training=False)
        return {"probabilities": tf.nn.softmax(logits, axis=-1), "logits": logits}

    module.serve = serve
    return module


def export_saved_model(model, config, serving: ServingConfig, tokenizer_dir: Path, version_dir: Path) -> Path:
    """Write the SavedModel of `model` (a classifier of BertConfig `config`) with its assets (the tokenizer of
    `tokenizer_dir`) to `version_dir`, atomically."""
    import tensorflow as tf

    module = serving_module(model)
    with atomic_dir(version_dir) as tmp:
        staging = tmp.parent / f".{tmp.name}-assets"
        staging.mkdir()
        try:
            copy_tokenizer(tokenizer_dir, staging)
            (staging / "labels.txt").write_text("".join(f"{label}\n" for label in serving.labels), encoding="utf-8")
            (staging / SERVING_CONFIG).write_text(serving.to_json(), encoding="utf-8")
            (staging / "bert_config.json").write_text(config.to_json(), encoding="utf-8")
            module.assets = [tf.saved_model.Asset(str(staging / name)) for name in ASSET_FILES]
            tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
        finally:
            for path in staging.iterdir():
                path.unlink()
            staging.rmdir()
    return version_dir


def random_inputs(batch: int, seq: int, vocab_size: int, seed: int = 0) -> dict:
    """Token ids with padding at the end of every other row, for checks and warm-up."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(min(1000, vocab_size // 2), vocab_size, (batch, seq)).astype(np.int32)
    mask = np.ones((batch, seq), np.int32)
    mask[1::2, seq // 2 :] = 0
    ids[mask == 0] = 0
    segments = np.zeros((batch, seq), np.int32)
    segments[:, seq // 3 :] = 1
    segments[mask == 0] = 0
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}
