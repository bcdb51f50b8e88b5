"""The pretrain stage: continue pretraining BERT on the domain TFRecords, MSL 128 then MSL 512, resumable.

Layout of the output directory (a DVC `persist` output, so a re-run finds what a killed run left):

    msl128/step-000000/ ... step-NNNNNN/          the initial weights, then every `save_checkpoints_steps`
    msl512/from-step-XXXXXX/step-MMMMMM/         MSL-512 phases started from chosen MSL-128 checkpoints
    bert_config.json, vocab.txt

Each checkpoint holds every model and optimizer variable and the eval metrics of that step (`metrics.json`).
Killed at any point, a re-run resumes from the last complete checkpoint with its optimizer state, step and
dropout seeds, on the same data order, and ends with the same checkpoints as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from vbert.core.atomic import write_text
from vbert.core.errors import InputError
from vbert.core.provenance import claim, digest, job_settings, same_settings
from vbert.model.bert import BertConfig, named_config
from vbert.model.checkpoints import list_checkpoints, restore_checkpoint, save_checkpoint, step_dir
from vbert.text.tokenization import copy_tokenizer, load_vocab, tokenizer_files

log = logging.getLogger(__name__)

EVAL_METRICS = ("masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy", "next_sentence_loss")


@dataclass(frozen=True)
class PretrainJob:
    tfrecords: Path
    vocab_dir: Path
    out_dir: Path
    model: str
    init_checkpoint: str
    learning_rate: float
    train_batch_size: int
    num_train_steps: int
    num_warmup_steps: int
    save_checkpoints_steps: int
    num_train_steps_msl512: int
    msl512_from_steps: tuple[int, ...]
    embedding_init: str
    eval_batch_size: int
    eval_batches: int
    jit_compile: bool
    strategy: str
    cpu_devices: int
    tpu: str
    random_seed: int


def build_trainer(
    config: BertConfig,
    learning_rate: float,
    num_train_steps: int,
    num_warmup_steps: int,
    max_seq_length: int,
    max_predictions: int,
    jit_compile: bool,
    strategy=None,
):
    """A compiled, built BertPretrainer (variables and optimizer slots exist, so checkpoints can restore),
    its variables placed by `strategy` (the default one when None)."""
    import numpy as np
    import tensorflow as tf

    from vbert.model.bert import BertPretrainer
    from vbert.model.optimization import make_optimizer

    with (strategy or tf.distribute.get_strategy()).scope():
        model = BertPretrainer(config)
        model.compile(
            optimizer=make_optimizer(learning_rate, num_train_steps, num_warmup_steps),
            jit_compile=jit_compile,
        )
        dummy = {
            "input_ids": np.zeros((1, max_seq_length), np.int32),
            "input_mask": np.ones((1, max_seq_length), np.int32),
            "segment_ids": np.zeros((1, max_seq_length), np.int32),
            "masked_lm_positions": np.zeros((1, max_predictions), np.int32),
            "masked_lm_ids": np.zeros((1, max_predictions), np.int32),
            "masked_lm_weights": np.zeros((1, max_predictions), np.float32),
            "next_sentence_labels": np.zeros((1, 1), np.int32),
        }
        model(dummy)
        model.optimizer.build(model.trainable_variables)
    return model


def _phase(manifest: dict, max_seq_length: int) -> dict:
    for phase in manifest["phases"]:
        if phase["max_seq_length"] == max_seq_length:
            return phase
    raise InputError(f"the tfrecords manifest has no MSL-{max_seq_length} data (tfrecords.msl512 off?)")


def _progress_callback(job: PretrainJob, root: Path, evaluate, save, start: int, num_train_steps: int, chief: bool):
    """A Keras callback: a progress bar (examples, examples/s, loss, masked-LM accuracy), then an eval and a
    checkpoint at the end of every `save_checkpoints_steps` (one Keras epoch)."""
    import keras
    from tqdm import tqdm

    batch, steps = job.train_batch_size, job.save_checkpoints_steps

    class Checkpointing(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(
                total=num_train_steps * batch,
                initial=start * batch,
                unit="ex",
                desc=str(root.relative_to(job.out_dir)),
                disable=not chief,
                dynamic_ncols=True,
            )

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, step, logs=None):
            self.bar.update(batch)
            if logs:
                self.bar.set_postfix(loss=f"{logs['loss']:.3f}", mlm_acc=f"{logs['masked_lm_accuracy']:.3f}")

        def on_epoch_end(self, epoch, logs=None):
            step = (epoch + 1) * steps
            seconds = time.perf_counter() - self.started
            metrics = {**evaluate(step), "examples_per_second": round(steps * batch / seconds, 2)}
            save(step, metrics)
            log.info("checkpoint %s: %s", step_dir(root, step), metrics)

        def on_train_end(self, logs=None):
            self.bar.close()

    return Checkpointing()


def _datasets(job: PretrainJob, tfrecords: Path, phase: dict):
    """Training batches (shuffled, repeated; sharded by file across workers) and `eval_batches` eval batches
    (every worker reads the same ones, so their metrics are the single-device ones)."""
    import tensorflow as tf

    from vbert.data.features import pretraining_dataset

    msl, predictions = phase["max_seq_length"], phase["max_predictions_per_seq"]
    train = pretraining_dataset(
        [tfrecords / f for f in phase["train_files"]],
        msl,
        predictions,
        job.train_batch_size,
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
    tfrecords: Path,
    phase: dict,
    num_train_steps: int,
    extra_files: dict[str, str],
    chief: bool = True,
    resume: bool = True,
) -> list[dict]:
    """Train to `num_train_steps` with a checkpoint (and eval) every `save_checkpoints_steps`; resumes.

    Returns the eval metrics of every checkpoint of the phase (on the chief; other workers write nothing and
    return an empty list). `resume` False: the checkpoints found are stale (the chief is removing them)."""
    train, evaluation, eval_steps = _datasets(job, tfrecords, phase)

    def evaluate(step: int) -> dict:
        # `steps` given: Keras folds an empty step into the metrics when it runs a dataset to its end
        result = model.evaluate(evaluation, steps=eval_steps, return_dict=True, verbose=0)
        return {"step": step, **{k: round(float(result[k]), 6) for k in EVAL_METRICS}}

    def save(step: int, metrics: dict) -> None:
        if chief:
            files = {**extra_files, "metrics.json": json.dumps(metrics)}
            save_checkpoint(root, step, model, model.optimizer, files)

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
        model.fit(
            train.skip(start),
            epochs=num_train_steps // steps,
            initial_epoch=start // steps,
            steps_per_epoch=steps,
            callbacks=[_progress_callback(job, root, evaluate, save, start, num_train_steps, chief)],
            shuffle=False,  # the dataset is shuffled already
            verbose=0,
        )
    if not chief:
        return []
    return [json.loads((path / "metrics.json").read_text()) for _, path in list_checkpoints(root)]


def _initialise(model, job: PretrainJob, config: BertConfig) -> None:
    """Weights from `init_checkpoint`, then the rows of the tokens the vocabulary variant replaced."""
    import numpy as np

    from vbert.model.weights import assign_weights, google_variable_map, initial_tensors, reinitialise_replaced_rows

    tensors, source = initial_tensors(job.init_checkpoint)
    if tensors is not None:
        assign_weights(google_variable_map(config, model.backbone, model.pretraining_heads), tensors, source)
    replaced_path = job.vocab_dir / "replaced.json"
    replaced = json.loads(replaced_path.read_text()) if replaced_path.exists() else []
    if replaced and job.init_checkpoint != "scratch":
        embeddings = model.backbone.get_layer("token_embedding").embeddings
        embeddings.assign(
            reinitialise_replaced_rows(
                np.asarray(embeddings.numpy()),
                replaced,
                job.embedding_init,
                config.initializer_range,
                job.random_seed,
            )
        )
        log.info("re-initialised %d embedding rows of replaced tokens (%s)", len(replaced), job.embedding_init)


def _wait_for(path: Path, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.5)


def plot_rows(phases: dict[str, list[dict]]) -> list[dict]:
    """One row per checkpoint: its phase, its step in the phase and its pretraining steps in all (an MSL-512
    phase counts on from the MSL-128 step it started from), then the eval metrics."""
    rows = []
    for phase, checkpoints in phases.items():
        start = int(phase.rsplit("-", 1)[1]) if phase.startswith("msl512-from-step-") else 0
        rows += [{"phase": phase, "total_step": start + row["step"], **row} for row in checkpoints]
    return rows


def run_pretraining(job: PretrainJob) -> dict | None:
    """Run (or resume) both phases; returns the stage metrics (None on a multi-worker worker that is not
    the chief: it trains, and the chief writes)."""
    import keras
    import tensorflow as tf

    from vbert.model.distribution import is_chief, make_strategy

    if job.num_train_steps % job.save_checkpoints_steps:
        raise InputError(
            f"num_train_steps {job.num_train_steps} must be a multiple of save_checkpoints_steps "
            f"{job.save_checkpoints_steps}"
        )
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
        **job_settings(job, leave_out=("tfrecords", "vocab_dir", "out_dir", "strategy", "cpu_devices", "tpu")),
        "tfrecords": digest(job.tfrecords),
        "vocab": digest(job.vocab_dir),
    }
    resume = same_settings(job.out_dir, settings)  # every worker decides before the chief may clear the folder
    if chief:
        claim(job.out_dir, settings)
        write_text(job.out_dir / "bert_config.json", config.to_json())
        copy_tokenizer(job.vocab_dir, job.out_dir)

    phase128 = manifest["phases"][0]
    msl, predictions = phase128["max_seq_length"], phase128["max_predictions_per_seq"]
    model = build_trainer(
        config,
        job.learning_rate,
        job.num_train_steps,
        job.num_warmup_steps,
        msl,
        predictions,
        job.jit_compile,
        strategy,
    )
    root128 = job.out_dir / f"msl{msl}"
    if not (resume and list_checkpoints(root128)):
        _initialise(model, job, config)
    rows = {
        root128.name: train_phase(
            model, job, root128, job.tfrecords, phase128, job.num_train_steps, extra, chief, resume
        )
    }

    for from_step in job.msl512_from_steps if job.num_train_steps_msl512 else ():
        start = step_dir(root128, from_step)
        if not chief:
            _wait_for(start / "variables.npz")  # the chief may still be writing it
        if not (start / "variables.npz").exists():
            raise InputError(f"msl512_from_steps: no MSL-128 checkpoint at step {from_step} ({start})")
        phase512 = _phase(manifest, 512)
        steps512 = job.num_train_steps_msl512
        model512 = build_trainer(
            config,
            job.learning_rate,
            steps512,
            max(1, steps512 // 10),
            512,
            phase512["max_predictions_per_seq"],
            job.jit_compile,
            strategy,
        )
        root512 = job.out_dir / "msl512" / f"from-step-{from_step:06d}"
        if not (resume and list_checkpoints(root512)):
            restore_checkpoint(start, model512)
        job512 = replace(job, save_checkpoints_steps=min(job.save_checkpoints_steps, steps512))
        rows[f"msl512-{root512.name}"] = train_phase(
            model512, job512, root512, job.tfrecords, phase512, steps512, extra, chief, resume
        )
    if not chief:
        return None
    last = rows[root128.name][-1]
    return {
        "final_step": last["step"],
        **{k: last[k] for k in EVAL_METRICS},
        "initial": {k: rows[root128.name][0][k] for k in EVAL_METRICS},
        "phases": rows,
    }
