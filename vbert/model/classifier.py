"""A fine-tuned classifier's folder, as the finetune stage's `best/` and the distill stage's `best/` hold it:
variables.npz, bert_config.json, serving.json and the tokenizer files."""

from __future__ import annotations

from pathlib import Path

from vbert.core.errors import InputError
from vbert.model.export import SERVING_CONFIG, ServingConfig
from vbert.text.tokenization import tokenizer_files

FINETUNED_FILES = ("variables.npz", "bert_config.json", SERVING_CONFIG)


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
