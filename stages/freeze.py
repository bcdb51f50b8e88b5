"""Stage freeze: the model to ship (the fine-tuned teacher or its distilled student) as a TF SavedModel in
TF-Serving's layout (<out>/<model_name>/<version>/), and as Hugging Face folders (<hf>/classifier, <hf>/masked_lm:
the encoder and MLM head the teacher was fine-tuned from); the teacher also as <teacher-out>/<model_name>/<version>/,
the bench's "paper's way" model."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import params_help, read_job
from vbert.pipeline.freeze import FreezeJob, run_freeze

JOB = FreezeJob


@click.command(epilog=params_help(JOB))
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--teacher", required=True, type=click.Path(path_type=Path), help="the finetune stage's best/ folder")
@click.option("--student", required=True, type=click.Path(path_type=Path), help="the distill stage's best/ folder")
@click.option("--pretrain", required=True, type=click.Path(path_type=Path), help="the pretrain stage's folder")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="the base folder of served models")
@click.option("--hf", required=True, type=click.Path(path_type=Path), help="the Hugging Face folders go here")
@click.option("--teacher-out", required=True, type=click.Path(path_type=Path), help="the teacher's SavedModel base")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("freeze")
def main(params_file, teacher, student, pretrain, out, hf, teacher_out, metrics) -> None:
    paths = dict(teacher_dir=teacher, student_dir=student, pretrain_dir=pretrain, out_dir=out, hf_dir=hf)
    write_json(metrics, run_freeze(read_job(JOB, params_file, **paths, teacher_out_dir=teacher_out)))


if __name__ == "__main__":
    main()
