"""Stage vnlp: spell-check and split compound words in the raw corpus, leaving domain terms alone."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import params_help, read_job
from vbert.pipeline.vnlp import VnlpJob, run_vnlp

JOB = VnlpJob


@click.command(epilog=params_help(JOB))
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option(
    "--task-dir", required=True, type=click.Path(path_type=Path), help="the finetune task (its train split's texts)"
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="the cleaned corpus folder")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("vnlp")
def main(params_file: str, task_dir: Path, out: Path, metrics: Path) -> None:
    write_json(metrics, run_vnlp(read_job(JOB, params_file, task_dir=task_dir, out_dir=out)))


if __name__ == "__main__":
    main()
