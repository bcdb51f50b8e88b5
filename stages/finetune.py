"""Stage finetune: fine-tune pretraining checkpoints on the labelled task (several seeds), against baselines."""

from pathlib import Path

import click

from vbert.core.atomic import write_csv, write_json
from vbert.core.cli import stage
from vbert.core.params import params_help, read_job
from vbert.pipeline.finetune import FinetuneJob, run_sweep

JOB = FinetuneJob


@click.command(epilog=params_help(JOB))
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--pretrain", required=True, type=click.Path(path_type=Path), help="the pretrain stage's checkpoints")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="cells of the sweep and best/")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@click.option("--plots", required=True, type=click.Path(path_type=Path), help="each checkpoint's best epoch")
@click.option("--table", required=True, type=click.Path(path_type=Path), help="every (checkpoint, epoch)")
@stage("finetune")
def main(params_file: str, pretrain: Path, out: Path, metrics: Path, plots: Path, table: Path) -> None:
    results = run_sweep(read_job(JOB, params_file, pretrain_dir=pretrain, out_dir=out))
    write_csv(table, results["rows"], list(results["rows"][0]))
    write_csv(plots, results["summary"], list(results["summary"][0]))
    write_json(metrics, results["metrics"])


if __name__ == "__main__":
    main()
