"""The freeze stage: the best fine-tuned classifier as a TF SavedModel in TF-Serving's layout.

    <base>/<model_name>/<version>/saved_model.pb
                                 variables/           every weight once
                                 assets/vocab.txt     the tokenizer's vocabulary
                                 assets/labels.txt    label names, by class index
                                 assets/serving.json  max_seq_length, do_lower_case, labels

Signature `serving_default`: int32 `input_ids`, `input_mask`, `segment_ids` of shape [batch, seq] (both dynamic)
→ float32 `probabilities` and `logits` of shape [batch, labels]. Keras 3's own `model.export` saves each
variable twice (once through the model's object graph, once as captured by the endpoint); here a bare tf.Module
holds the variables and the signature function, so they are stored once.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from vbert.atomic import atomic_dir
from vbert.errors import InputError
from vbert.modeling import BertConfig

log = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
OUTPUT_NAMES = ("probabilities", "logits")
SERVING_CONFIG = "serving.json"


@dataclass(frozen=True)
class ServingConfig:
    """What a server needs besides the graph: how to tokenise, and what the outputs mean."""

    labels: list[str]
    max_seq_length: int
    do_lower_case: bool = True

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> ServingConfig:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(labels=data["labels"], max_seq_length=data["max_seq_length"], do_lower_case=data["do_lower_case"])

    def to_json(self) -> str:
        return json.dumps(
            {"labels": self.labels, "max_seq_length": self.max_seq_length, "do_lower_case": self.do_lower_case},
            indent=2,
        )


def load_finetuned(best_dir: Path):
    """The classifier in `best_dir` (the finetune stage's `best/`) and its serving config."""
    from vbert.finetuning import build_classifier

    for name in ("model.weights.h5", "bert_config.json", "labels.json", "vocab.txt", "settings.json"):
        if not (best_dir / name).exists():
            raise InputError(f"{best_dir / name}: missing; run the finetune stage first")
    config = BertConfig(**json.loads((best_dir / "bert_config.json").read_text()))
    labels = json.loads((best_dir / "labels.json").read_text())
    settings = json.loads((best_dir / "settings.json").read_text())
    model = build_classifier(config, len(labels), None)
    model.load_weights(best_dir / "model.weights.h5")
    return model, ServingConfig(labels=labels, max_seq_length=int(settings["max_seq_length"]))


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


def version_folders(model_dir: Path) -> list[Path]:
    """The numbered version folders of one model in TF-Serving's layout (`<model_dir>/<N>/`), lowest first."""
    return sorted((p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def export_saved_model(model, serving: ServingConfig, vocab: Path, version_dir: Path) -> Path:
    """Write the SavedModel to `version_dir` (atomically); returns it."""
    import tensorflow as tf

    module = serving_module(model)
    with atomic_dir(version_dir) as tmp:
        staging = tmp.parent / f".{tmp.name}-assets"
        staging.mkdir()
        try:
            (staging / "vocab.txt").write_bytes(vocab.read_bytes())
            (staging / "labels.txt").write_text("".join(f"{label}\n" for label in serving.labels), encoding="utf-8")
            (staging / SERVING_CONFIG).write_text(serving.to_json(), encoding="utf-8")
            names = ("vocab.txt", "labels.txt", SERVING_CONFIG)
            module.assets = [tf.saved_model.Asset(str(staging / name)) for name in names]
            tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
        finally:
            for path in staging.iterdir():
                path.unlink()
            staging.rmdir()
    return version_dir


def freeze(best_dir: Path, out_dir: Path, model_name: str, version: int) -> dict:
    """The freeze stage: `out_dir/model_name/version/` from the finetune stage's best model; returns metrics."""
    import numpy as np
    import tensorflow as tf

    model, serving = load_finetuned(best_dir)
    version_dir = out_dir / model_name / str(version)
    export_saved_model(model, serving, best_dir / "vocab.txt", version_dir)
    weight_bytes = sum(int(np.prod(v.shape)) * 4 for v in model.weights)
    saved_bytes = sum(p.stat().st_size for p in (version_dir / "variables").iterdir())
    check = max_difference_to_keras(model, tf.saved_model.load(str(version_dir)), serving.max_seq_length)
    log.info(
        "SavedModel %s: variables %.1f MB (weights %.1f MB), max |Δlogit| vs Keras %.2e",
        version_dir,
        saved_bytes / 1e6,
        weight_bytes / 1e6,
        check,
    )
    return {
        "model_name": model_name,
        "version": version,
        "labels": len(serving.labels),
        "max_seq_length": serving.max_seq_length,
        "weights_mb": round(weight_bytes / 1e6, 2),
        "variables_mb": round(saved_bytes / 1e6, 2),
        "max_logit_difference_to_keras": float(check),
    }


def random_inputs(batch: int, seq: int, vocab_size: int, seed: int = 0) -> dict:
    """Token ids with padding at the end of every other row, for checks and warm-up."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab_size, (batch, seq)).astype(np.int32)
    mask = np.ones((batch, seq), np.int32)
    mask[1::2, seq // 2 :] = 0
    ids[mask == 0] = 0
    segments = np.zeros((batch, seq), np.int32)
    segments[:, seq // 3 :] = 1
    segments[mask == 0] = 0
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


def max_difference_to_keras(model, loaded, seq: int) -> float:
    """Max |logit difference| between the Keras model and a loaded SavedModel on random inputs."""
    import numpy as np

    vocab_size = int(model.get_layer("bert_backbone").vocabulary_size) if _has_backbone(model) else 30522
    inputs = random_inputs(4, seq, vocab_size)
    expected = np.asarray(model(inputs, training=False))
    served = loaded.signatures["serving_default"](**{k: v for k, v in inputs.items()})
    return float(np.abs(served["logits"].numpy() - expected).max())


def _has_backbone(model) -> bool:
    return any(layer.name == "bert_backbone" for layer in model.layers)
