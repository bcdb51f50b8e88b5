"""A fine-tuned classifier: its folder, as the finetune and distill stages' `best/` hold it (variables.npz,
bert_config.json, serving.json and the tokenizer files), and its logits on encoded rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from vbert.core.errors import InputError
from vbert.model.export import SERVING_CONFIG, ServingConfig
from vbert.text.encoding import Row, pad_rows, sorted_batches
from vbert.text.tokenization import tokenizer_files

FEATURES = ("input_ids", "input_mask", "segment_ids")

FINETUNED_FILES = ("variables.npz", "bert_config.json", SERVING_CONFIG)
SELECTION_FILE = "selection.json"  # which run (cell, seed, epoch) the folder holds, and how it was chosen


def write_finetuned(
    folder: Path,
    weights: Path,
    config,
    tokenizer_dir: Path,
    serving: ServingConfig,
    selection: dict,
    settings: Path | None = None,
) -> None:
    """A fine-tuned (or distilled) classifier's folder, atomically: its weights (`weights`, a variables.npz), its
    BertConfig, the tokenizer of `tokenizer_dir`, the serving config, the selection record, and the settings file
    of the run it came from (`vbert.core.provenance`) when there is one. The one writer of the format
    `load_finetuned` reads, for the finetune and distill stages."""
    from vbert.core.atomic import atomic_dir, write_json
    from vbert.core.provenance import SETTINGS_FILE
    from vbert.text.tokenization import copy_tokenizer

    with atomic_dir(folder) as tmp:
        shutil.copy(weights, tmp / "variables.npz")
        (tmp / "bert_config.json").write_text(config.to_json(), encoding="utf-8")
        copy_tokenizer(tokenizer_dir, tmp)
        (tmp / SERVING_CONFIG).write_text(serving.to_json(), encoding="utf-8")
        if settings is not None and settings.exists():
            shutil.copy(settings, tmp / SETTINGS_FILE)
        write_json(tmp / SELECTION_FILE, selection)


def read_selection(folder: Path) -> dict:
    """The selection record of a fine-tuned (or distilled) folder."""
    path = folder / SELECTION_FILE
    if not path.exists():
        raise InputError(f"{path}: missing; run the finetune (or distill) stage first")
    return json.loads(path.read_text(encoding="utf-8"))


def load_finetuned(best_dir: Path):
    """The classifier in `best_dir` (the finetune or distill stage's `best/`), its config and serving config."""
    from vbert.model.bert import BertConfig, build_classifier
    from vbert.model.checkpoints import restore_checkpoint

    for name in FINETUNED_FILES:
        if not (best_dir / name).exists():
            raise InputError(f"{best_dir / name}: missing; run the finetune (or distill) stage first")
    tokenizer_files(best_dir)
    config = BertConfig.from_json(best_dir / "bert_config.json")
    serving = ServingConfig.from_json(best_dir / SERVING_CONFIG)
    model = build_classifier(config, len(serving.labels))
    restore_checkpoint(best_dir, model)
    return model, config, serving


def padded(rows: list[Row], indices: np.ndarray) -> dict[str, np.ndarray]:
    """The rows at `indices` padded to the longest of them."""
    chosen = [rows[i] for i in indices]
    return pad_rows(chosen, max(len(row.ids) for row in chosen))


def batches_dataset(batches: list, target_spec):
    """A tf.data.Dataset of (features, targets) batches of any width, from a non-empty list of them (the features'
    names and dtypes are the first batch's); `target_spec` is the targets' tf.TensorSpec."""
    import tensorflow as tf

    first = batches[0][0]
    features = {k: tf.TensorSpec((None,) * v.ndim, tf.as_dtype(v.dtype)) for k, v in first.items()}
    spec = (features, target_spec)
    dataset = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=spec)
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches)))  # Keras then knows the epoch's end


def logits(model, rows: list[Row], batch_size: int) -> np.ndarray:
    """The model's float32 logits for every row (batches sorted by length, each padded to its longest), through
    Keras' compiled predict loop."""
    import tensorflow as tf

    batches = sorted_batches([len(row.ids) for row in rows], batch_size)
    spec = {k: tf.TensorSpec((None, None), tf.int32) for k in FEATURES}
    dataset = tf.data.Dataset.from_generator(lambda: (padded(rows, b) for b in batches), output_signature=spec)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(batches)))
    values = np.asarray(model.predict(dataset, verbose=0), np.float32)
    out = np.empty_like(values)
    out[np.concatenate(batches)] = values
    return out


def predict(model, rows: list[Row], batch_size: int) -> np.ndarray:
    """Class indices for every row."""
    return np.argmax(logits(model, rows, batch_size), axis=-1)


def mean_pooled(backbone, rows: list[Row], batch_size: int) -> np.ndarray:
    """Each row's encoder outputs averaged over its real tokens and L2-normalised (sentence-transformers' pooling,
    all-MiniLM-L6-v2's own): the frozen sentence embedding a practitioner feeds to logistic regression."""
    import tensorflow as tf

    from vbert.model.bert import encode

    @tf.function(reduce_retracing=True)
    def pool(features):
        sequence = tf.cast(encode(backbone, features)["sequence_output"], tf.float32)
        mask = tf.cast(features["input_mask"], tf.float32)[..., None]
        mean = tf.reduce_sum(sequence * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
        return tf.math.l2_normalize(mean, -1)

    batches = sorted_batches([len(row.ids) for row in rows], batch_size)
    out = None
    for batch in batches:
        pooled = pool({k: tf.constant(v) for k, v in padded(rows, batch).items()}).numpy()
        out = np.empty((len(rows), pooled.shape[1]), np.float32) if out is None else out
        out[batch] = pooled
    return out
