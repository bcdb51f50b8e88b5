"""Stage pretrain: continue pretraining BERT on the domain TFRecords (MSL 128, then MSL 512), resumable."""

import json
from pathlib import Path

import click

from vbert.atomic import write_csv, write_json
from vbert.cli import stage
from vbert.continued_pretraining import EVAL_METRICS, PretrainJob, plot_rows, run_pretraining
from vbert.distribution import STRATEGIES
from vbert.errors import InputError
from vbert.params import load_section


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--tfrecords", default="data/tfrecords", show_default=True, type=click.Path(path_type=Path))
@click.option("--vocab", default="models/vocab", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="models/pretrain", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", default="metrics/pretrain.json", show_default=True, type=click.Path(path_type=Path))
@click.option("--plots", default="plots/pretrain.csv", show_default=True, type=click.Path(path_type=Path))
@stage("pretrain")
def main(params_file: str, tfrecords: Path, vocab: Path, out: Path, metrics: Path, plots: Path) -> None:
    p = load_section("pretrain", params_file)
    manifest = json.loads((tfrecords / "manifest.json").read_text())
    first = manifest["phases"][0]
    for key in ("max_seq_length", "max_predictions_per_seq"):
        if p.integer(key, 1) != first[key]:
            raise p.error(key, f"the TFRecords in {tfrecords} were written with {key} = {first[key]}")
    steps_512 = p.integer("num_train_steps_msl512", 0)
    from_steps = p["msl512_from_steps"] or []
    if not isinstance(from_steps, list) or not all(isinstance(s, int) for s in from_steps):
        raise p.error("msl512_from_steps", "must be a list of MSL-128 checkpoint steps")
    job = PretrainJob(
        tfrecords=tfrecords,
        vocab_dir=vocab,
        out_dir=out,
        model=p.choice("model", ("minilm", "tiny", "base")),
        init_checkpoint=str(p["init_checkpoint"]),
        learning_rate=p.probability("learning_rate", open_low=True),
        train_batch_size=p.integer("train_batch_size", 1),
        num_train_steps=p.integer("num_train_steps", 1),
        num_warmup_steps=p.integer("num_warmup_steps", 0),
        save_checkpoints_steps=p.integer("save_checkpoints_steps", 1),
        num_train_steps_msl512=steps_512,
        msl512_from_steps=tuple(from_steps),
        embedding_init=p.choice("embedding_init", ("mean", "random")),
        eval_batch_size=p.integer("eval_batch_size", 1),
        eval_batches=p.integer("eval_batches", 1),
        jit_compile=p.boolean("jit_compile"),
        strategy=p.choice("strategy", STRATEGIES),
        cpu_devices=p.integer("cpu_devices", 1),
        tpu=str(p["tpu"] or ""),
        random_seed=p.integer("random_seed", 0),
    )
    if job.num_train_steps % job.save_checkpoints_steps:
        raise p.error("num_train_steps", f"must be a multiple of save_checkpoints_steps ({job.save_checkpoints_steps})")
    for step in job.msl512_from_steps:
        if step % job.save_checkpoints_steps or step > job.num_train_steps:
            raise p.error("msl512_from_steps", f"{step} is not an MSL-128 checkpoint step")
    if not job.tfrecords.exists():
        raise InputError(f"{job.tfrecords}: no TFRecords; run the tfrecords stage first")
    results = run_pretraining(job)
    if results is None:
        return  # a multi-worker worker other than the chief: the chief writes the outputs
    write_csv(
        plots, plot_rows(results["phases"]), ["phase", "total_step", "step", *EVAL_METRICS, "examples_per_second"]
    )
    write_json(metrics, {k: v for k, v in results.items() if k != "phases"})


if __name__ == "__main__":
    main()
