"""Stage ingest: folders of documents (HTML, Markdown, reStructuredText, PDF, text, JSON lines; gzipped or not) into
the corpus format, one sentence per line, without duplicate documents or boilerplate lines. The input folder holds
`docs/` (and optionally `informal/`); the output gets `docs.txt` (`informal.txt`) and `manifest.jsonl`."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import params_help, read_job
from vbert.pipeline.ingest import IngestJob, run_ingest

JOB = IngestJob


@click.command(epilog=params_help(JOB))
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--input", "input_dir", required=True, type=click.Path(path_type=Path), help="holds docs/, informal/")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="docs.txt, informal.txt, manifest.jsonl")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("ingest")
def main(params_file: str, input_dir: Path, out: Path, metrics: Path) -> None:
    job = read_job(JOB, params_file, input_dir=input_dir, out_dir=out)  # dvc.yaml passes ingest.input_dir as --input
    write_json(metrics, run_ingest(job))


if __name__ == "__main__":
    main()
