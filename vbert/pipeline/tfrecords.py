"""The tfrecords stage: a cleaned corpus -> sharded TFRecord files of MLM + NSP examples in Google's format.

Documents stream through in chunks of about `chunk_bytes` of text; each chunk is tokenised and turned into
instances by Google's algorithm in a worker process (random next-sentence segments come from other documents
of the same chunk, which is what keeps memory bounded). The worker frames the chunk's examples as TFRecords and
deals each to a bucket drawn at random; the main process appends those bytes to bucket files in chunk order, then
shuffles each bucket into its shard: a global shuffle in bounded memory, the same for any number of workers. The
first chunk is seeded with `random_seed` itself: a corpus that fits in one chunk, written to one shard with
`exact_google_rng` (which keeps Google's order and skips the buckets), gives exactly Google's examples.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar, NamedTuple

import numpy as np
from tqdm import tqdm

from vbert.core import params as knob
from vbert.core.atomic import atomic_dir
from vbert.core.errors import InputError
from vbert.core.parallel import default_workers, ordered_map, worker_state
from vbert.data.features import FEATURES
from vbert.data.instances import (
    Document,
    ExampleEncoder,
    InstanceConfig,
    SpecialIds,
    create_training_instances,
)
from vbert.data.masking import create_training_batch
from vbert.data.tfrecord_format import TFRecordWriter, read_records
from vbert.text.corpus import CORPUS_FILE, CorpusReader, is_heldout
from vbert.text.tokenization import FullTokenizer, load_tokenizer

log = logging.getLogger(__name__)

BUCKETS_PER_SHARD = 16  # the global shuffle holds one bucket (1 / (16 x num_shards) of a phase's data) in memory


@dataclass(frozen=True)
class TFRecordsJob:
    corpus: Path
    vocab_dir: Path  # the vocab stage's tokenizer folder: vocab.txt and its casing
    out_dir: Path
    phases: tuple[InstanceConfig, ...]
    dataset_name: str  # e.g. "docs-wwm-unused": corpus, masking and vocabulary, as the paper's Table 1
    random_seed: int
    num_shards: int
    eval_fraction: float
    chunk_bytes: int
    workers: int
    extra_info: dict


@dataclass(frozen=True)
class TFRecordsParams:
    """The tfrecords section and the switches `msl512` and `do_whole_word_mask`: Google's flags for each phase."""

    SECTION: ClassVar[str] = "tfrecords"
    max_seq_length: int = knob.integer("pieces per example of the first phase", min=8, max=512)
    max_predictions_per_seq: int = knob.integer("masked positions per example of the first phase", min=1)
    msl512: bool = knob.boolean("also write MSL-512 data (the paper's second phase)", switch="msl512")
    max_predictions_per_seq_msl512: int = knob.integer("masked positions per MSL-512 example", min=1)
    masked_lm_prob: float = knob.probability("share of the pieces masked", min_open=True, max_open=True)
    short_seq_prob: float = knob.probability("share of examples shorter than max_seq_length, at random")
    dupe_factor: int = knob.integer("passes over the corpus, each with other masks", min=1)
    do_whole_word_mask: bool = knob.boolean(
        "mask every piece of a word together (Google's wwm models)", switch="do_whole_word_mask"
    )
    exact_google_rng: bool = knob.boolean("draw random numbers in Google's order (3x slower)")
    random_seed: int = knob.integer("seed of the masks and the shuffles", min=0)
    num_shards: int = knob.integer("train files per phase", min=1, max=1024)
    eval_fraction: float = knob.probability("documents held out for pretraining eval", max_open=True)
    chunk_bytes: int = knob.integer("text per worker task; random next sentences come from the same chunk", min=1000)
    workers: int = knob.integer("processes; 0 = every core", min=0)

    def problems(self) -> Iterator[tuple[str, str]]:
        for key, predictions, length in (
            ("max_predictions_per_seq", self.max_predictions_per_seq, self.max_seq_length),
            ("max_predictions_per_seq_msl512", self.max_predictions_per_seq_msl512, 512),
        ):  # the MSL-512 phase is checked even when it is off
            if predictions > length:
                yield key, f"must not exceed the max_seq_length of its phase ({length})"

    def phase(self, max_seq_length: int, max_predictions_per_seq: int) -> InstanceConfig:
        return InstanceConfig(
            max_seq_length=max_seq_length,
            max_predictions_per_seq=max_predictions_per_seq,
            masked_lm_prob=self.masked_lm_prob,
            short_seq_prob=self.short_seq_prob,
            dupe_factor=self.dupe_factor,
            do_whole_word_mask=self.do_whole_word_mask,
            exact_google_rng=self.exact_google_rng,
        )

    def job(self, clean_dir: Path, vocab_dir: Path, out_dir: Path) -> TFRecordsJob:
        """The job on the vnlp stage's corpus and the vocab stage's tokenizer, its data set named after both."""
        phases = [self.phase(self.max_seq_length, self.max_predictions_per_seq)]
        if self.msl512:
            phases.append(self.phase(512, self.max_predictions_per_seq_msl512))
        return TFRecordsJob(
            corpus=clean_dir / CORPUS_FILE,
            vocab_dir=vocab_dir,
            out_dir=out_dir,
            phases=tuple(phases),
            dataset_name=dataset_name(clean_dir, vocab_dir, self.do_whole_word_mask),
            random_seed=self.random_seed,
            num_shards=self.num_shards,
            eval_fraction=self.eval_fraction,
            chunk_bytes=self.chunk_bytes,
            workers=self.workers,
            extra_info={"corpus": read_info(clean_dir)["corpus"], "vocab_variant": read_info(vocab_dir)["variant"]},
        )


