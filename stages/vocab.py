"""Stage vocab: the paper's vocabularies (default, unused, unused-nonascii) from the cleaned corpus."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import params_help, read_job
from vbert.pipeline.vocab import VocabJob, run_vocab
from vbert.text.corpus import CORPUS_FILE

JOB = VocabJob


@click.command(epilog=params_help(JOB))
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--clean", required=True, type=click.Path(path_type=Path), help="the vnlp stage's output folder")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="the tokenizer folder to write")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("vocab")
def main(params_file: str, clean: Path, out: Path, metrics: Path) -> None:
    write_json(metrics, run_vocab(read_job(JOB, params_file, corpus=clean / CORPUS_FILE, out_dir=out)))


if __name__ == "__main__":
    main()
