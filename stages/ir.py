"""Stage ir: OpenVINO IR variants (FP32, FP16, BF16, INT8) of the SavedModel, gated against TF; keeps the fastest."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import load_section
from vbert.pipeline.ir import PRECISIONS, IRJob, build_ir


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--model", required=True, type=click.Path(path_type=Path), help="the freeze stage's <base>/<model_name>")
@click.option("--task-dir", required=True, type=click.Path(path_type=Path), help="the finetune task (eval, test)")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("ir")
def main(params_file: str, model: Path, task_dir: Path, out: Path, metrics: Path) -> None:
    with load_section("ir", params_file) as p:
        job = IRJob(
            serving_dir=model,
            task_dir=task_dir,
            out_dir=out,
            precision=p.choice("precision", ("auto", *PRECISIONS)),
            calibration_size=p.integer("calibration_size", min=1),
            max_probability_delta=p.probability("max_probability_delta"),
            max_f1_drop=p.probability("max_f1_drop"),
            timing_batch=p.integer("timing_batch", min=1),
            timing_repeats=p.integer("timing_repeats", min=1),
        )
    write_json(metrics, build_ir(job))


if __name__ == "__main__":
    main()
