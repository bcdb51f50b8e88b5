"""Stage ir: OpenVINO IR variants (FP32, FP16, BF16, INT8) of the SavedModel, gated against TF; keeps the fastest."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import params_help, read_job
from vbert.pipeline.ir import IRJob, build_ir

JOB = IRJob


@click.command(epilog=params_help(JOB))
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--model", required=True, type=click.Path(path_type=Path), help="the freeze stage's <base>/<model_name>")
@click.option("--task-dir", required=True, type=click.Path(path_type=Path), help="the finetune task (eval, test)")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("ir")
def main(params_file: str, model: Path, task_dir: Path, out: Path, metrics: Path) -> None:
    write_json(metrics, build_ir(read_job(JOB, params_file, serving_dir=model, task_dir=task_dir, out_dir=out)))


if __name__ == "__main__":
    main()