class Chunk(NamedTuple):
    split: str  # "train" or "eval"
    index: int
    documents: list[list[str]]


class Shards(NamedTuple):
    """Framed TFRecord bytes and record counts, one per shard."""

    blobs: list[bytes]
    counts: list[int]


class ChunkResult(NamedTuple):
    split: str
    shards: list[Shards]  # per phase
    stats: dict[str, int]


def read_info(folder: Path) -> dict:
    """An upstream stage's info.json."""
    path = folder / "info.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read the upstream stage's info ({err}); run that stage first") from err


def dataset_name(clean_dir: Path, vocab_dir: Path, do_whole_word_mask: bool) -> str:
    """Corpus, masking and vocabulary, as the paper's Table 1 names its data sets: `docs_informal-wwm-unused`."""
    corpus = read_info(clean_dir)["corpus"].replace("+", "_")
    return f"{corpus}-{'wwm' if do_whole_word_mask else 'nowwm'}-{read_info(vocab_dir)['variant']}"


def chunk_documents(
    documents: Iterator[list[str]], chunk_bytes: int, eval_fraction: float, seed: int
) -> Iterator[Chunk]:
    """Group documents into train and eval chunks of about `chunk_bytes` characters each."""
    buffers: dict[str, list[list[str]]] = {"train": [], "eval": []}
    sizes = {"train": 0, "eval": 0}
    counts = {"train": 0, "eval": 0}
    for index, document in enumerate(documents):
        split = "eval" if is_heldout(index, eval_fraction, seed) else "train"
        buffers[split].append(document)
        sizes[split] += sum(len(line) + 1 for line in document)
        if sizes[split] >= chunk_bytes:
            yield Chunk(split, counts[split], buffers[split])
            counts[split] += 1
            buffers[split], sizes[split] = [], 0
    for split in ("train", "eval"):
        if buffers[split]:
            yield Chunk(split, counts[split], buffers[split])


def shard_name(dataset_name: str, config: InstanceConfig, split: str, shard: int, num_shards: int) -> str:
    base = f"{dataset_name}-msl{config.max_seq_length}"
    if split == "eval":
        return f"{base}.eval.tfrecord"
    return f"{base}.train-{shard:05d}-of-{num_shards:05d}.tfrecord"


# ---- worker side -------------------------------------------------------------------------------------------


