"""Benchmark: the tfrecords stage against Google's create_pretraining_data.py on the same input.

Google's script comes from the `bert-tensorflow` package (a dev dependency, never imported by vbert); its 1.0.4
release already runs on TensorFlow 2 through `tensorflow.compat.v1`, so no shims are needed beyond that import.
Both runs get the same text, vocabulary and flags (MSL 128, 20 predictions, whole-word masking off since Google's
1.0.4 lacks it). Measured: wall time, examples written, input MB/s, examples/s, and the peak resident memory
of the whole process tree (sampled every 20 ms with psutil), for 1x, 2x and 4x the input.

    python benchmarks/tfrecords_vs_google.py --out benchmarks/results/tfrecords.json
"""

from __future__ import annotations

import gzip
import logging
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.bench.report import write_result  # noqa: E402
from vbert.core.resources import resolve_vocab  # noqa: E402
from vbert.data.instances import InstanceConfig  # noqa: E402
from vbert.pipeline.tfrecords import TFRecordsJob, build_tfrecords  # noqa: E402
from vbert.text.tokenization import load_vocab, save_tokenizer  # noqa: E402

log = logging.getLogger("benchmark")
FLAGS = {
    "max_seq_length": 128,
    "max_predictions_per_seq": 20,
    "masked_lm_prob": 0.15,
    "short_seq_prob": 0.1,
    "random_seed": 12345,
}


def make_input(source: Path, megabytes: float, path: Path) -> Path:
    """The first `megabytes` of the corpus, cut at a document boundary (the corpus repeats if it is too short)."""
    budget, written = int(megabytes * 1e6), 0
    opener = gzip.open if source.suffix == ".gz" else open
    with open(path, "w", encoding="utf-8") as out:
        while written < budget:
            with opener(source, "rt", encoding="utf-8") as src:
                for line in src:
                    out.write(line)
                    written += len(line.encode())
                    if written >= budget and not line.strip():
                        break
            out.write("\n")
    return path


def measure(command: list[str]) -> dict:
    """Run `command`; wall seconds and the peak RSS summed over the process and all its children."""
    with tempfile.TemporaryFile("w+") as log_file:  # a file, not a pipe: a full pipe would stall the child
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log_file, text=True)
        root, peak = psutil.Process(process.pid), 0
        while process.poll() is None:
            try:
                rss = root.memory_info().rss + sum(c.memory_info().rss for c in root.children(recursive=True))
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        if process.returncode != 0:
            log_file.seek(0)
            raise click.ClickException(f"{' '.join(command)} failed:\n{log_file.read()[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak / 2**20, 1)}


def count_records(paths: list[Path]) -> int:
    from vbert.data.tfrecord_format import read_records

    return sum(1 for path in paths for _ in read_records(path))


def run_google(corpus: Path, vocab: Path, work: Path, dupe_factor: int) -> dict:
    out = work / "google.tfrecord"
    flags = [f"--{k}={v}" for k, v in {**FLAGS, "dupe_factor": dupe_factor}.items()]
    result = measure(
        [
            sys.executable,
            "-m",
            "bert.create_pretraining_data",
            f"--input_file={corpus}",
            f"--output_file={out}",
            f"--vocab_file={vocab}",
            "--do_lower_case=True",
            *flags,
        ]
    )
    return {**result, "examples": count_records([out])}


def run_ours(corpus: Path, vocab: Path, work: Path, dupe_factor: int, workers: int) -> dict:
    out = work / "ours"
    result = measure(
        [sys.executable, __file__, "ours", str(corpus), str(vocab), str(out), str(dupe_factor), str(workers)]
    )
    return {**result, "examples": count_records(sorted(out.glob("*.tfrecord")))}


@click.group(invoke_without_command=True)
@click.option(
    "--source",
    type=click.Path(path_type=Path),
    default=REPO.parent / "shared/data/corpus/docs.txt.gz",
    show_default=True,
)
@click.option("--megabytes", default=4.0, show_default=True, help="input size of the 1x run")
@click.option("--dupe-factor", default=5, show_default=True)
@click.option("--workers", default=0, show_default=True, help="0 = every core")
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/tfrecords.json")
@click.pass_context
def main(ctx: click.Context, source: Path, megabytes: float, dupe_factor: int, workers: int, out: Path) -> None:
    """Compare throughput at 1x and memory at 1x, 2x and 4x the input."""
    if ctx.invoked_subcommand:
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    vocab = resolve_vocab("minilm")
    results = {
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30),
            "python": platform.python_version(),
        },
        "flags": {**FLAGS, "dupe_factor": dupe_factor, "do_whole_word_mask": False},
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for scale in (1, 2, 4):
            corpus = make_input(source, megabytes * scale, work / f"input{scale}.txt")
            size_mb = corpus.stat().st_size / 1e6
            row = {"scale": scale, "input_mb": round(size_mb, 2)}
            for name, runner in (
                ("google", lambda c, w: run_google(c, vocab, w, dupe_factor)),
                ("vbert", lambda c, w: run_ours(c, vocab, w, dupe_factor, workers)),
            ):
                if name == "google" and scale > 1:
                    continue  # Google's memory grows with the input by construction; its 1x run is the baseline
                run_dir = work / f"{name}{scale}"
                run_dir.mkdir()
                measured = runner(corpus, run_dir)
                measured["input_mb_per_second"] = round(size_mb / measured["seconds"], 3)
                measured["examples_per_second"] = round(measured["examples"] / measured["seconds"], 1)
                row[name] = measured
                log.info("%sx %s: %s", scale, name, measured)
            results["runs"].append(row)
    first = results["runs"][0]
    results["speedup_examples_per_second"] = round(
        first["vbert"]["examples_per_second"] / first["google"]["examples_per_second"], 2
    )
    peaks = [r["vbert"]["peak_rss_mb"] for r in results["runs"]]
    results["vbert_peak_rss_growth_1x_to_4x"] = round(peaks[-1] / peaks[0], 3)
    write_result(out, results, markdown)
    log.info("speed-up %.2fx; vbert peak RSS %s MB at 1x/2x/4x", results["speedup_examples_per_second"], peaks)


