"""The finetune stage: fine-tune every pretraining checkpoint on a labelled task, the paper's checkpoint sweep.

Each pretraining checkpoint (step 0 of MSL-128 is the no-domain-pretraining baseline) is a cell: fine-tuned for
up to `epochs` epochs, with early stopping on eval F1 after `patience` epochs without gain, and scored on eval
and test after every epoch. A finished cell leaves `cells/<name>/done.json` and is never recomputed; cells can
run in parallel processes. The best cell and epoch by eval F1 is copied to `best/`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vbert.core.atomic import atomic_dir, write_json
from vbert.core.errors import InputError
from vbert.core.parallel import ordered_map
from vbert.core.provenance import SETTINGS_FILE, digest, job_settings, same_settings
from vbert.model.bert import BertConfig
from vbert.model.checkpoints import list_checkpoints, restore_checkpoint
from vbert.model.export import SERVING_CONFIG, ServingConfig
from vbert.text.encoding import Encoder
from vbert.text.tasks import classification_scores, positive_index, read_task
from vbert.text.tokenization import copy_tokenizer, load_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneJob:
    pretrain_dir: Path
    task_dir: Path
    out_dir: Path
    max_seq_length: int
    epochs: int
    patience: int
    learning_rate: float
    train_batch_size: int
    eval_batch_size: int
    warmup_proportion: float
    positive_label: str | None
    jobs: int
    jit_compile: bool
    random_seed: int


class Cell(NamedTuple):
    name: str  # e.g. msl128-step-000020, msl512-from-step-000020-step-000004
    phase: str
    step: int  # in its phase
    total_step: int  # pretraining steps in all: an MSL-512 phase counts on from its MSL-128 start
    checkpoint: Path


def pretraining_cells(pretrain_dir: Path) -> list[Cell]:
    """Every MSL-128 checkpoint, and every MSL-512 checkpoint past its starting point."""
    cells = []
    for phase_dir in sorted(pretrain_dir.glob("msl*")):
        if phase_dir.name == "msl512":
            for start in sorted(phase_dir.glob("from-step-*")):
                offset = int(start.name.rsplit("-", 1)[1])
                cells += [
                    Cell(f"msl512-{start.name}-step-{step:06d}", f"msl512-{start.name}", step, offset + step, path)
                    for step, path in list_checkpoints(start)
                    if step > 0
                ]
        else:
            cells += [
                Cell(f"{phase_dir.name}-step-{step:06d}", phase_dir.name, step, step, path)
                for step, path in list_checkpoints(phase_dir)
            ]
    if not cells:
        raise InputError(f"{pretrain_dir}: no pretraining checkpoints; run the pretrain stage first")
    return cells


def load_classifier(config: BertConfig, num_labels: int, checkpoint: Path | None):
    """The classifier on the encoder of a pretraining checkpoint (a fresh encoder when None)."""
    from vbert.model.bert import build_classifier, build_pretrainer

    pretrainer = build_pretrainer(config)
    if checkpoint is not None:
        restore_checkpoint(checkpoint, pretrainer)
    return build_classifier(config, num_labels, pretrainer.backbone)


def encode_task(tokenizer_dir: Path, task_dir: Path, max_seq_length: int) -> tuple[dict, list[str]]:
    """Each split of the task as (model inputs padded to max_seq_length, label indices); and the label list."""
    encoder = Encoder(load_tokenizer(tokenizer_dir), max_seq_length)
    splits, labels = read_task(task_dir)
    index = {label: i for i, label in enumerate(labels)}
    data = {
        name: (
            encoder.encode_items(split.items(), pad_to=max_seq_length).features,
            np.array([index[label] for label in split.labels], np.int32),
        )
        for name, split in splits.items()
    }
    return data, labels


_state: dict = {}


def _prepare(job: FinetuneJob) -> None:
    """Per process: task data, encoded once."""
    data, labels = encode_task(job.pretrain_dir, job.task_dir, job.max_seq_length)
    _state.update(
        job=job,
        task_digest=digest(job.task_dir),
        labels=labels,
        config=BertConfig.from_json(job.pretrain_dir / "bert_config.json"),
        data=data,
    )


def finetune_cell(cell: Cell) -> list[dict]:
    """Fine-tune one pretraining checkpoint (or return its recorded rows if it already finished)."""
    import keras

    from vbert.model.optimization import make_optimizer

    job, labels, config, data = _state["job"], _state["labels"], _state["config"], _state["data"]
    out = job.out_dir / "cells" / cell.name
    settings = {
        **job_settings(job, leave_out=("pretrain_dir", "task_dir", "out_dir", "jobs")),
        "checkpoint": digest(cell.checkpoint / "variables.npz"),
        "task": _state["task_digest"],
    }
    if (out / "done.json").exists() and same_settings(out, settings):
        return json.loads((out / "done.json").read_text())
    keras.utils.set_random_seed(job.random_seed)
    model = load_classifier(config, len(labels), cell.checkpoint)
    train_x, train_y = data["train"]
    steps = job.epochs * int(np.ceil(len(train_y) / job.train_batch_size))
    model.compile(
        optimizer=make_optimizer(job.learning_rate, steps, int(steps * job.warmup_proportion)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=job.jit_compile,
    )
    positive = positive_index(labels, job.positive_label)
    rows, best, waited = [], -1.0, 0
    with atomic_dir(out) as tmp:
        for epoch in range(1, job.epochs + 1):
            started = time.perf_counter()
            model.fit(train_x, train_y, batch_size=job.train_batch_size, epochs=1, shuffle=True, verbose=0)
            train_seconds = time.perf_counter() - started
            row = {
                "cell": cell.name,
                "pretrain_phase": cell.phase,
                "pretrain_step": cell.step,
                "pretrain_total_step": cell.total_step,
                "epoch": epoch,
            }
            for split in ("eval", "test"):
                x, y = data[split]
                predicted = np.argmax(model.predict(x, batch_size=job.eval_batch_size, verbose=0), axis=-1)
                row.update(
                    {
                        f"{split}_{k}": v
                        for k, v in classification_scores(y, predicted, len(labels), positive=positive).items()
                    }
                )
            rows.append(row)
            model.save_weights(tmp / f"epoch-{epoch:02d}.weights.h5")
            log.info(
                "%s epoch %d: eval F1 %.4f, test F1 %.4f; trained at %.1f examples/s, scored and saved in %.0f s",
                cell.name,
                epoch,
                row["eval_f1"],
                row["test_f1"],
                len(train_y) / train_seconds,
                time.perf_counter() - started - train_seconds,
            )
            if row["eval_f1"] > best:
                best, waited = row["eval_f1"], 0
            else:
                waited += 1
                if waited >= job.patience:
                    break
        write_json(tmp / SETTINGS_FILE, settings)
        write_json(tmp / "done.json", rows)
    return rows


def majority_baseline(job: FinetuneJob) -> dict:
    train_y, test_y = _state["data"]["train"][1], _state["data"]["test"][1]
    majority = int(np.bincount(train_y).argmax())
    scores = classification_scores(
        test_y,
        np.full_like(test_y, majority),
        len(_state["labels"]),
        positive=positive_index(_state["labels"], job.positive_label),
    )
    return {"label": _state["labels"][majority], **scores}


def sweep_summary(rows: list[dict]) -> list[dict]:
    """Per cell, its best epoch by eval F1 (the first, on ties): the points of the paper's Figures 9 and 10."""
    best: dict[str, dict] = {}
    for row in rows:
        if row["cell"] not in best or row["eval_f1"] > best[row["cell"]]["eval_f1"]:
            best[row["cell"]] = row
    return [
        {"phase": r["pretrain_phase"], "best_epoch": r["epoch"], **{k: v for k, v in r.items() if k != "epoch"}}
        for r in best.values()
    ]