def _worker_setup(
    vocab_dir: str, phases: tuple[InstanceConfig, ...], seed: int, num_shards: int, parallel: bool
) -> dict:
    """What every chunk needs, made once per worker process (`worker_state()`)."""
    if parallel:  # one tokenizer thread per worker process: the processes already use every core
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    gc.disable()  # instances are acyclic lists: reference counting frees them, and the cycle collector only costs
    tokenizer = load_tokenizer(vocab_dir)
    vocab = tokenizer.vocab
    return {
        "num_shards": num_shards,
        "tokenizer": tokenizer,
        "special": SpecialIds.from_vocab(vocab),
        "encoders": [ExampleEncoder(p.max_seq_length, p.max_predictions_per_seq, len(vocab)) for p in phases],
        "phases": phases,
        "seed": seed,
        "unk_id": vocab.unk_id,
    }


def tokenize_documents(documents: list[list[str]], tokenizer: FullTokenizer) -> list[Document]:
    """Token ids per sentence; sentences with no tokens and then empty documents are dropped (as Google)."""
    flat = tokenizer.encode_batch([line for document in documents for line in document])
    result, start = [], 0
    for document in documents:
        sentences = [ids for ids in flat[start : start + len(document)] if ids]
        start += len(document)
        if sentences:
            result.append(sentences)
    return result


def deal_round_robin(records: list[bytes], num_shards: int, first_shard: int) -> Shards:
    """Frame `records` as TFRecords, dealt over `num_shards` buffers starting at `first_shard`."""
    buffers = [io.BytesIO() for _ in range(num_shards)]
    writers = [TFRecordWriter(buffer) for buffer in buffers]
    for index, record in enumerate(records):
        writers[(first_shard + index) % num_shards].write(record)
    return Shards([b.getvalue() for b in buffers], [w.records for w in writers])


def deal_to_buckets(records: list[bytes], num_buckets: int, rng: np.random.Generator) -> Shards:
    """Frame `records` as TFRecords, each into a bucket drawn at random (the first half of the global shuffle)."""
    buffers = [io.BytesIO() for _ in range(num_buckets)]
    writers = [TFRecordWriter(buffer) for buffer in buffers]
    for record, bucket in zip(records, rng.integers(0, num_buckets, len(records)).tolist(), strict=True):
        writers[bucket].write(record)
    return Shards([b.getvalue() for b in buffers], [w.records for w in writers])


def _generator(seed: int | str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.blake2b(str(seed).encode()).digest()[:8]))


def chunk_seed(seed: int, split: str, index: int) -> int | str:
    return seed if (split, index) == ("train", 0) else f"{seed}:{split}:{index}"


def _process_chunk(chunk: Chunk) -> ChunkResult:
    _worker = worker_state()
    documents = tokenize_documents(chunk.documents, _worker["tokenizer"])
    tokens = sum(len(s) for d in documents for s in d)
    unknown = sum(s.count(_worker["unk_id"]) for d in documents for s in d)
    stats = {
        "documents": len(documents),
        "sentences": sum(len(d) for d in documents),
        "tokens": tokens,
        "unk_tokens": unknown,
        "text_bytes": sum(len(line) + 1 for d in chunk.documents for line in d),
    }
    shards = []
    num_shards = _worker["num_shards"] if chunk.split == "train" else 1
    for phase, encoder in zip(_worker["phases"], _worker["encoders"], strict=True):
        if chunk.split == "eval":
            phase = InstanceConfig(**{**asdict(phase), "dupe_factor": 1})
        seed = chunk_seed(_worker["seed"], chunk.split, chunk.index)
        rng = random.Random(seed)
        if phase.exact_google_rng:
            instances = create_training_instances(documents, phase, _worker["special"], rng)
            random_next = sum(i.is_random_next for i in instances)
            masked = sum(len(i.masked_lm_positions) for i in instances)
            records = encoder.encode_batch(instances)
        else:
            batch = create_training_batch(documents, phase, _worker["special"], rng, _generator(seed))
            random_next, masked = int(batch.is_random_next.sum()), int(batch.masked_counts.sum())
            records = encoder.encode_arrays(batch)
        stats[f"random_next_msl{phase.max_seq_length}"] = random_next
        stats[f"masked_msl{phase.max_seq_length}"] = masked
        if chunk.split == "train" and not phase.exact_google_rng:
            buckets = _generator(f"{seed}:buckets:{phase.max_seq_length}")
            shards.append(deal_to_buckets(records, num_shards * BUCKETS_PER_SHARD, buckets))
        else:
            shards.append(deal_round_robin(records, num_shards, chunk.index % num_shards))
    return ChunkResult(chunk.split, shards, stats)


