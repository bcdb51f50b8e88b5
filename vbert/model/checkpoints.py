"""Training checkpoints: every model and optimizer variable (dropout seeds and step included) in one file.

A checkpoint is a directory `step-000050/` holding `variables.npz`, written under a temporary name and renamed
into place, so a run killed at any moment leaves either a complete checkpoint or none. Restoring puts back every
variable by its path, so a resumed run continues exactly where the checkpoint left it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vbert.core.atomic import atomic_dir
from vbert.core.errors import InputError

_STEP_DIR = re.compile(r"^step-(\d{6,})$")


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:06d}"


def list_checkpoints(root: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints under `root`, by step (temporary directories of a killed run are ignored)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and (path / "variables.npz").exists():
            found.append((int(match.group(1)), path))
    return sorted(found)


def _stable_name(prefix: str, index: int, path: str) -> str:
    """`prefix/index:path`, without the process-wide counters Keras appends to auto-named objects' names
    (`seed_generator_7`, `adam_w_2`), which differ between two models built in one process."""
    return f"{prefix}/{index:05d}:" + re.sub(r"(seed_generator|adam_w)_\d+", r"\1", path)


def _variables(model, optimizer) -> dict[str, object]:
    named = {_stable_name("model", i, v.path): v for i, v in enumerate(model.variables)}
    if optimizer is not None:
        named.update({_stable_name("optimizer", i, v.path): v for i, v in enumerate(optimizer.variables)})
    return named


def save_checkpoint(
    root: str | os.PathLike, step: int, model, optimizer, extra_files: dict[str, str] | None = None
) -> Path:
    """Write `root/step-NNNNNN/variables.npz` (plus small text files) atomically; returns its directory."""
    final = step_dir(Path(root), step)
    with atomic_dir(final) as tmp:
        arrays = {name: np.asarray(variable.numpy()) for name, variable in _variables(model, optimizer).items()}
        np.savez(tmp / "variables.npz", **arrays)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    return final


def save_weights(folder: str | os.PathLike, model, vocab_rows: tuple[list, int] | None = None) -> Path:
    """`folder/variables.npz` with the model's variables only (no optimizer state): what fine-tuning and serving
    start from. `vocab_rows` (variables, n) keeps only the first n rows of those variables (a model saved for a
    smaller vocabulary). The caller makes `folder` appear atomically."""
    cut, rows = vocab_rows or ([], 0)
    cut_ids = {id(variable) for variable in cut}
    arrays = {
        name: np.asarray(v.numpy())[:rows] if id(v) in cut_ids else np.asarray(v.numpy())
        for name, v in _variables(model, None).items()
    }
    path = Path(folder) / "variables.npz"
    np.savez(path, **arrays)
    return path


def restore_checkpoint(path: str | os.PathLike, model, optimizer=None) -> None:
    """Assign the variables saved in `path` to `model` (and `optimizer`, when given; both built).

    Every target variable must be in the checkpoint with its shape, and every saved model variable must have a
    target; saved optimizer state is skipped when no optimizer is given (a new phase starts its own).
    """
    path = Path(path)
    with np.load(path / "variables.npz") as saved:
        targets = _variables(model, optimizer)
        available = set(saved.files) if optimizer is not None else {n for n in saved.files if n.startswith("model/")}
        missing = sorted(set(targets) - available)
        leftover = sorted(available - set(targets))
        mismatched = [
            f"{n}: checkpoint {saved[n].shape}, model {tuple(targets[n].shape)}"
            for n in sorted(set(targets) & available)
            if saved[n].shape != tuple(targets[n].shape)
        ]
        if missing or leftover or mismatched:
            problems = [
                *(f"{n}: missing from the checkpoint" for n in missing),
                *(f"{n}: not in the model" for n in leftover),
                *mismatched,
            ]
            raise InputError(f"{path}: checkpoint does not fit the model:\n  " + "\n  ".join(problems[:30]))
        for name, variable in targets.items():
            variable.assign(saved[name])


# ---- the pretrain stage's checkpoints, as the cells later stages fine-tune and export ----------------------

REFERENCE = "reference"  # the starting weights with the default vocabulary (pretrain writes it, finetune reads it)


class Cell(NamedTuple):
    name: str  # reference, msl128-step-000020, msl512-from-step-000020-step-000004
    phase: str
    step: int  # in its phase
    total_step: int  # pretraining steps in all: an MSL-512 phase counts on from its MSL-128 start
    checkpoint: Path  # a folder with variables.npz
    folder: Path  # its tokenizer (vocab.txt, tokenizer_config.json) and bert_config.json


STARTED_PHASES = ("msl512", "tapt")  # phases started from chosen MSL-128 checkpoints: <phase>/from-step-N/


def _phase_cells(pretrain_dir: Path) -> list[Cell]:
    """Every checkpoint of the first phase (msl128; msl<N> for other lengths), then of the phases started from its
    checkpoints (their step 0 left out: it is the checkpoint they started from)."""
    cells = [
        Cell(f"{phase_dir.name}-step-{step:06d}", phase_dir.name, step, step, path, pretrain_dir)
        for phase_dir in sorted(pretrain_dir.glob("msl*"))
        if phase_dir.name not in STARTED_PHASES
        for step, path in list_checkpoints(phase_dir)
    ]
    for phase_dir in (pretrain_dir / name for name in STARTED_PHASES):
        for start in sorted(phase_dir.glob("from-step-*")):
            offset, phase = int(start.name.rsplit("-", 1)[1]), f"{phase_dir.name}-{start.name}"
            cells += [
                Cell(f"{phase}-step-{step:06d}", phase, step, offset + step, path, pretrain_dir)
                for step, path in list_checkpoints(start)
                if step > 0
            ]
    return cells


def pretraining_cells(pretrain_dir: Path, checkpoints: str) -> list[Cell]:
    """The reference cell first, then the pretraining checkpoints (`all` of them, each phase's `last`, or none for
    `reference`). Without a `reference/` folder (the vocabulary kept every token) the first MSL-128 checkpoint is
    the reference."""
    cells = _phase_cells(pretrain_dir)
    if not cells:
        raise InputError(f"{pretrain_dir}: no pretraining checkpoints; run the pretrain stage first")
    reference_dir = pretrain_dir / REFERENCE
    if (reference_dir / "variables.npz").exists():
        reference = Cell(REFERENCE, REFERENCE, 0, 0, reference_dir, reference_dir)
    else:
        first = cells.pop(0)
        reference = Cell(REFERENCE, REFERENCE, 0, 0, first.checkpoint, first.folder)
    if checkpoints == "reference":
        return [reference]
    if checkpoints == "last":
        last = {cell.phase: cell for cell in cells}
        cells = [cell for cell in cells if last[cell.phase] is cell]
    return [reference, *cells]
