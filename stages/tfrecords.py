"""Stage tfrecords: MLM + next-sentence examples in Google's TFRecord format, MSL 128 (and 512)."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import params_help, read_job
from vbert.pipeline.tfrecords import TFRecordsParams, build_tfrecords

JOB = TFRecordsParams


@click.command(epilog=params_help(JOB))
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option(
    "--clean", required=True, type=click.Path(path_type=Path), help="the select stage's output (vnlp's format)"
)
@click.option("--vocab", required=True, type=click.Path(path_type=Path), help="the vocab stage's tokenizer folder")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("tfrecords")
def main(params_file: str, clean: Path, vocab: Path, out: Path, metrics: Path) -> None:
    write_json(metrics, build_tfrecords(read_job(JOB, params_file).job(clean, vocab, out)))


if __name__ == "__main__":
    main()
