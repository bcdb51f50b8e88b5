"""Stage pretrain: continue pretraining BERT on the domain TFRecords (MSL 128, then MSL 512), then on the task's
train texts (task-adaptive, when task_adaptive_epochs > 0), resumable.

The sequence length and masked predictions per sequence come from the TFRecords' manifest (the tfrecords stage's
params), not from this stage's section.
"""

from pathlib import Path

import click

from vbert.core.atomic import write_csv, write_json
from vbert.core.cli import stage
from vbert.core.params import params_help, read_job
from vbert.pipeline.pretrain import EVAL_METRICS, PretrainJob, checkpoint_rows, run_pretraining

JOB = PretrainJob


@click.command(epilog=params_help(JOB))
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--tfrecords", required=True, type=click.Path(path_type=Path), help="the tfrecords stage's folder")
@click.option("--vocab", required=True, type=click.Path(path_type=Path), help="the vocab stage's tokenizer folder")
@click.option(
    "--task-dir",
    type=click.Path(path_type=Path),
    help="the finetune task: its train texts are TAPT's (task_adaptive_*)",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="checkpoints (persistent, resumable)")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@click.option("--plots", required=True, type=click.Path(path_type=Path), help="eval metrics of every checkpoint")
@stage("pretrain")
def main(params_file: str, tfrecords: Path, vocab: Path, task_dir: Path | None, out: Path, metrics: Path, plots: Path):
    job = read_job(JOB, params_file, tfrecords=tfrecords, vocab_dir=vocab, task_dir=task_dir, out_dir=out)
    results = run_pretraining(job)
    if results is None:
        return  # a multi-worker worker other than the chief: the chief writes the outputs
    write_csv(
        plots, checkpoint_rows(results["phases"]), ["phase", "total_step", "step", *EVAL_METRICS, "examples_per_second"]
    )
    write_json(metrics, {k: v for k, v in results.items() if k != "phases"})


if __name__ == "__main__":
    main()
