"""The pretrain stage: continue pretraining BERT on the domain TFRecords, MSL 128 then MSL 512, resumable.

Layout of the output directory (a DVC `persist` output, so a re-run finds what a killed run left):

    reference/                                   the starting weights with the default vocabulary (only when the
                                                 vocabulary variant replaced tokens): the no-pretraining baseline
    heads/                                       the model after the head warm-up (only when it ran)
    msl128/step-000000/ ... step-NNNNNN/          the initial weights, then every `save_checkpoints_steps`
    msl512/from-step-XXXXXX/step-MMMMMM/         MSL-512 phases started from chosen MSL-128 checkpoints
    tapt/from-step-XXXXXX/step-TTTTTT/           task-adaptive phases (masked LM on the task's train texts, masks
                                                 re-drawn each epoch) from chosen MSL-128 checkpoints: from step 0
                                                 it is TAPT, from a later step domain then task pretraining
    bert_config.json, vocab.txt, tokenizer_config.json

Each checkpoint holds every model and optimizer variable and the eval metrics of that step (`metrics.json`).
Killed at any point, a re-run resumes from the last complete checkpoint with its optimizer state, step and
dropout seeds, on the same data order, and ends with the same checkpoints as an uninterrupted run.

The head warm-up: a starting model without pretraining heads (the packaged MiniLM) gets fresh MLM and NSP heads.
Their first gradients are noise that would flow into the encoder, so for `head_warmup_steps` only the heads (and
the embedding rows of the tokens the vocabulary replaced) are trained, the encoder frozen, at their own learning
rate (`head_warmup_learning_rate`: MiniLM's MLM head after 100 steps of 32 reached eval loss 7.15 / accuracy 0.040
at 1e-4, 6.61 / 0.079 at 1e-3); step 0 of MSL 128 is the model after it.

Task-adaptive pretraining (Gururangan et al. 2020): `task_adaptive_epochs` passes of masked LM over the task's
train texts alone (`vbert.data.task_adaptive`), each text at its own length, optionally training only the
embeddings and heads (Ladkat et al. 2022: 78% fewer trainable parameters). Each phase ends in one checkpoint, which
the finetune stage fine-tunes as a cell beside the others.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import ClassVar

import numpy as np

from vbert.core import params as knob
from vbert.core.atomic import atomic_dir, write_text
from vbert.core.errors import InputError
from vbert.core.provenance import claim, digest, job_settings, same_settings
from vbert.core.resources import PACKAGED_MODELS
from vbert.model.bert import GOOGLE_CHECKPOINTS, MODEL_NAMES, BertConfig, named_config
from vbert.model.checkpoints import (
    REFERENCE,
    list_checkpoints,
    restore_checkpoint,
    save_checkpoint,
    save_weights,
    step_dir,
)
from vbert.model.distribution import STRATEGIES
from vbert.model.precision import SETTINGS as PRECISIONS
from vbert.text.tokenization import (
    Vocab,
    copy_tokenizer,
    load_vocab,
    read_do_lower_case,
    save_tokenizer,
    tokenizer_files,
)

log = logging.getLogger(__name__)

EVAL_METRICS = ("masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy", "next_sentence_loss")


INIT_CHECKPOINTS = "auto (minilm's own weights; scratch for tiny) | minilm | an HF folder | a Google prefix | scratch"


@dataclass(frozen=True)
class PretrainJob:
    SECTION: ClassVar[str] = "pretrain"
    tfrecords: Path
    vocab_dir: Path
    out_dir: Path
    task_dir: Path | None  # the finetune task: its train texts are task-adaptive pretraining's data
    model: str = knob.choice(
        MODEL_NAMES,
        "the packaged MiniLM (6 x 384), or a size: tiny 2 x 128, base 12 x 768, large 24 x 1024",
        switch="model",
    )
    init_checkpoint: str = knob.text(INIT_CHECKPOINTS, empty=False)
    embedding_init: str = knob.choice(("mean", "random"), "rows of replaced vocabulary tokens: mean of their pieces")
    learning_rate: float = knob.number("peak learning rate (linear warm-up and decay)", min=0, max=1, min_open=True)
    train_batch_size: int = knob.integer("examples per update", min=1)
    gradient_accumulation_steps: int = knob.integer(
        "N: each update averages N batches of train_batch_size / N (a big batch that fits)", min=1
    )
    num_train_steps: int = knob.integer(
        "updates of the MSL-128 phase (0: none, only the starting checkpoint: e.g. TAPT alone)", min=0
    )
    num_warmup_steps: int = knob.integer("updates of linear warm-up", min=0)
    head_warmup_steps: int = knob.integer(
        "a model without MLM/NSP heads (MiniLM): train only the new heads (and new vocabulary rows) first", min=0
    )
    head_warmup_learning_rate: float = knob.number(
        "the head warm-up's peak learning rate (the heads alone: a probe's rate, not the encoder's)",
        min=0,
        max=1,
        min_open=True,
    )
    next_sentence: bool = knob.boolean("Google's next-sentence loss; false drops it (RoBERTa's finding)")
    save_checkpoints_steps: int = knob.integer("a checkpoint every this many updates; each is fine-tuned", min=1)
    num_train_steps_msl512: int = knob.integer("updates of each MSL-512 phase", min=0)
    msl512_from_steps: tuple[int, ...] = knob.integers(
        "MSL-128 checkpoints that start an MSL-512 phase (the paper: every 100k-th)", min=0, empty=True
    )
    task_adaptive_epochs: int = knob.integer(
        "TAPT: passes of masked LM over the task's train texts, masks re-drawn each pass (0: no TAPT phase)", min=0
    )
    task_adaptive_from_steps: tuple[int, ...] = knob.integers(
        "MSL-128 checkpoints a TAPT phase starts from: 0 the starting model (TAPT), N after N domain steps", min=0
    )
    task_adaptive_learning_rate: float = knob.number("TAPT's peak learning rate", min=0, max=1, min_open=True)
    task_adaptive_embeddings_only: bool = knob.boolean("TAPT trains only the embeddings and the heads")
    eval_batch_size: int = knob.integer("examples per eval batch", min=1)
    eval_batches: int = knob.integer("eval batches per checkpoint", min=1)
    mixed_precision: str = knob.choice(PRECISIONS, "auto: bf16 where the CPU has AVX512_BF16/AMX or the GPU Ampere+")
    jit_compile: bool = knob.boolean("XLA (make bench-models measures it)")
    strategy: str = knob.choice(STRATEGIES, "multi-worker takes its cluster from TF_CONFIG")
    cpu_devices: int = knob.integer("mirrored on a machine without GPUs: split the CPU into this many devices", min=1)
    tpu: str = knob.text("strategy tpu: the TPU's name or grpc:// address ('' = this TPU VM)")
    random_seed: int = knob.integer("seed of the weights, dropout and data order", min=0)

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.train_batch_size % self.gradient_accumulation_steps:
            multiple = f"must be a multiple of gradient_accumulation_steps ({self.gradient_accumulation_steps})"
            yield "train_batch_size", multiple
        if self.num_train_steps % self.save_checkpoints_steps:
            yield "num_train_steps", f"must be a multiple of save_checkpoints_steps ({self.save_checkpoints_steps})"
        for key in ("msl512_from_steps", "task_adaptive_from_steps"):
            for step in getattr(self, key):
                if step % self.save_checkpoints_steps or step > self.num_train_steps:
                    yield key, f"{step} is not an MSL-128 checkpoint step"
        if self.task_adaptive_epochs and self.strategy == "multi-worker":
            yield "task_adaptive_epochs", "task-adaptive pretraining runs on one machine: set 0 under multi-worker"
        if self.init_checkpoint == "auto" and self.model in ("base", "large"):
            yield (
                "init_checkpoint",
                (
                    f"model {self.model} has no packaged weights: give Google's checkpoint prefix (e.g. "
                    f"{GOOGLE_CHECKPOINTS[self.model]}/bert_model.ckpt), an HF folder, or scratch"
                ),
            )

    @property
    def micro_batch_size(self) -> int:
        return self.train_batch_size // self.gradient_accumulation_steps

    @property
    def initial_weights(self) -> str:
        """Where the weights start: `init_checkpoint`, with `auto` resolved for the model."""
        if self.init_checkpoint != "auto":
            return self.init_checkpoint
        return self.model if self.model in PACKAGED_MODELS else "scratch"


def build_trainer(
    config: BertConfig,
    learning_rate: float,
    num_train_steps: int,
    num_warmup_steps: int,
    max_seq_length: int,
    max_predictions: int,
    jit_compile: bool,
    strategy=None,
    gradient_accumulation_steps: int = 1,
    next_sentence: bool = True,
):
    """A compiled, built BertPretrainer (variables and optimizer slots exist, so checkpoints can restore),
    its variables placed by `strategy` (the default one when None)."""
    import tensorflow as tf

    from vbert.model.bert import BertPretrainer
    from vbert.model.optimization import make_optimizer

    with (strategy or tf.distribute.get_strategy()).scope():
        model = BertPretrainer(config, next_sentence=next_sentence)
        model(dummy_features(max_seq_length, max_predictions))
    optimizer = partial(
        make_optimizer,
        learning_rate,
        num_train_steps,
        num_warmup_steps,
        gradient_accumulation_steps=gradient_accumulation_steps,
    )
    compile_with(model, optimizer, jit_compile, strategy)
    return model


def compile_with(model, make_optimizer: Callable, jit_compile: bool, strategy=None) -> None:
    """Compile `model` with the optimizer `make_optimizer()` returns, made in `strategy`'s scope (Keras ties an
    optimizer to the strategy it was made under), its slots built for the variables training updates."""
    import tensorflow as tf

    with (strategy or tf.distribute.get_strategy()).scope():
        model.compile(optimizer=make_optimizer(), jit_compile=jit_compile)
        updated = model.updated_variables if model.updated_variables is not None else model.trainable_variables
        model.optimizer.build(updated)


def dummy_features(max_seq_length: int, max_predictions: int) -> dict:
    return {
        "input_ids": np.zeros((1, max_seq_length), np.int32),
        "input_mask": np.ones((1, max_seq_length), np.int32),
        "segment_ids": np.zeros((1, max_seq_length), np.int32),
        "masked_lm_positions": np.zeros((1, max_predictions), np.int32),
        "masked_lm_ids": np.zeros((1, max_predictions), np.int32),
        "masked_lm_weights": np.zeros((1, max_predictions), np.float32),
        "next_sentence_labels": np.zeros((1, 1), np.int32),
    }


def _phase(manifest: dict, max_seq_length: int) -> dict:
    for phase in manifest["phases"]:
        if phase["max_seq_length"] == max_seq_length:
            return phase
    raise InputError(f"the tfrecords manifest has no MSL-{max_seq_length} data")


def _progress_callback(job: PretrainJob, desc: str, steps: int, start: int, total: int, chief: bool, on_epoch=None):
    """A Keras callback: a progress bar (examples, examples/s, loss, masked-LM accuracy); `on_epoch(step,
    seconds)` after every `steps` updates (one Keras epoch)."""
    import keras
    from tqdm import tqdm

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(
                total=total * job.train_batch_size,
                initial=start * job.train_batch_size,
                unit="ex",
                desc=desc,
                disable=not chief,
                dynamic_ncols=True,
            )

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(job.micro_batch_size)
            if logs:
                self.bar.set_postfix(loss=f"{logs['loss']:.3f}", mlm_acc=f"{logs['masked_lm_accuracy']:.3f}")

        def on_epoch_end(self, epoch, logs=None):
            if on_epoch is not None:
                on_epoch((epoch + 1) * steps, time.perf_counter() - self.started)

        def on_train_end(self, logs=None):
            self.bar.close()

    return Progress()


def _datasets(job: PretrainJob, tfrecords: Path, phase: dict):
    """Training batches of `micro_batch_size` (shuffled, repeated; sharded by file across workers) and
    `eval_batches` eval batches (every worker reads the same ones, so their metrics are the single-device ones)."""
    import tensorflow as tf

    from vbert.data.features import pretraining_dataset

    msl, predictions = phase["max_seq_length"], phase["max_predictions_per_seq"]
    train = pretraining_dataset(
        [tfrecords / f for f in phase["train_files"]],
        msl,
        predictions,
        job.micro_batch_size,
        training=True,
        seed=job.random_seed,
    )
    evaluation = pretraining_dataset(
        [tfrecords / phase["eval_file"]], msl, predictions, job.eval_batch_size, training=False
    )
    eval_steps = min(job.eval_batches, -(-phase["eval_examples"] // job.eval_batch_size))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return train, evaluation.take(eval_steps).with_options(options), eval_steps


def train_phase(
    model,
    job: PretrainJob,
    root: Path,
    phase: dict,
    num_train_steps: int,
    extra_files: dict[str, str],
    chief: bool = True,
    resume: bool = True,
    data_offset: int = 0,
    train=None,
) -> list[dict]:
    """Train to `num_train_steps` updates with a checkpoint (and eval) every `save_checkpoints_steps`; resumes.
    The training data (the phase's TFRecords, or `train`: a dataset of micro-batches) starts after `data_offset`
    updates' worth of batches (those a head warm-up used).

    Returns the eval metrics of every checkpoint of the phase (on the chief; other workers write nothing and
    return an empty list). `resume` False: the checkpoints found are stale (the chief is removing them)."""
    records, evaluation, eval_steps = _datasets(job, job.tfrecords, phase)
    train = records if train is None else train
    accumulate = job.gradient_accumulation_steps

    def evaluate(step: int) -> dict:
        # `steps` given: Keras folds an empty step into the metrics when it runs a dataset to its end
        result = model.evaluate(evaluation, steps=eval_steps, return_dict=True, verbose=0)
        return {"step": step, **{k: round(float(result[k]), 6) for k in EVAL_METRICS}}

    def save(step: int, metrics: dict) -> None:
        if chief:
            files = {**extra_files, "metrics.json": json.dumps(metrics)}
            save_checkpoint(root, step, model, model.optimizer, files)

    def checkpoint(step: int, seconds: float) -> None:
        examples_per_second = round(job.save_checkpoints_steps * job.train_batch_size / seconds, 2)
        metrics = {**evaluate(step), "examples_per_second": examples_per_second}
        save(step, metrics)
        log.info("checkpoint %s: %s", step_dir(root, step), metrics)

    if chief:
        for stale in root.glob(".step-*.tmp-*") if root.exists() else ():
            shutil.rmtree(stale, ignore_errors=True)  # a checkpoint half-written when a run was killed
    done = list_checkpoints(root) if resume else []
    if done:
        start, path = done[-1]
        restore_checkpoint(path, model, model.optimizer)
        log.info("resuming %s from step %d", root, start)
    else:
        start = 0
        save(0, evaluate(0))
    if start < num_train_steps:
        steps = job.save_checkpoints_steps
        desc = str(root.relative_to(job.out_dir))
        model.fit(
            train.skip((data_offset + start) * accumulate),
            epochs=num_train_steps // steps,
            initial_epoch=start // steps,
            steps_per_epoch=steps * accumulate,
            callbacks=[_progress_callback(job, desc, steps, start, num_train_steps, chief, checkpoint)],
            shuffle=False,  # the dataset is shuffled already
            verbose=0,
        )
    if not chief:
        return []
    return [json.loads((path / "metrics.json").read_text()) for _, path in list_checkpoints(root)]


# ---- where training starts -------------------------------------------------------------------------------


def _replaced(job: PretrainJob) -> list[dict]:
    path = job.vocab_dir / "replaced.json"
    return json.loads(path.read_text()) if path.exists() else []


def initialise(model, job: PretrainJob, config: BertConfig) -> list[str]:
    """Weights from `init_checkpoint`; the reference model (those weights with the default vocabulary) when the
    vocabulary replaced tokens; then the replaced rows re-initialised. Returns the variables the source lacked."""
    from vbert.model.weights import (
        assign_weights,
        google_variable_map,
        grow_vocabulary_rows,
        initial_tensors,
        reinitialise_replaced_rows,
    )

    tensors, source = initial_tensors(job.initial_weights)
    if tensors is None:
        return []
    tensors = grow_vocabulary_rows(tensors, config.vocab_size, source)
    left = assign_weights(google_variable_map(config, model.backbone, model.pretraining_heads), tensors, source)
    replaced = _replaced(job)
    if replaced:
        write_reference(model, job, replaced)
        rows = [model.word_embeddings]
        if "cls/predictions/output_bias" in tensors:  # a fresh head's bias stays zero
            rows.append(model.pretraining_heads.output_bias)
        for variable in rows:
            values = np.asarray(variable.numpy())
            init = (job.embedding_init, config.initializer_range, job.random_seed)
            variable.assign(reinitialise_replaced_rows(values, replaced, *init))
        log.info("initialised %d embedding rows of new tokens (%s)", len(replaced), job.embedding_init)
    return left


def write_reference(model, job: PretrainJob, replaced: list[dict]) -> None:
    """`reference/`: the starting weights and the vocabulary before the variant replaced any token (without the
    rows the `extend` variant appended: the starting model as it was)."""
    vocab = load_vocab(tokenizer_files(job.vocab_dir)[0])
    tokens = list(vocab.tokens)
    for entry in replaced:
        tokens[entry["id"]] = entry["old_token"]
    tokens = [token for token in tokens if token is not None]
    config = replace(model.bert_config, vocab_size=len(tokens))
    rows = [model.word_embeddings, model.pretraining_heads.output_bias]
    with atomic_dir(job.out_dir / REFERENCE) as tmp:
        save_weights(tmp, model, (rows, len(tokens)))
        save_tokenizer(tmp, Vocab(tokens, "<default vocabulary>"), read_do_lower_case(job.vocab_dir))
        write_text(tmp / "bert_config.json", config.to_json())


def warm_up_heads(model, job: PretrainJob, phase: dict, chief: bool, strategy=None) -> None:
    """Train the heads (and the replaced embedding rows) alone for `head_warmup_steps`. Written to `heads/` (model
    variables); a re-run restores it instead of training again. The model's optimizer is the warm-up's afterwards:
    compile it again for the main phase."""
    from vbert.model.optimization import make_optimizer

    folder = job.out_dir / "heads"
    if (folder / "variables.npz").exists():
        restore_checkpoint(folder, model)
        log.info("head warm-up: restored %s", folder)
        return
    steps, accumulate = job.head_warmup_steps, job.gradient_accumulation_steps
    rows = [entry["id"] for entry in _replaced(job)]
    model.freeze_encoder(rows)
    log.info(
        "head warm-up: %d steps on the heads%s, the encoder frozen", steps, f" and {len(rows)} new rows" * bool(rows)
    )
    # the word embeddings are shared with the frozen encoder: no weight decay on them (it would move every row)
    optimizer = partial(
        make_optimizer,
        job.head_warmup_learning_rate,
        steps,
        max(1, steps // 10),
        gradient_accumulation_steps=accumulate,
        no_decay=("embeddings",),
    )
    compile_with(model, optimizer, job.jit_compile, strategy)
    train, _, _ = _datasets(job, job.tfrecords, phase)
    model.fit(
        train.take(steps * accumulate),
        epochs=1,
        steps_per_epoch=steps * accumulate,
        callbacks=[_progress_callback(job, "heads", steps, 0, steps, chief)],
        verbose=0,
        shuffle=False,  # the dataset is shuffled already
    )
    model.unfreeze()
    if chief:
        with atomic_dir(folder) as tmp:
            save_weights(tmp, model)


def _wait_for(path: Path, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.5)


def checkpoint_rows(phases: dict[str, list[dict]]) -> list[dict]:
    """One row per checkpoint: its phase, its step in the phase and its pretraining steps in all (an MSL-512
    phase counts on from the MSL-128 step it started from), then the eval metrics."""
    rows = []
    for phase, checkpoints in phases.items():
        start = int(phase.rsplit("-", 1)[1]) if "-from-step-" in phase else 0
        rows += [{"phase": phase, "total_step": start + row["step"], **row} for row in checkpoints]
    return rows


def _trainer(job: PretrainJob, config: BertConfig, steps: int, warmup: int, phase: dict, strategy):
    return build_trainer(
        config,
        job.learning_rate,
        steps,
        warmup,
        phase["max_seq_length"],
        phase["max_predictions_per_seq"],
        job.jit_compile,
        strategy,
        job.gradient_accumulation_steps,
        job.next_sentence,
    )


def task_adaptive_phases(
    job: PretrainJob,
    config: BertConfig,
    manifest: dict,
    root128: Path,
    extra: dict,
    chief: bool,
    resume: bool,
    strategy,
) -> dict[str, list[dict]]:
    """A TAPT phase from each of `task_adaptive_from_steps`: masked LM alone on the task's train texts for
    `task_adaptive_epochs` passes, one checkpoint at its end. Returns the phases' eval rows by name."""
    from vbert.data.instances import InstanceConfig
    from vbert.data.task_adaptive import batches_per_epoch, special_ids, task_adaptive_dataset, task_train_rows
    from vbert.model.optimization import make_optimizer

    phase = manifest["phases"][0]
    masking = InstanceConfig(**{k: phase[k] for k in InstanceConfig.__dataclass_fields__})
    texts = task_train_rows(job.task_dir, job.vocab_dir, phase["max_seq_length"])
    updates = (
        job.task_adaptive_epochs
        * batches_per_epoch(len(texts), job.micro_batch_size)
        // (job.gradient_accumulation_steps)
    )
    if updates < 1:
        raise InputError(f"task_adaptive_epochs: {len(texts)} train texts make no update of {job.train_batch_size}")
    log.info(
        "task-adaptive pretraining: %d train texts x %d epochs = %d updates%s",
        len(texts),
        job.task_adaptive_epochs,
        updates,
        ", embeddings and heads only" * job.task_adaptive_embeddings_only,
    )
    # TAPT's learning rate, one checkpoint at the end, masked LM alone
    tapt_job = replace(
        job, learning_rate=job.task_adaptive_learning_rate, save_checkpoints_steps=updates, next_sentence=False
    )
    train = task_adaptive_dataset(
        texts, masking, special_ids(job.vocab_dir), job.micro_batch_size, job.random_seed, job.task_adaptive_epochs
    )
    rows = {}
    for from_step in job.task_adaptive_from_steps:
        start = step_dir(root128, from_step)
        if not chief:
            _wait_for(start / "variables.npz")
        model = _trainer(tapt_job, config, updates, max(1, updates // 10), phase, strategy)
        root = job.out_dir / "tapt" / f"from-step-{from_step:06d}"
        if not (resume and list_checkpoints(root)):
            restore_checkpoint(start, model)
        if job.task_adaptive_embeddings_only:
            model.freeze_encoder(np.arange(config.vocab_size))
            optimizer = partial(
                make_optimizer,
                tapt_job.learning_rate,
                updates,
                max(1, updates // 10),
                gradient_accumulation_steps=job.gradient_accumulation_steps,
                no_decay=("embeddings",),
            )
            compile_with(model, optimizer, job.jit_compile, strategy)
        rows[f"tapt-{root.name}"] = train_phase(
            model, tapt_job, root, phase, updates, extra, chief, resume, train=train
        )
    return rows


def run_pretraining(job: PretrainJob) -> dict | None:
    """Run (or resume) both phases; returns the stage metrics (None on a multi-worker worker that is not
    the chief: it trains, and the chief writes)."""
    from vbert.model.precision import computing_in

    with computing_in(job.mixed_precision) as precision:
        results = _run(job)
    return None if results is None else {**results, "mixed_precision": precision}


def _run(job: PretrainJob) -> dict | None:
    import keras
    import tensorflow as tf

    from vbert.model.distribution import is_chief, make_strategy
    from vbert.model.optimization import make_optimizer

    if not (job.tfrecords / "manifest.json").exists():
        raise InputError(f"{job.tfrecords}: no TFRecords (manifest.json); run the tfrecords stage first")
    if job.task_adaptive_epochs and job.task_dir is None:
        raise InputError("task_adaptive_epochs: task-adaptive pretraining needs the task's texts (--task-dir)")
    strategy = make_strategy(job.strategy, job.cpu_devices, job.tpu)
    chief = is_chief(strategy)
    log.info("strategy %s: %d replica(s)%s", job.strategy, strategy.num_replicas_in_sync, "" if chief else ", worker")
    keras.utils.set_random_seed(job.random_seed)
    if not job.jit_compile:
        # Bit-identical resumes: XLA's CPU kernels are deterministic as they are; TensorFlow's need this switch
        # (which in turn makes Keras turn XLA off, hence only here).
        tf.config.experimental.enable_op_determinism()
    manifest = json.loads((job.tfrecords / "manifest.json").read_text())
    vocab = load_vocab(tokenizer_files(job.vocab_dir)[0])
    config = named_config(job.model, len(vocab))
    extra = {"bert_config.json": config.to_json()}
    settings = {
        **job_settings(
            job, leave_out=("tfrecords", "vocab_dir", "out_dir", "task_dir", "strategy", "cpu_devices", "tpu")
        ),
        "tfrecords": digest(job.tfrecords),
        "vocab": digest(job.vocab_dir),
        **({"task": digest(job.task_dir)} if job.task_adaptive_epochs else {}),
    }
    resume = same_settings(job.out_dir, settings)  # every worker decides before the chief may clear the folder
    if chief:
        claim(job.out_dir, settings)
        write_text(job.out_dir / "bert_config.json", config.to_json())
        copy_tokenizer(job.vocab_dir, job.out_dir)

    phase128 = manifest["phases"][0]
    model = _trainer(job, config, job.num_train_steps, job.num_warmup_steps, phase128, strategy)
    root128 = job.out_dir / f"msl{phase128['max_seq_length']}"
    warmed = 0
    if not (resume and list_checkpoints(root128)):
        fresh_heads = initialise(model, job, config)
        if job.head_warmup_steps and fresh_heads:
            warm_up_heads(model, job, phase128, chief, strategy)
            optimizer = partial(
                make_optimizer,
                job.learning_rate,
                job.num_train_steps,
                job.num_warmup_steps,
                gradient_accumulation_steps=job.gradient_accumulation_steps,
            )
            compile_with(model, optimizer, job.jit_compile, strategy)
            warmed = job.head_warmup_steps
        elif job.head_warmup_steps:
            reason = "is trained from scratch" if job.initial_weights == "scratch" else "has pretraining heads"
            log.info("no head warm-up: the starting model %s", reason)
    elif (job.out_dir / "heads" / "variables.npz").exists():
        warmed = job.head_warmup_steps
    rows = {root128.name: train_phase(model, job, root128, phase128, job.num_train_steps, extra, chief, resume, warmed)}

    has_msl512 = any(phase["max_seq_length"] == 512 for phase in manifest["phases"])
    if job.msl512_from_steps and job.num_train_steps_msl512 and not has_msl512:
        log.info("the TFRecords have no MSL-512 data (msl512: false): no MSL-512 phase")
    for from_step in job.msl512_from_steps if job.num_train_steps_msl512 and has_msl512 else ():
        start = step_dir(root128, from_step)
        if not chief:
            _wait_for(start / "variables.npz")  # the chief may still be writing it
        if not (start / "variables.npz").exists():
            raise InputError(f"msl512_from_steps: no MSL-128 checkpoint at step {from_step} ({start})")
        phase512 = _phase(manifest, 512)
        steps512 = job.num_train_steps_msl512
        model512 = _trainer(job, config, steps512, max(1, steps512 // 10), phase512, strategy)
        root512 = job.out_dir / "msl512" / f"from-step-{from_step:06d}"
        if not (resume and list_checkpoints(root512)):
            restore_checkpoint(start, model512)
        job512 = replace(job, save_checkpoints_steps=min(job.save_checkpoints_steps, steps512))
        rows[f"msl512-{root512.name}"] = train_phase(
            model512, job512, root512, phase512, steps512, extra, chief, resume
        )
    if job.task_adaptive_epochs:
        rows.update(task_adaptive_phases(job, config, manifest, root128, extra, chief, resume, strategy))
    if not chief:
        return None
    last = rows[root128.name][-1]
    return {
        "final_step": last["step"],
        **{k: last[k] for k in EVAL_METRICS},
        "initial": {k: rows[root128.name][0][k] for k in EVAL_METRICS},
        "head_warmup_steps": warmed,
        "phases": rows,
    }
