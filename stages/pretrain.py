"""Stage pretrain: continue pretraining BERT on the domain TFRecords (MSL 128, then MSL 512), resumable.

The sequence length and masked predictions per sequence come from the TFRecords' manifest (the tfrecords stage's
params), not from this stage's section.
"""

from pathlib import Path

import click

from vbert.core.atomic import write_csv, write_json
from vbert.core.cli import stage
from vbert.core.errors import InputError
from vbert.core.params import load_section
from vbert.model.bert import MODEL_NAMES
from vbert.model.distribution import STRATEGIES
from vbert.model.precision import SETTINGS as PRECISIONS
from vbert.pipeline.pretrain import EVAL_METRICS, PretrainJob, plot_rows, run_pretraining


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--tfrecords", required=True, type=click.Path(path_type=Path), help="the tfrecords stage's folder")
@click.option("--vocab", required=True, type=click.Path(path_type=Path), help="the vocab stage's tokenizer folder")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="checkpoints (persistent, resumable)")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@click.option("--plots", required=True, type=click.Path(path_type=Path), help="eval metrics of every checkpoint")
@stage("pretrain")
def main(params_file: str, tfrecords: Path, vocab: Path, out: Path, metrics: Path, plots: Path) -> None:
    with load_section("pretrain", params_file) as p:
        job = PretrainJob(
            tfrecords=tfrecords,
            vocab_dir=vocab,
            out_dir=out,
            model=p.choice("model", MODEL_NAMES),
            init_checkpoint=p.text("init_checkpoint", empty=False),
            learning_rate=p.number("learning_rate", min=0, max=1, min_open=True),
            train_batch_size=p.integer("train_batch_size", min=1),
            gradient_accumulation_steps=p.integer("gradient_accumulation_steps", min=1),
            num_train_steps=p.integer("num_train_steps", min=1),
            num_warmup_steps=p.integer("num_warmup_steps", min=0),
            head_warmup_steps=p.integer("head_warmup_steps", min=0),
            next_sentence=p.boolean("next_sentence"),
            save_checkpoints_steps=p.integer("save_checkpoints_steps", min=1),
            num_train_steps_msl512=p.integer("num_train_steps_msl512", min=0),
            msl512_from_steps=p.integers("msl512_from_steps", min=0, empty=True),
            embedding_init=p.choice("embedding_init", ("mean", "random")),
            eval_batch_size=p.integer("eval_batch_size", min=1),
            eval_batches=p.integer("eval_batches", min=1),
            mixed_precision=p.choice("mixed_precision", PRECISIONS),
            jit_compile=p.boolean("jit_compile"),
            strategy=p.choice("strategy", STRATEGIES),
            cpu_devices=p.integer("cpu_devices", min=1),
            tpu=p.text("tpu"),
            random_seed=p.integer("random_seed", min=0),
        )
        if job.train_batch_size % job.gradient_accumulation_steps:
            raise p.error(
                "train_batch_size",
                f"must be a multiple of gradient_accumulation_steps ({job.gradient_accumulation_steps})",
            )
        if job.num_train_steps % job.save_checkpoints_steps:
            raise p.error(
                "num_train_steps", f"must be a multiple of save_checkpoints_steps ({job.save_checkpoints_steps})"
            )
        for step in job.msl512_from_steps:
            if step % job.save_checkpoints_steps or step > job.num_train_steps:
                raise p.error("msl512_from_steps", f"{step} is not an MSL-128 checkpoint step")
    if not (tfrecords / "manifest.json").exists():
        raise InputError(f"{tfrecords}: no TFRecords (manifest.json); run the tfrecords stage first")
    results = run_pretraining(job)
    if results is None:
        return  # a multi-worker worker other than the chief: the chief writes the outputs
    write_csv(
        plots, plot_rows(results["phases"]), ["phase", "total_step", "step", *EVAL_METRICS, "examples_per_second"]
    )
    write_json(metrics, {k: v for k, v in results.items() if k != "phases"})


if __name__ == "__main__":
    main()
