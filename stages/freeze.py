"""Stage freeze: the model to ship (the fine-tuned teacher or its distilled student) as a TF SavedModel in
TF-Serving's layout (<out>/<model_name>/<version>/), and as Hugging Face folders (<hf>/classifier, <hf>/masked_lm:
the encoder and MLM head the teacher was fine-tuned from); the teacher also as <teacher-out>/<model_name>/<version>/,
the bench's "paper's way" model."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import load_section
from vbert.pipeline.freeze import SHIP, choose_shipped, freeze, freeze_teacher


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--teacher", required=True, type=click.Path(path_type=Path), help="the finetune stage's best/ folder")
@click.option("--student", required=True, type=click.Path(path_type=Path), help="the distill stage's best/ folder")
@click.option("--pretrain", required=True, type=click.Path(path_type=Path), help="the pretrain stage's folder")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="the base folder of served models")
@click.option("--hf", required=True, type=click.Path(path_type=Path), help="the Hugging Face folders go here")
@click.option("--teacher-out", required=True, type=click.Path(path_type=Path), help="the teacher's SavedModel base")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("freeze")
def main(
    params_file: str,
    teacher: Path,
    student: Path,
    pretrain: Path,
    out: Path,
    hf: Path,
    teacher_out: Path,
    metrics: Path,
) -> None:
    with load_section("freeze", params_file) as p:
        ship = p.choice("ship", SHIP)
        max_drop = p.probability("max_eval_f1_drop")
        name = p.text("model_name", empty=False)
        if "/" in name:
            raise p.error("model_name", "must be a name without '/'")
        version = p.integer("version", min=1)
    shipped, choice = choose_shipped(ship, teacher, student, max_drop)
    frozen = freeze(shipped, out / name, version, pretrain, hf)
    shipped_teacher = (out / name / str(version), frozen) if choice["shipped"] == "teacher" else None
    teacher_frozen = freeze_teacher(teacher, teacher_out / name, version, shipped_teacher)
    teacher_keys = ("num_hidden_layers", "weights_mb", "max_logit_difference_to_keras")
    write_json(metrics, {**choice, **frozen, "teacher": {k: teacher_frozen[k] for k in teacher_keys}})


if __name__ == "__main__":
    main()