# ---- main side ---------------------------------------------------------------------------------------------


class ShardWriters:
    """The train shards and eval file of every phase. Records arrive in chunk order. Train records go to bucket
    files first (each record to a bucket drawn at random, in the worker), and `finish` shuffles every bucket in
    memory into its shard: together a global shuffle in bounded memory, so that any prefix of a shard, which is all
    a short pretraining reads, is a uniform sample of the whole corpus (Google's script shuffles everything in
    memory). With `exact_google_rng` records go to the shards directly, in Google's order."""

    def __init__(self, out_dir: Path, job: TFRecordsJob):
        self.out_dir, self.job = out_dir, job
        self.shuffle = not any(phase.exact_google_rng for phase in job.phases)
        self._files = contextlib.ExitStack()
        self.handles: dict[tuple[str, int], list[BinaryIO]] = {}
        self.records: dict[tuple[str, int], list[int]] = {}
        self.buckets = out_dir / ".buckets"
        for phase in job.phases:
            for split, count in (("train", job.num_shards), ("eval", 1)):
                key = (split, phase.max_seq_length)
                if split == "train" and self.shuffle:
                    self.buckets.mkdir(exist_ok=True)
                    paths = [self._bucket(phase, b) for b in range(count * BUCKETS_PER_SHARD)]
                else:
                    names = [shard_name(job.dataset_name, phase, split, s, job.num_shards) for s in range(count)]
                    paths = [out_dir / name for name in names]
                self.handles[key] = [self._files.enter_context(open(p, "wb")) for p in paths]  # noqa: SIM115
                self.records[key] = [0] * count

    def _bucket(self, phase: InstanceConfig, index: int) -> Path:
        return self.buckets / f"msl{phase.max_seq_length}-{index:05d}.tfrecord"

    def write(self, split: str, msl: int, shards: Shards) -> None:
        handles, records = self.handles[(split, msl)], self.records[(split, msl)]
        for index, (blob, count) in enumerate(zip(shards.blobs, shards.counts, strict=True)):
            handles[index].write(blob)
            records[index % len(records)] += count  # bucket b goes to shard b mod num_shards

    def finish(self) -> None:
        """Close the files; shuffle each bucket into its shard (bucket b goes to shard b mod num_shards)."""
        self._files.close()
        if not self.shuffle:
            return
        job = self.job
        for phase in job.phases:
            names = [shard_name(job.dataset_name, phase, "train", s, job.num_shards) for s in range(job.num_shards)]
            with contextlib.ExitStack() as files:
                writers = [TFRecordWriter(files.enter_context(open(self.out_dir / n, "wb"))) for n in names]
                for bucket in range(job.num_shards * BUCKETS_PER_SHARD):
                    path = self._bucket(phase, bucket)
                    records = list(read_records(path))
                    seed = f"{job.random_seed}:shuffle:{phase.max_seq_length}:{bucket}"
                    for index in _generator(seed).permutation(len(records)).tolist():
                        writers[bucket % job.num_shards].write(records[index])
                    path.unlink()
        shutil.rmtree(self.buckets)

    def counts(self) -> dict[str, int]:
        return {
            f"{split}/msl{msl}/{i}": n for (split, msl), counts in self.records.items() for i, n in enumerate(counts)
        }

    def close(self) -> None:
        self._files.close()


