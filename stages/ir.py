"""Stage ir: OpenVINO IR variants (FP32, FP16 weights, INT8) of the SavedModel, gated against TF; keeps the fastest."""

from pathlib import Path

import click

from vbert.atomic import write_json
from vbert.cli import stage
from vbert.openvino_ir import PRECISIONS, IRJob, build_ir
from vbert.params import load_section


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--serving", default="models/serving", show_default=True, type=click.Path(path_type=Path))
@click.option("--task-dir", required=True, type=click.Path(path_type=Path), help="the finetune task (eval, test)")
@click.option("--out", default="models/ir", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", default="metrics/ir.json", show_default=True, type=click.Path(path_type=Path))
@stage("ir")
def main(params_file: str, serving: Path, task_dir: Path, out: Path, metrics: Path) -> None:
    p = load_section("ir", params_file)
    job = IRJob(
        serving_dir=serving / str(p["model_name"]),
        task_dir=task_dir,
        out_dir=out,
        precision=p.choice("precision", ("auto", *PRECISIONS)),
        calibration_size=p.integer("calibration_size", 1),
        max_probability_delta=p.probability("max_probability_delta"),
        max_f1_drop=p.probability("max_f1_drop"),
        timing_batch=p.integer("timing_batch", 1),
        timing_repeats=p.integer("timing_repeats", 1),
    )
    write_json(metrics, build_ir(job))


if __name__ == "__main__":
    main()
