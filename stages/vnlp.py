"""Stage vnlp: spell-check and split compound words in the raw corpus, leaving domain terms alone."""

from pathlib import Path

import click

from vbert.atomic import write_json
from vbert.cli import stage
from vbert.params import load_section
from vbert.spelling import SpellConfig
from vbert.vnlp import VnlpJob, corpus_files, run_vnlp


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--out", default="data/clean", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", default="metrics/vnlp.json", show_default=True, type=click.Path(path_type=Path))
@stage("vnlp")
def main(params_file: str, out: Path, metrics: Path) -> None:
    p = load_section("vnlp", params_file)
    corpus = p.choice("corpus", ("docs", "docs+informal"))
    spell = SpellConfig(
        max_edit_distance=p.integer("max_edit_distance", 1, 3),
        min_word_length=p.integer("min_word_length", 1),
        max_typo_count=p.integer("max_typo_count", 0),
        min_target_count=p.integer("min_target_count", 1),
        min_split_length=p.integer("min_split_length", 2),
        pair_min_count=p.integer("pair_min_count", 1),
    )
    job = VnlpJob(
        inputs=corpus_files(Path(p["input_dir"]), corpus),
        out_dir=out,
        corpus_name=corpus,
        spell=spell,
        lexicon=Path(p["lexicon"]) if p.get("lexicon") else None,
        chunk_documents=p.integer("chunk_documents", 1),
        workers=p.integer("workers", 0),
    )
    write_json(metrics, run_vnlp(job))


if __name__ == "__main__":
    main()
