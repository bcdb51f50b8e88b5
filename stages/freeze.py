"""Stage freeze: the best fine-tuned model as a TF SavedModel in TF-Serving's layout (<out>/<model_name>/<version>/)."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import load_section
from vbert.pipeline.freeze import freeze


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--best", required=True, type=click.Path(path_type=Path), help="the finetune stage's best/ folder")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="the base folder of served models")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("freeze")
def main(params_file: str, best: Path, out: Path, metrics: Path) -> None:
    with load_section("freeze", params_file) as p:
        name = p.text("model_name", empty=False)
        if "/" in name:
            raise p.error("model_name", "must be a name without '/'")
        version = p.integer("version", min=1)
    write_json(metrics, freeze(best, out / name, version))


if __name__ == "__main__":
    main()
