"""Stage vocab: the paper's vocabularies (default, unused, unused-nonascii) from the cleaned corpus."""

from pathlib import Path

import click

from vbert.atomic import atomic_dir, write_json
from vbert.cli import stage
from vbert.params import load_section
from vbert.resources import resolve_vocab
from vbert.tokenization import FullTokenizer, load_vocab
from vbert.vocabulary import VARIANTS, VocabConfig, build_vocab, count_words


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--corpus", default="data/clean/corpus.txt", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="models/vocab", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", default="metrics/vocab.json", show_default=True, type=click.Path(path_type=Path))
@stage("vocab")
def main(params_file: str, corpus: Path, out: Path, metrics: Path) -> None:
    p = load_section("vocab", params_file)
    config = VocabConfig(
        variant=p.choice("variant", VARIANTS),
        max_new_tokens=p.integer("max_new_tokens", 0),
        min_frequency=p.integer("min_frequency", 1),
        min_savings=p.integer("min_savings", 1),
        heldout_fraction=p.probability("heldout_fraction", open_high=True),
        random_seed=p.integer("random_seed", 0),
        do_lower_case=p.boolean("do_lower_case"),
    )
    base = load_vocab(resolve_vocab(str(p["base_vocab"])))
    counts = count_words(corpus, FullTokenizer(base, config.do_lower_case), config)
    vocab, replaced, results = build_vocab(base, counts, config)
    with atomic_dir(out) as tmp:
        vocab.save(tmp / "vocab.txt")
        write_json(tmp / "replaced.json", replaced)
        write_json(
            tmp / "info.json",
            {
                "variant": config.variant,
                "base_vocab": str(p["base_vocab"]),
                "do_lower_case": config.do_lower_case,
                "tokens_added": len(replaced),
            },
        )
    write_json(metrics, results)


if __name__ == "__main__":
    main()
