"""The freeze stage: the finetune stage's best model as a TF SavedModel in TF-Serving's layout (`vbert.model.export`),
checked against the Keras model it came from; and both models as Hugging Face folders (`vbert.model.huggingface`):
the fine-tuned classifier, and the domain-adapted encoder with its MLM head from the pretraining checkpoint it was
fine-tuned from."""

from __future__ import annotations

import json
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


def export_hugging_face(model, config, serving, best_dir: Path, pretrain_dir: Path, hf_dir: Path) -> dict:
    """`hf_dir/classifier` (BertForSequenceClassification) and `hf_dir/masked_lm` (BertForMaskedLM, from the
    pretraining checkpoint the best model was fine-tuned from)."""
    from vbert.model.bert import build_pretrainer
    from vbert.model.checkpoints import pretraining_cells, restore_checkpoint
    from vbert.model.huggingface import export_classifier, export_masked_lm

    chosen = json.loads((best_dir / "selection.json").read_text(encoding="utf-8"))["cell"]
    cells = {cell.name: cell for cell in pretraining_cells(pretrain_dir, "all")}
    if chosen not in cells:
        raise InputError(f"{pretrain_dir}: no checkpoint {chosen!r}, which {best_dir} was fine-tuned from")
    pretrainer = build_pretrainer(config)
    restore_checkpoint(cells[chosen].checkpoint, pretrainer)
    export_masked_lm(pretrainer, config, cells[chosen].folder, hf_dir / "masked_lm")
    export_classifier(model, config, serving.labels, best_dir, hf_dir / "classifier")
    log.info("Hugging Face folders: %s/masked_lm (from %s), %s/classifier", hf_dir, chosen, hf_dir)
    return {"hugging_face": {"masked_lm_from": chosen, "folders": ["masked_lm", "classifier"]}}


def freeze(
    best_dir: Path, model_dir: Path, version: int, pretrain_dir: Path | None = None, hf_dir: Path | None = None
) -> dict:
    """Write `model_dir/<version>/` from the finetune stage's best model (and the Hugging Face folders when
    `hf_dir` is given); returns the stage metrics."""
    import tensorflow as tf

    model, config, serving = load_finetuned(best_dir)
    exported = export_hugging_face(model, config, serving, best_dir, pretrain_dir, hf_dir) if hf_dir else {}
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
        **exported,
    }
