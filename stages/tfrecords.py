"""Stage tfrecords: MLM + next-sentence examples in Google's TFRecord format, MSL 128 (and 512)."""

import json
from pathlib import Path

import click

from vbert.atomic import write_json
from vbert.cli import stage
from vbert.errors import InputError
from vbert.params import load_section
from vbert.pretraining_data import InstanceConfig
from vbert.tfrecords import TFRecordsJob, build_tfrecords


def _phase(p, max_seq_length: int, predictions_key: str) -> InstanceConfig:
    predictions = p.integer(predictions_key, 1)
    if predictions > max_seq_length:
        raise p.error(predictions_key, f"must not exceed the max_seq_length of its phase ({max_seq_length})")
    return InstanceConfig(
        max_seq_length=max_seq_length,
        max_predictions_per_seq=predictions,
        masked_lm_prob=p.probability("masked_lm_prob", open_low=True, open_high=True),
        short_seq_prob=p.probability("short_seq_prob"),
        dupe_factor=p.integer("dupe_factor", 1),
        do_whole_word_mask=p.boolean("do_whole_word_mask"),
        exact_google_rng=p.boolean("exact_google_rng"),
    )


def _read_info(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read the upstream stage's info ({err}); run the stage before") from err


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--clean", default="data/clean", show_default=True, type=click.Path(path_type=Path))
@click.option("--vocab", default="models/vocab", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="data/tfrecords", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", default="metrics/tfrecords.json", show_default=True, type=click.Path(path_type=Path))
@stage("tfrecords")
def main(params_file: str, clean: Path, vocab: Path, out: Path, metrics: Path) -> None:
    p = load_section("tfrecords", params_file)
    phases = [_phase(p, p.integer("max_seq_length", 8, 512), "max_predictions_per_seq")]
    if p.boolean("msl512"):
        phases.append(_phase(p, 512, "max_predictions_per_seq_msl512"))
    corpus_name = _read_info(clean / "info.json")["corpus"]
    variant = _read_info(vocab / "info.json")["variant"]
    wwm = "wwm" if p.boolean("do_whole_word_mask") else "nowwm"
    job = TFRecordsJob(
        corpus=clean / "corpus.txt",
        vocab=vocab / "vocab.txt",
        out_dir=out,
        phases=tuple(phases),
        dataset_name=f"{corpus_name.replace('+', '_')}-{wwm}-{variant}",
        do_lower_case=p.boolean("do_lower_case"),
        random_seed=p.integer("random_seed", 0),
        num_shards=p.integer("num_shards", 1, 1024),
        eval_fraction=p.probability("eval_fraction", open_high=True),
        chunk_bytes=p.integer("chunk_bytes", 1000),
        workers=p.integer("workers", 0),
        extra_info={"corpus": corpus_name, "vocab_variant": variant, "vocab_file": str(vocab / "vocab.txt")},
    )
    write_json(metrics, build_tfrecords(job))


if __name__ == "__main__":
    main()
