"""The one classifier training loop, shared by the finetune and distill stages (nanoGPT's lesson: one visible loop).

    model.compile(optimizer=warm-up then linear decay over every update, loss=the stage's)
    for epoch in 1..epochs:
        one pass over the train rows in batches of similar lengths (each padded to its longest), re-drawn each epoch
        (an objective adds a weighted loss: the batch's texts masked anew and their masked-LM loss, end-task-aware
        fine-tuning; or the teacher's layer outputs and attention, intermediate-layer distillation)
        score eval and test; keep the weights and test predictions of the epoch with the best eval F1
        stop after `patience` epochs without a better eval F1

The stage builds the model (after seeding Keras) and says what the targets are: label indices for fine-tuning,
[label, teacher logits...] rows for distillation. The knobs every training stage shares are one `TrainingSchedule`,
declared once and read from the stage's own params.yaml section (`knob.nested`: its keys sit in that section).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vbert.core import params as knob
from vbert.core.progress import examples_progress
from vbert.model.checkpoints import save_weights
from vbert.model.classifier import batches_dataset, padded, predict
from vbert.model.precision import SETTINGS as PRECISIONS
from vbert.text.encoding import Row, length_grouped_batches

log = logging.getLogger(__name__)

SCORED_SPLITS = ("eval", "test")


@dataclass(frozen=True)
class TrainingSchedule:
    """How a classifier is trained: the knobs the finetune and distill sections share."""

    epochs: int = knob.integer("passes over the train texts at most; the epoch with the best eval F1 is kept", min=1)
    learning_rate: float = knob.number("peak learning rate", min=0, max=1, min_open=True)
    train_batch_size: int = knob.integer("texts per update", min=1)
    eval_batch_size: int = knob.integer("texts per eval batch", min=1)
    warmup_proportion: float = knob.probability("share of the updates spent warming up", max_open=True)
    mixed_precision: str = knob.choice(PRECISIONS, "as pretrain's: bf16 where the hardware has it")

    def updates(self, train_texts: int) -> int:
        """Updates over every epoch (the learning-rate schedule's length)."""
        return self.epochs * -(-train_texts // self.train_batch_size)


@dataclass(frozen=True)
class MaskedLm:
    """End-task-aware training (`vbert.model.bert.EndTaskAware`): the pretrainer whose encoder the classifier shares
    (its MLM head), the weight of its loss, and how the train texts are masked."""

    pretrainer: object
    weight: float
    masking: object  # vbert.data.instances.InstanceConfig
    special: object  # vbert.data.instances.SpecialIds

    def trainer(self, model, loss):
        from vbert.model.bert import EndTaskAware

        return EndTaskAware(model, self.pretrainer, loss, self.weight)

    def extra_features(self, rows: list[Row], batch: np.ndarray, rng: np.random.Generator) -> dict:
        """The batch's texts masked anew, as the features `EndTaskAware` reads (prefixed `masked_`)."""
        from vbert.data.task_adaptive import masked_features
        from vbert.model.bert import MASKED_PREFIX

        masked = masked_features([rows[i] for i in batch], self.masking, self.special, rng)
        return {MASKED_PREFIX + name: value for name, value in masked.items()}


@dataclass(frozen=True)
class IntermediateLayers:
    """Intermediate-layer distillation (`vbert.model.bert.IntermediateDistiller`): the teacher classifier, the
    teacher layer each student layer learns from, and the weights of the hidden-state loss (TinyBERT) and of the
    last layer's self-attention loss (MiniLM)."""

    teacher: object
    teacher_layers: tuple[int, ...]
    hidden_weight: float
    attention_weight: float = 0.0

    def trainer(self, model, loss):
        from vbert.model.bert import IntermediateDistiller

        return IntermediateDistiller(
            model, self.teacher, self.teacher_layers, loss, self.hidden_weight, self.attention_weight
        )

    def extra_features(self, rows: list[Row], batch: np.ndarray, rng: np.random.Generator) -> dict:
        return {}


@dataclass(frozen=True)
class Scored:
    """The rows scored after every epoch: eval (which chooses the epoch) and test (reported, never chosen on)."""

    rows: dict[str, list[Row]]  # split -> encoded rows
    labels: dict[str, np.ndarray]  # split -> label indices
    score: Callable[[np.ndarray, np.ndarray], dict]  # (gold, predicted) -> {"f1": ..., ...}


def train_classifier(
    model,
    loss,
    train_rows: list[Row],
    targets: np.ndarray,
    scored: Scored,
    schedule: TrainingSchedule,
    seed: int,
    out: Path,
    *,
    name: str,
    patience: int | None = None,
    jit_compile: bool = False,
    show_progress: bool = True,
    objective: MaskedLm | IntermediateLayers | None = None,
) -> list[dict]:
    """Train `model` on `train_rows` against `targets` (a row per text) with `loss`; after each epoch score eval and
    test; write the best eval epoch's weights (variables.npz) and test predictions (test_predictions.npy) to `out`;
    stop after `patience` epochs without a better eval F1 (None: run every epoch). An `objective` adds its weighted
    loss (the masked-LM loss of the texts, or the teacher's layer outputs and attention). Returns a row per epoch:
    epoch, train_seconds, train_examples_per_second, the epoch's mean of every loss the trainer tracks (train_loss,
    and an objective's parts: train_task_loss, train_hidden_state_loss, ...), and every eval_* and test_* score."""
    import tensorflow as tf

    from vbert.model.optimization import make_optimizer

    updates = schedule.updates(len(train_rows))
    trained = model if objective is None else objective.trainer(model, loss)
    trained.compile(
        optimizer=make_optimizer(schedule.learning_rate, updates, int(updates * schedule.warmup_proportion)),
        loss=loss,
        jit_compile=jit_compile,
    )
    target_spec = tf.TensorSpec((None, *targets.shape[1:]), tf.as_dtype(targets.dtype))
    rng = np.random.default_rng(seed)
    lengths = [len(row.ids) for row in train_rows]
    history, best, waited = [], -1.0, 0
    for epoch in range(1, schedule.epochs + 1):
        started = time.perf_counter()
        batches = length_grouped_batches(lengths, schedule.train_batch_size, rng)
        progress = examples_progress(f"{name} epoch {epoch}", [len(b) for b in batches], show_progress)
        features = [padded(train_rows, b) for b in batches]
        if objective is not None:
            features = [
                f | objective.extra_features(train_rows, b, rng) for f, b in zip(features, batches, strict=True)
            ]
        dataset = batches_dataset(list(zip(features, (targets[b] for b in batches), strict=True)), target_spec)
        fitted = trained.fit(dataset, epochs=1, verbose=0, callbacks=[progress], shuffle=False)  # batches drawn above
        seconds = time.perf_counter() - started
        row = {
            "epoch": epoch,
            "train_seconds": round(seconds, 1),
            "train_examples_per_second": round(len(train_rows) / seconds, 1),
            **{f"train_{name}": round(float(values[-1]), 5) for name, values in fitted.history.items()},
        }
        predictions = {split: predict(model, scored.rows[split], schedule.eval_batch_size) for split in SCORED_SPLITS}
        for split in SCORED_SPLITS:
            row.update({f"{split}_{k}": v for k, v in scored.score(scored.labels[split], predictions[split]).items()})
        history.append(row)
        log.info(
            "%s epoch %d: eval F1 %.4f, test F1 %.4f; %.1f examples/s, scored in %.0f s",
            name,
            epoch,
            row["eval_f1"],
            row["test_f1"],
            row["train_examples_per_second"],
            time.perf_counter() - started - seconds,
        )
        if row["eval_f1"] > best:
            best, waited = row["eval_f1"], 0
            save_weights(out, model)
            np.save(out / "test_predictions.npy", predictions["test"])
        else:
            waited += 1
            if patience is not None and waited >= patience:
                break
    return history


def best_epoch(history: list[dict]) -> dict:
    """The epoch `train_classifier` kept: the best eval F1, the first on ties."""
    return max(history, key=lambda row: (row["eval_f1"], -row["epoch"]))