def markdown(results: dict) -> str:
    """The runs as a table, with the machine and the flags."""
    flags = ", ".join(f"{k} {v}" for k, v in results["flags"].items())
    lines = [
        "# TFRecords: vbert's tfrecords stage against Google's create_pretraining_data.py",
        "",
        f"`make bench-tfrecords` ({Path(__file__).name}); machine: {results['machine']['cpus']} CPUs, "
        f"{results['machine']['memory_gb']} GB, Python {results['machine']['python']}. Same text (the docs corpus), "
        f"vocabulary and flags: {flags}.",
        "",
        "| input | script | wall s | examples | input MB/s | examples/s | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        for name, label in (("google", "Google create_pretraining_data.py"), ("vbert", "vbert tfrecords")):
            if name in run:
                m = run[name]
                lines.append(
                    f"| {run['scale']}x = {run['input_mb']} MB | {label} | {m['seconds']} | {m['examples']:,} | "
                    f"{m['input_mb_per_second']} | {m['examples_per_second']:,} | {m['peak_rss_mb']} |"
                )
    lines += [
        "",
        f"vbert's throughput: **{results['speedup_examples_per_second']}x** Google's on the same input; its peak "
        f"memory grows {results['vbert_peak_rss_growth_1x_to_4x']}x from 1x to 4x the input (the chunks in flight "
        "and one shuffle bucket bound it), while Google's script holds every instance in memory.",
        "",
    ]
    return "\n".join(lines)


@main.command("ours", hidden=True)
@click.argument("corpus", type=click.Path(path_type=Path))
@click.argument("vocab", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.argument("dupe_factor", type=int)
@click.argument("workers", type=int)
def ours(corpus: Path, vocab: Path, out: Path, dupe_factor: int, workers: int) -> None:
    phase = InstanceConfig(
        **{k: v for k, v in FLAGS.items() if k != "random_seed"},
        dupe_factor=dupe_factor,
        do_whole_word_mask=False,  # bert-tensorflow 1.0.4 has no whole-word masking
        exact_google_rng=False,
    )
    tokenizer_dir = out.parent / "tokenizer"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tokenizer_dir, load_vocab(vocab), do_lower_case=True)  # as Google's --do_lower_case=True
    build_tfrecords(
        TFRecordsJob(
            corpus=corpus,
            vocab_dir=tokenizer_dir,
            out_dir=out,
            phases=(phase,),
            dataset_name="bench",
            random_seed=FLAGS["random_seed"],
            num_shards=1,
            eval_fraction=0.0,
            chunk_bytes=1_000_000,
            workers=workers,
            extra_info={},
        )
    )


if __name__ == "__main__":
    main()
