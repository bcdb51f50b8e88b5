"""Stage vnlp: spell-check and split compound words in the raw corpus, leaving domain terms alone."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import load_section
from vbert.pipeline.vnlp import CORPORA, VnlpJob, corpus_files, run_vnlp
from vbert.text.spelling import SpellConfig


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option(
    "--task-dir", required=True, type=click.Path(path_type=Path), help="the finetune task (its train split's texts)"
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="the cleaned corpus folder")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("vnlp")
def main(params_file: str, task_dir: Path, out: Path, metrics: Path) -> None:
    with load_section("vnlp", params_file) as p:
        corpus = p.choice("corpus", tuple(CORPORA))
        lexicon = p.text("lexicon")
        job = VnlpJob(
            inputs=corpus_files(Path(p.text("input_dir", empty=False)), corpus),
            out_dir=out,
            corpus_name=corpus,
            spell=SpellConfig(
                max_edit_distance=p.integer("max_edit_distance", min=1, max=3),
                min_word_length=p.integer("min_word_length", min=1),
                max_typo_count=p.integer("max_typo_count", min=0),
                min_target_count=p.integer("min_target_count", min=1),
                min_split_length=p.integer("min_split_length", min=2),
                pair_min_count=p.integer("pair_min_count", min=1),
            ),
            lexicon=Path(lexicon) if lexicon else None,
            chunk_documents=p.integer("chunk_documents", min=1),
            workers=p.integer("workers", min=0),
            task_dir=task_dir,
            task_text_repeat=p.integer("task_text_repeat", min=0),
        )
    write_json(metrics, run_vnlp(job))


if __name__ == "__main__":
    main()
