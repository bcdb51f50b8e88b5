"""Stage ingest: folders of documents (HTML, Markdown, reStructuredText, PDF, text, JSON lines; gzipped or not) into
the corpus format, one sentence per line, without duplicate documents or boilerplate lines. The input folder holds
`docs/` (and optionally `informal/`); the output gets `docs.txt` (`informal.txt`) and `manifest.jsonl`."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import load_section
from vbert.pipeline.ingest import IngestJob, corpus_inputs, run_ingest


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--input", "input_dir", required=True, type=click.Path(path_type=Path), help="holds docs/, informal/")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="docs.txt, informal.txt, manifest.jsonl")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("ingest")
def main(params_file: str, input_dir: Path, out: Path, metrics: Path) -> None:
    with load_section("ingest", params_file) as p:
        p.text("input_dir", empty=False)  # dvc.yaml passes it as --input (and lists it in deps)
        job = IngestJob(
            inputs=corpus_inputs(input_dir),
            out_dir=out,
            include=p.strings("include"),
            exclude=p.strings("exclude", empty=True),
            jsonl_text_field=p.text("jsonl_text_field", empty=False),
            boilerplate_min_documents=p.integer("boilerplate_min_documents", min=2),
            max_failed_fraction=p.probability("max_failed_fraction"),
            workers=p.integer("workers", min=0),
        )
    write_json(metrics, run_ingest(job))


if __name__ == "__main__":
    main()
