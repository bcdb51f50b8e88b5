"""The finetune stage: fine-tune pretraining checkpoints on a labelled task, several seeds each, against baselines.

Cells: the reference (the starting model with the default vocabulary and no domain pretraining: the "did all this
help?" arm), then every pretraining checkpoint (`checkpoints: all`), each phase's last (`last`), or none
(`reference`: the starting model alone, e.g. a teacher for the distill stage); with `end_task_aware_weight`,
each of them also has a twin `<cell>+mlm` fine-tuned with the masked-LM loss of the train texts added (end-task-aware
training). Every cell is fine-tuned once per seed for up to `epochs` epochs, with early stopping on eval F1 after
`patience` epochs without gain; the epoch kept is the one with the best eval F1. A finished run leaves
`cells/<cell>/seed-<seed>/done.json` and is not recomputed; runs can go in parallel processes.

Training batches hold texts of similar lengths padded to their longest (not to max_seq_length), in bfloat16 where
the hardware has it (`mixed_precision`). The report: each cell's test F1 over seeds (mean, spread), the majority
class and TF-IDF + logistic regression on the same splits, and whether the best domain-pretrained cell beats the
reference beyond noise (a paired bootstrap over test examples). `best/` holds the cell with the best mean eval F1,
its seed with the best eval F1.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np

from vbert.core import params as knob
from vbert.core.atomic import atomic_dir, write_json
from vbert.core.parallel import ordered_map, worker_state
from vbert.core.provenance import SETTINGS_FILE, digest, job_settings, same_settings
from vbert.evaluation.scores import classification_scores, positive_index, spread
from vbert.model.bert import BertConfig
from vbert.model.checkpoints import REFERENCE, Cell, pretraining_cells, restore_checkpoint
from vbert.model.classifier import write_finetuned
from vbert.model.export import ServingConfig
from vbert.model.training import Scored, TrainingSchedule, train_classifier
from vbert.text.encoding import Encoder, Row
from vbert.text.tasks import read_task
from vbert.text.tokenization import load_tokenizer

log = logging.getLogger(__name__)

CHECKPOINTS = ("all", "last", "reference")
END_TASK_AWARE = "+mlm"  # the twin of a cell fine-tuned with the masked-LM loss added: reference+mlm


@dataclass(frozen=True)
class FinetuneJob:
    SECTION: ClassVar[str] = "finetune"
    pretrain_dir: Path
    out_dir: Path
    task_dir: Path = knob.path("train, eval, test: .tsv (label<TAB>text[<TAB>text_b]), .csv or .jsonl")
    positive_label: str | None = knob.label("binary tasks: the class whose precision/recall/F1 count ('' = macro)")
    checkpoints: str = knob.choice(
        CHECKPOINTS, "fine-tune every pretraining checkpoint, each phase's last, or none (always the reference)"
    )
    max_seq_length: int = knob.integer("pieces per text (pair) at most", min=8, max=512)
    seeds: tuple[int, ...] = knob.integers("each cell is fine-tuned once per seed", min=0, distinct=True)
    training: TrainingSchedule = knob.nested()  # epochs, learning_rate, batch sizes, warm-up, mixed_precision
    patience: int = knob.integer("early stopping: epochs without a better eval F1", min=1)
    end_task_aware_weight: float = knob.number(
        "> 0: beside every cell a twin (<cell>+mlm) fine-tuned with the masked-LM loss of the train texts added at "
        "this weight (end-task-aware training, Dery et al. 2022); 0: none",
        min=0,
    )
    jobs: int = knob.integer("(cell, seed) runs fine-tuned in parallel processes", min=1)
    jit_compile: bool = knob.boolean("XLA (make bench-models measures it)")


# ---- data --------------------------------------------------------------------------------------------------


class TaskData(NamedTuple):
    rows: dict[str, list[Row]]  # split -> encoded rows (not padded)
    labels: dict[str, np.ndarray]  # split -> label indices
    label_names: list[str]


def encode_task(tokenizer_dir: Path, task_dir: Path, max_seq_length: int) -> TaskData:
    """The task's splits encoded with the tokenizer of `tokenizer_dir` (rows not padded), with label indices."""
    encoder = Encoder(load_tokenizer(tokenizer_dir), max_seq_length)
    splits, names = read_task(task_dir)
    index = {label: i for i, label in enumerate(names)}
    return TaskData(
        rows={name: encoder.rows(split.texts_a, split.texts_b)[0] for name, split in splits.items()},
        labels={name: np.array([index[label] for label in split.labels], np.int32) for name, split in splits.items()},
        label_names=names,
    )