def build_tfrecords(job: TFRecordsJob) -> dict:
    """Run the stage; returns its metrics. Output appears in `job.out_dir` only if everything succeeds."""
    do_lower_case = load_tokenizer(job.vocab_dir).do_lower_case  # fails early, in this process, on a bad vocabulary
    reader = CorpusReader([job.corpus])
    workers = default_workers(job.workers)
    started = time.perf_counter()
    totals: dict[str, dict[str, int]] = {"train": {}, "eval": {}}
    with atomic_dir(job.out_dir) as out_dir, contextlib.ExitStack() as stack:
        writers = ShardWriters(out_dir, job)
        stack.callback(writers.close)
        chunks = chunk_documents(iter(reader), job.chunk_bytes, job.eval_fraction, job.random_seed)
        results = ordered_map(
            _process_chunk,
            chunks,
            workers,
            setup=(_worker_setup, (str(job.vocab_dir), job.phases, job.random_seed, job.num_shards, workers > 1)),
        )
        with tqdm(total=reader.total_bytes, unit="B", unit_scale=True, desc="tfrecords") as progress:
            for result in results:
                for phase, shards in zip(job.phases, result.shards, strict=True):
                    writers.write(result.split, phase.max_seq_length, shards)
                for key, value in result.stats.items():
                    totals[result.split][key] = totals[result.split].get(key, 0) + value
                progress.update(reader.bytes_read - progress.n)
        writers.finish()
        reader.require_documents(2)
        if totals["train"].get("documents", 0) < 2:
            raise InputError(
                f"{job.corpus}: fewer than 2 documents with any token left for training after holding out "
                f"eval_fraction={job.eval_fraction}; add documents or lower the fraction"
            )
        seconds = time.perf_counter() - started
        metrics = _metrics(job, totals, writers.counts(), seconds, reader.bytes_read)
        (out_dir / "manifest.json").write_text(
            json.dumps(_manifest(job, writers.counts(), do_lower_case), indent=2) + "\n"
        )
    log.info(
        "wrote %s train examples in %.1fs (%.0f examples/s)",
        metrics["train_examples"],
        seconds,
        metrics["examples_per_second"],
    )
    return metrics


def _metrics(job: TFRecordsJob, totals: dict, counts: dict[str, int], seconds: float, input_bytes: int) -> dict:
    train = totals["train"]
    metrics = {
        "documents": train.get("documents", 0) + totals["eval"].get("documents", 0),
        "eval_documents": totals["eval"].get("documents", 0),
        "tokens": train.get("tokens", 0) + totals["eval"].get("tokens", 0),
        "unk_rate": round(
            (train.get("unk_tokens", 0) + totals["eval"].get("unk_tokens", 0))
            / max(1, train.get("tokens", 0) + totals["eval"].get("tokens", 0)),
            6,
        ),
        "seconds": round(seconds, 2),
        "input_mb_per_second": round(input_bytes / 1e6 / max(seconds, 1e-9), 3),
    }
    all_examples = 0
    for phase in job.phases:
        msl = phase.max_seq_length
        n_train = sum(v for k, v in counts.items() if k.startswith(f"train/msl{msl}/"))
        n_eval = counts[f"eval/msl{msl}/0"]
        all_examples += n_train + n_eval
        metrics[f"msl{msl}"] = {
            "train_examples": n_train,
            "eval_examples": n_eval,
            "random_next_fraction": round(train.get(f"random_next_msl{msl}", 0) / max(1, n_train), 4),
            "masked_per_example": round(train.get(f"masked_msl{msl}", 0) / max(1, n_train), 3),
        }
    metrics["train_examples"] = sum(metrics[f"msl{p.max_seq_length}"]["train_examples"] for p in job.phases)
    metrics["examples_per_second"] = round(all_examples / max(seconds, 1e-9), 1)
    return metrics


def _manifest(job: TFRecordsJob, counts: dict[str, int], do_lower_case: bool) -> dict:
    phases = []
    for phase in job.phases:
        msl = phase.max_seq_length
        phases.append(
            {
                **asdict(phase),
                "train_files": [
                    shard_name(job.dataset_name, phase, "train", s, job.num_shards) for s in range(job.num_shards)
                ],
                "eval_file": shard_name(job.dataset_name, phase, "eval", 0, job.num_shards),
                "train_examples": sum(v for k, v in counts.items() if k.startswith(f"train/msl{msl}/")),
                "eval_examples": counts[f"eval/msl{msl}/0"],
            }
        )
    return {
        "dataset": job.dataset_name,
        "do_lower_case": do_lower_case,  # as recorded with the vocabulary
        "random_seed": job.random_seed,
        "features": {k: [d, n] for k, (d, n) in FEATURES.items()},
        "phases": phases,
        **job.extra_info,
    }
