"""The freeze stage: the finetune stage's best model as a TF SavedModel in TF-Serving's layout (`vbert.model.export`),
checked against the Keras model it came from."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vbert.core.errors import InputError
from vbert.model.export import SERVING_CONFIG, ServingConfig, export_saved_model, random_inputs
from vbert.text.tokenization import tokenizer_files

log = logging.getLogger(__name__)

FINETUNED_FILES = ("variables.npz", "bert_config.json", SERVING_CONFIG)


def load_finetuned(best_dir: Path):
    """The classifier in `best_dir` (the finetune stage's `best/`) and its serving config."""
    from vbert.model.bert import BertConfig, build_classifier
    from vbert.model.checkpoints import restore_checkpoint

    for name in FINETUNED_FILES:
        if not (best_dir / name).exists():
            raise InputError(f"{best_dir / name}: missing; run the finetune stage first")
    tokenizer_files(best_dir)
    config = BertConfig.from_json(best_dir / "bert_config.json")
    serving = ServingConfig.from_json(best_dir / SERVING_CONFIG)
    model = build_classifier(config, len(serving.labels))
    restore_checkpoint(best_dir, model)
    return model, config, serving


def max_difference_to_keras(model, loaded, seq: int, vocab_size: int) -> float:
    """Max |logit difference| between the Keras model and a loaded SavedModel on random inputs."""
    inputs = random_inputs(4, seq, vocab_size)
    expected = np.asarray(model(inputs, training=False))
    served = loaded.signatures["serving_default"](**inputs)
    return float(np.abs(served["logits"].numpy() - expected).max())


def freeze(best_dir: Path, model_dir: Path, version: int) -> dict:
    """Write `model_dir/<version>/` from the finetune stage's best model; returns the stage metrics."""
    import tensorflow as tf

    model, config, serving = load_finetuned(best_dir)
    version_dir = model_dir / str(version)
    export_saved_model(model, config, serving, best_dir, version_dir)
    weight_bytes = sum(int(np.prod(v.shape)) * 4 for v in model.weights)
    saved_bytes = sum(p.stat().st_size for p in (version_dir / "variables").iterdir())
    check = max_difference_to_keras(
        model, tf.saved_model.load(str(version_dir)), serving.max_seq_length, config.vocab_size
    )
    log.info(
        "SavedModel %s: variables %.1f MB (weights %.1f MB), max |Δlogit| vs Keras %.2e",
        version_dir,
        saved_bytes / 1e6,
        weight_bytes / 1e6,
        check,
    )
    return {
        "model_name": model_dir.name,
        "version": version,
        "labels": len(serving.labels),
        "max_seq_length": serving.max_seq_length,
        "weights_mb": round(weight_bytes / 1e6, 2),
        "variables_mb": round(saved_bytes / 1e6, 2),
        "max_logit_difference_to_keras": float(check),
    }
