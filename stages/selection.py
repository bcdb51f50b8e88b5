"""Stage selection: the part of the cleaned corpus that domain pretraining trains on (all of it, or the passages
nearest to the task's train texts); its params section is `select`. (Not stages/select.py: that would shadow the
standard library's `select` for any script in stages/ run by its path.)"""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import params_help, read_job
from vbert.pipeline.select import SelectJob, run_select

JOB = SelectJob


@click.command(epilog=params_help(JOB))
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--clean", required=True, type=click.Path(path_type=Path), help="the vnlp stage's output folder")
@click.option(
    "--task-dir", required=True, type=click.Path(path_type=Path), help="the finetune task (its train split's texts)"
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="the selected corpus folder")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("selection")
def main(params_file: str, clean: Path, task_dir: Path, out: Path, metrics: Path) -> None:
    write_json(metrics, run_select(read_job(JOB, params_file, clean_dir=clean, task_dir=task_dir, out_dir=out)))


if __name__ == "__main__":
    main()
