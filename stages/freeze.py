"""Stage freeze: the best fine-tuned model as a TF SavedModel in TF-Serving's layout (<out>/<model_name>/<version>/),
and as Hugging Face folders (<hf>/classifier, <hf>/masked_lm: the encoder and MLM head it was fine-tuned from)."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import load_section
from vbert.pipeline.freeze import freeze


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--best", required=True, type=click.Path(path_type=Path), help="the finetune stage's best/ folder")
@click.option("--pretrain", required=True, type=click.Path(path_type=Path), help="the pretrain stage's folder")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="the base folder of served models")
@click.option("--hf", required=True, type=click.Path(path_type=Path), help="the Hugging Face folders go here")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("freeze")
def main(params_file: str, best: Path, pretrain: Path, out: Path, hf: Path, metrics: Path) -> None:
    with load_section("freeze", params_file) as p:
        name = p.text("model_name", empty=False)
        if "/" in name:
            raise p.error("model_name", "must be a name without '/'")
        version = p.integer("version", min=1)
    write_json(metrics, freeze(best, out / name, version, pretrain, hf))


if __name__ == "__main__":
    main()