# ---- one run: a cell, a seed -------------------------------------------------------------------------------


def load_classifier(config: BertConfig, num_labels: int, checkpoint: Path | None):
    """The classifier on the encoder of a pretraining checkpoint (a fresh encoder when None), and the pretrainer
    whose encoder it shares (its MLM head, for end-task-aware training)."""
    from vbert.model.bert import build_classifier, build_pretrainer

    pretrainer = build_pretrainer(config)
    if checkpoint is not None:
        restore_checkpoint(checkpoint, pretrainer)
    return build_classifier(config, num_labels, pretrainer.backbone), pretrainer


def with_end_task_aware_twins(job: FinetuneJob, cells: list[Cell]) -> list[Cell]:
    """The cells, then (end_task_aware_weight > 0) each one's end-task-aware twin."""
    if not job.end_task_aware_weight:
        return cells
    return cells + [cell._replace(name=cell.name + END_TASK_AWARE) for cell in cells]


def masked_lm_weight(job: FinetuneJob, cell: Cell) -> float:
    return job.end_task_aware_weight if cell.name.endswith(END_TASK_AWARE) else 0.0


@dataclass
class SweepState:
    """Per process: the job, the task's digest and its encodings (by tokenizer, made when first needed)."""

    job: FinetuneJob
    task_digest: str
    encoded: dict[Path, TaskData]

    @classmethod
    def of(cls, job: FinetuneJob) -> SweepState:
        return cls(job, digest(job.task_dir), {})

    def task(self, tokenizer_dir: Path) -> TaskData:
        if tokenizer_dir not in self.encoded:
            self.encoded[tokenizer_dir] = encode_task(tokenizer_dir, self.job.task_dir, self.job.max_seq_length)
        return self.encoded[tokenizer_dir]


