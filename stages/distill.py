"""Stage distill: a smaller student (fewer of the teacher's layers) learns the fine-tuned teacher's answers on the
task's train split, unlabelled in-domain texts and texts made from the train split."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import params_help, read_job
from vbert.pipeline.distill import DistillJob, distill

JOB = DistillJob


@click.command(epilog=params_help(JOB))
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--teacher", required=True, type=click.Path(path_type=Path), help="the finetune stage's best/ folder")
@click.option("--corpus", required=True, type=click.Path(path_type=Path), help="the vnlp stage's corpus.txt")
@click.option("--task-dir", required=True, type=click.Path(path_type=Path), help="the finetune task")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="seeds/ and best/ (the student)")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("distill")
def main(params_file: str, teacher: Path, corpus: Path, task_dir: Path, out: Path, metrics: Path) -> None:
    job = read_job(JOB, params_file, teacher_dir=teacher, corpus=corpus, task_dir=task_dir, out_dir=out)
    write_json(metrics, distill(job))


if __name__ == "__main__":
    main()
