"""Stage tfrecords: MLM + next-sentence examples in Google's TFRecord format, MSL 128 (and 512)."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import Section, load_section
from vbert.data.instances import InstanceConfig
from vbert.pipeline.tfrecords import TFRecordsJob, build_tfrecords, dataset_name, read_info
from vbert.text.corpus import CORPUS_FILE


def phase(p: Section, max_seq_length: int, predictions_key: str) -> InstanceConfig:
    predictions = p.integer(predictions_key, min=1)
    if predictions > max_seq_length:
        raise p.error(predictions_key, f"must not exceed the max_seq_length of its phase ({max_seq_length})")
    return InstanceConfig(
        max_seq_length=max_seq_length,
        max_predictions_per_seq=predictions,
        masked_lm_prob=p.probability("masked_lm_prob", min_open=True, max_open=True),
        short_seq_prob=p.probability("short_seq_prob"),
        dupe_factor=p.integer("dupe_factor", min=1),
        do_whole_word_mask=p.boolean("do_whole_word_mask"),
        exact_google_rng=p.boolean("exact_google_rng"),
    )


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--clean", required=True, type=click.Path(path_type=Path), help="the vnlp stage's output folder")
@click.option("--vocab", required=True, type=click.Path(path_type=Path), help="the vocab stage's tokenizer folder")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("tfrecords")
def main(params_file: str, clean: Path, vocab: Path, out: Path, metrics: Path) -> None:
    with load_section("tfrecords", params_file) as p:
        phases = [phase(p, p.integer("max_seq_length", min=8, max=512), "max_predictions_per_seq")]
        msl512 = phase(p, 512, "max_predictions_per_seq_msl512")  # checked even when the phase is off
        if p.boolean("msl512"):
            phases.append(msl512)
        settings = dict(
            phases=tuple(phases),
            random_seed=p.integer("random_seed", min=0),
            num_shards=p.integer("num_shards", min=1, max=1024),
            eval_fraction=p.probability("eval_fraction", max_open=True),
            chunk_bytes=p.integer("chunk_bytes", min=1000),
            workers=p.integer("workers", min=0),
        )
    job = TFRecordsJob(
        corpus=clean / CORPUS_FILE,
        vocab_dir=vocab,
        out_dir=out,
        dataset_name=dataset_name(clean, vocab, settings["phases"][0].do_whole_word_mask),
        extra_info={"corpus": read_info(clean)["corpus"], "vocab_variant": read_info(vocab)["variant"]},
        **settings,
    )
    write_json(metrics, build_tfrecords(job))


if __name__ == "__main__":
    main()
