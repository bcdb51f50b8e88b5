"""Stage freeze: the best fine-tuned model as a TF SavedModel in TF-Serving's layout (<out>/<name>/<version>/)."""

from pathlib import Path

import click

from vbert.atomic import write_json
from vbert.cli import stage
from vbert.export import freeze
from vbert.params import load_section


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--best", default="models/finetune/best", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="models/serving", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", default="metrics/freeze.json", show_default=True, type=click.Path(path_type=Path))
@stage("freeze")
def main(params_file: str, best: Path, out: Path, metrics: Path) -> None:
    p = load_section("freeze", params_file)
    name = str(p["model_name"])
    if not name or "/" in name:
        raise p.error("model_name", "must be a non-empty name without '/'")
    write_json(metrics, freeze(best, out, name, p.integer("version", 1)))


if __name__ == "__main__":
    main()