def sweep_state(job: FinetuneJob) -> SweepState:
    """A process's SweepState, with its share of the cores when runs go in parallel (TensorFlow would give every
    process all of them; this runs before the worker's TensorFlow starts; with jobs 1 TensorFlow keeps its
    defaults)."""
    if job.jobs > 1:
        import tensorflow as tf

        threads = max(1, len(os.sched_getaffinity(0)) // job.jobs)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    return SweepState.of(job)


def run_dir(job: FinetuneJob, cell: str, seed: int) -> Path:
    return job.out_dir / "cells" / cell / f"seed-{seed}"


def finetune_run(run: tuple[Cell, int]) -> list[dict]:
    """Fine-tune one cell with one seed (or return its recorded rows if it already finished)."""
    from vbert.model.precision import computing_in

    cell, seed = run
    state = worker_state()
    job = state.job
    out = run_dir(job, cell.name, seed)
    settings = {
        **job_settings(
            job,
            leave_out=("pretrain_dir", "task_dir", "out_dir", "jobs", "seeds", "checkpoints", "end_task_aware_weight"),
        ),
        "masked_lm_weight": masked_lm_weight(job, cell),
        "seed": seed,
        "checkpoint": digest(cell.checkpoint / "variables.npz"),
        "tokenizer": digest(cell.folder / "vocab.txt", cell.folder / "tokenizer_config.json"),
        "task": state.task_digest,
    }
    if (out / "done.json").exists() and same_settings(out, settings):
        return json.loads((out / "done.json").read_text())
    with computing_in(job.training.mixed_precision), atomic_dir(out) as tmp:
        rows = _train(job, state.task(cell.folder), cell, seed, tmp)
        write_json(tmp / SETTINGS_FILE, settings)
        write_json(tmp / "done.json", rows)
    return rows


def _train(job: FinetuneJob, data: TaskData, cell: Cell, seed: int, out: Path) -> list[dict]:
    """Epochs until `patience` runs out (vbert.model.training); the best epoch's weights and test predictions are
    written to `out`. Returns a row per epoch, with the cell's pretraining step."""
    import keras

    from vbert.data.task_adaptive import special_ids, task_masking
    from vbert.model.training import MaskedLm

    keras.utils.set_random_seed(seed)
    config = BertConfig.from_json(cell.folder / "bert_config.json")
    model, pretrainer = load_classifier(config, len(data.label_names), cell.checkpoint)
    weight = masked_lm_weight(job, cell)
    masked_lm = None
    if weight:
        masked_lm = MaskedLm(pretrainer, weight, task_masking(job.max_seq_length), special_ids(cell.folder))
    history = train_classifier(
        model,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        data.rows["train"],
        data.labels["train"],
        Scored(data.rows, data.labels, _scorer(job, data)),
        job.training,
        seed,
        out,
        name=f"{cell.name} seed {seed}",
        patience=job.patience,
        jit_compile=job.jit_compile,
        show_progress=job.jobs == 1,
        objective=masked_lm,
    )
    context = {
        "cell": cell.name,
        "seed": seed,
        "pretrain_phase": cell.phase,
        "pretrain_step": cell.step,
        "pretrain_total_step": cell.total_step,
    }
    return [{**context, **row} for row in history]


# ---- the sweep and its report ------------------------------------------------------------------------------


def best_epochs(rows: list[dict]) -> dict[tuple[str, int], dict]:
    """Per (cell, seed), its epoch with the best eval F1 (the first, on ties): the one kept."""
    best: dict[tuple[str, int], dict] = {}
    for row in rows:
        key = (row["cell"], row["seed"])
        if key not in best or row["eval_f1"] > best[key]["eval_f1"]:
            best[key] = row
    return best


def cell_summary(rows: list[dict]) -> list[dict]:
    """Per cell, over its seeds' kept epochs: eval and test F1 mean and spread (the points of the paper's Figures 9
    and 10, with their spread)."""
    kept = best_epochs(rows)
    cells = dict.fromkeys(row["cell"] for row in rows)
    summary = []
    for name in cells:
        runs = [row for (cell, _), row in kept.items() if cell == name]
        first = runs[0]
        test, evaluation = spread([r["test_f1"] for r in runs]), spread([r["eval_f1"] for r in runs])
        summary.append(
            {
                "cell": name,
                "phase": first["pretrain_phase"],
                "pretrain_step": first["pretrain_step"],
                "pretrain_total_step": first["pretrain_total_step"],
                "seeds": len(runs),
                "eval_f1_mean": evaluation["mean"],
                **{f"test_f1_{k}": test[k] for k in ("mean", "std", "min", "max")},
                "test_accuracy_mean": round(float(np.mean([r["test_accuracy"] for r in runs])), 6),
            }
        )
    return summary


def run_sweep(job: FinetuneJob) -> dict:
    """Fine-tune every (cell, seed); copy the best to `best/`; returns the stage metrics, all rows, the summary."""
    cells = with_end_task_aware_twins(job, pretraining_cells(job.pretrain_dir, job.checkpoints))
    _remove_stale(job, cells)
    runs = [(cell, seed) for cell in cells for seed in job.seeds]
    sweep = ordered_map(finetune_run, runs, job.jobs, setup=(sweep_state, (job,)))
    rows = [row for run_rows in sweep for row in run_rows]
    state = worker_state() if job.jobs == 1 else SweepState.of(job)  # this process's (the sweep's, with jobs 1)
    summary = cell_summary(rows)
    best_cell = max(summary, key=lambda s: (s["eval_f1_mean"], -s["pretrain_total_step"]))
    kept = best_epochs(rows)
    best_run = max(
        (r for (c, _), r in kept.items() if c == best_cell["cell"]), key=lambda r: (r["eval_f1"], -r["seed"])
    )
    cell = next(c for c in cells if c.name == best_cell["cell"])
    data = state.task(cell.folder)
    _write_best(job, cell, best_run, data)
    metrics = {
        "best_cell": best_cell["cell"],
        "best_seed": best_run["seed"],
        "best_epoch": best_run["epoch"],
        "test_f1": best_cell["test_f1_mean"],
        "test_f1_std": best_cell["test_f1_std"],
        "test_accuracy": best_cell["test_accuracy_mean"],
        "eval_f1": best_cell["eval_f1_mean"],
        "seeds": list(job.seeds),
        "cells": len(cells),
        "baselines": baselines(job, state, data, cells[0]),
        **comparison(job, summary, kept, data),
    }
    metrics["chosen_over_best_baseline"] = over_best_baseline(metrics["test_f1"], metrics["baselines"])
    return {"metrics": metrics, "rows": rows, "summary": with_differences(job, summary, data)}


def _remove_stale(job: FinetuneJob, cells: list[Cell]) -> None:
    """Runs of cells or seeds this job no longer has (a checkpoint the pretrain stage no longer makes)."""
    wanted = {(cell.name, f"seed-{seed}") for cell in cells for seed in job.seeds}
    for folder in (job.out_dir / "cells").glob("*/*"):
        if (folder.parent.name, folder.name) not in wanted:
            shutil.rmtree(folder)
    for folder in (job.out_dir / "cells").glob("*"):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _write_best(job: FinetuneJob, cell: Cell, run: dict, data: TaskData) -> None:
    source = run_dir(job, cell.name, run["seed"])
    write_finetuned(
        job.out_dir / "best",
        source / "variables.npz",
        BertConfig.from_json(cell.folder / "bert_config.json"),
        cell.folder,
        ServingConfig(data.label_names, job.max_seq_length, job.positive_label),
        run,
        source / SETTINGS_FILE,
    )


def _scorer(job: FinetuneJob, data: TaskData):
    positive = positive_index(data.label_names, job.positive_label)
    return lambda gold, predicted: classification_scores(gold, predicted, len(data.label_names), positive=positive)


def _cached(path: Path, settings: dict, compute) -> dict:
    """A baseline's result kept with the sweep, recomputed when its settings change."""
    if path.exists() and json.loads(path.read_text())["settings"] == settings:
        return json.loads(path.read_text())["result"]
    result = compute()
    write_json(path, {"settings": settings, "result": result})
    return result


def baselines(job: FinetuneJob, state: SweepState, data: TaskData, reference: Cell) -> dict:
    """The majority class, TF-IDF + logistic regression, and the reference cell's (the starting model's) frozen
    mean-pooled embeddings + logistic regression, on the same splits (the latter two kept with the sweep)."""
    from vbert.evaluation.baselines import embeddings_logistic_regression, majority, tfidf_logistic_regression

    scores = _scorer(job, data)
    settings = {"task": state.task_digest, "positive_label": job.positive_label}
    tfidf = _cached(
        job.out_dir / "baselines" / "tfidf_lr.json",
        settings,
        lambda: tfidf_logistic_regression(read_task(job.task_dir)[0], data.labels, scores),
    )
    frozen = _cached(
        job.out_dir / "baselines" / "embeddings_lr.json",
        {**settings, "model": digest(reference.checkpoint / "variables.npz"), "max_seq_length": job.max_seq_length},
        lambda: embeddings_logistic_regression(
            frozen_embeddings(job, state.task(reference.folder), reference), data.labels, scores
        ),
    )
    return {
        "majority": majority(data.labels["train"], data.labels["test"], scores, data.label_names),
        "tfidf_lr": tfidf,
        "embeddings_lr": frozen,
    }


def frozen_embeddings(job: FinetuneJob, data: TaskData, cell: Cell) -> dict[str, np.ndarray]:
    """Every split's mean-pooled sentence embeddings from the cell's encoder, untrained on the task (`data`: the
    task encoded with the cell's tokenizer)."""
    from vbert.model.bert import build_pretrainer
    from vbert.model.classifier import mean_pooled
    from vbert.model.precision import computing_in

    with computing_in(job.training.mixed_precision):
        pretrainer = build_pretrainer(BertConfig.from_json(cell.folder / "bert_config.json"))
        restore_checkpoint(cell.checkpoint, pretrainer)
        started = time.perf_counter()
        embedded = {
            split: mean_pooled(pretrainer.backbone, rows, job.training.eval_batch_size)
            for split, rows in data.rows.items()
        }
    log.info(
        "frozen embeddings of %s: %d texts in %.0f s",
        cell.name,
        sum(map(len, data.rows.values())),
        time.perf_counter() - started,
    )
    return embedded


def over_best_baseline(test_f1: float, found: dict) -> dict:
    """The chosen cell's mean test F1 minus that of the baseline with the best eval F1 (chosen on eval, as a team
    would choose it without the test split)."""
    scored = {name: result for name, result in found.items() if "eval_f1" in result}
    name = max(scored, key=lambda n: scored[n]["eval_f1"])
    return {
        "baseline": name,
        "baseline_test_f1": scored[name]["test_f1"],
        "difference": round(test_f1 - scored[name]["test_f1"], 6),
    }


def minus_reference(job: FinetuneJob, data: TaskData, cell: str) -> dict:
    """A cell's mean test F1 minus the reference's over the seeds, with a paired bootstrap interval over the test
    examples."""
    from vbert.evaluation.significance import paired_bootstrap

    def predictions(name: str) -> list[np.ndarray]:
        return [np.load(run_dir(job, name, seed) / "test_predictions.npy") for seed in job.seeds]

    scores = _scorer(job, data)
    return paired_bootstrap(
        data.labels["test"], predictions(cell), predictions(REFERENCE), lambda gold, found: scores(gold, found)["f1"]
    )


def with_differences(job: FinetuneJob, summary: list[dict], data: TaskData) -> list[dict]:
    """The summary rows, each (but the reference's) with its difference from the reference and its interval."""
    rows = []
    for row in summary:
        if row["cell"] == REFERENCE:
            rows.append({**row, "minus_reference": 0.0, "minus_reference_low": 0.0, "minus_reference_high": 0.0})
            continue
        found = minus_reference(job, data, row["cell"])
        low, high = found["ci95"]
        rows.append(
            {**row, "minus_reference": found["difference"], "minus_reference_low": low, "minus_reference_high": high}
        )
    return rows


def comparison(job: FinetuneJob, summary: list[dict], kept: dict, data: TaskData) -> dict:
    """The best adapted cell (by mean eval F1: pretrained for at least one step, or end-task-aware) against the
    reference: the mean difference in test F1 and a paired bootstrap interval over the test examples."""
    pretrained = [
        s
        for s in summary
        if s["cell"] != REFERENCE and (s["pretrain_total_step"] > 0 or s["cell"].endswith(END_TASK_AWARE))
    ]
    reference = next(s for s in summary if s["cell"] == REFERENCE)
    arms = {"no_domain_pretraining": reference}
    if pretrained:
        arms["domain_pretraining"] = max(pretrained, key=lambda s: (s["eval_f1_mean"], -s["pretrain_total_step"]))
    result = {
        name: {
            "cell": arm["cell"],
            "test_f1_mean": arm["test_f1_mean"],
            "test_f1_std": arm["test_f1_std"],
            "test_f1": [kept[(arm["cell"], seed)]["test_f1"] for seed in job.seeds],
        }
        for name, arm in arms.items()
    }
    if "domain_pretraining" in arms:
        result["difference"] = minus_reference(job, data, arms["domain_pretraining"]["cell"])
    return result