def run_sweep(job: FinetuneJob) -> dict:
    """Fine-tune every cell; copy the best (by eval F1) to `best/`; returns the stage metrics and all rows."""
    cells = pretraining_cells(job.pretrain_dir)
    _prepare(job)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    current = {cell.name for cell in cells}
    for stale in (job.out_dir / "cells").glob("*"):
        if stale.name not in current:  # a checkpoint the pretrain stage no longer makes
            shutil.rmtree(stale)
    rows = [row for cell_rows in ordered_map(finetune_cell, cells, job.jobs, _prepare, (job,)) for row in cell_rows]
    best = max(rows, key=lambda r: (r["eval_f1"], -r["pretrain_step"]))
    with atomic_dir(job.out_dir / "best") as tmp:
        shutil.copy(
            job.out_dir / "cells" / best["cell"] / f"epoch-{best['epoch']:02d}.weights.h5", tmp / "model.weights.h5"
        )
        shutil.copy(job.pretrain_dir / "bert_config.json", tmp / "bert_config.json")
        copy_tokenizer(job.pretrain_dir, tmp)
        serving = ServingConfig(_state["labels"], job.max_seq_length, job.positive_label)
        (tmp / SERVING_CONFIG).write_text(serving.to_json(), encoding="utf-8")
        shutil.copy(job.out_dir / "cells" / best["cell"] / SETTINGS_FILE, tmp / SETTINGS_FILE)
        write_json(tmp / "selection.json", best)
    metrics = {
        "best_cell": best["cell"],
        "best_epoch": best["epoch"],
        "best_pretrain_step": best["pretrain_step"],
        **{k: v for k, v in best.items() if k.startswith("test_")},
        "eval_f1": best["eval_f1"],
        "majority_baseline": majority_baseline(job),
        "cells": len(cells),
    }
    return {"metrics": metrics, "rows": rows, "summary": sweep_summary(rows)}
