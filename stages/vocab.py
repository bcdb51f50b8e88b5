"""Stage vocab: the paper's vocabularies (default, unused, unused-nonascii) from the cleaned corpus."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import load_section
from vbert.pipeline.vocab import VocabJob, run_vocab
from vbert.text.corpus import CORPUS_FILE
from vbert.text.vocabulary import VARIANTS, VocabConfig


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--clean", required=True, type=click.Path(path_type=Path), help="the vnlp stage's output folder")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="the tokenizer folder to write")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("vocab")
def main(params_file: str, clean: Path, out: Path, metrics: Path) -> None:
    with load_section("vocab", params_file) as p:
        job = VocabJob(
            corpus=clean / CORPUS_FILE,
            base_vocab=p.text("base_vocab", empty=False),
            out_dir=out,
            config=VocabConfig(
                variant=p.choice("variant", VARIANTS),
                max_new_tokens=p.integer("max_new_tokens", min=0),
                min_frequency=p.integer("min_frequency", min=1),
                min_savings=p.integer("min_savings", min=1),
                heldout_fraction=p.probability("heldout_fraction", max_open=True),
                random_seed=p.integer("random_seed", min=0),
                do_lower_case=p.boolean("do_lower_case"),
            ),
        )
    write_json(metrics, run_vocab(job))


if __name__ == "__main__":
    main()
