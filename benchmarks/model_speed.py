"""Benchmark: pretraining and fine-tuning examples/s on this machine, the way the stages train.

Each measurement runs in a fresh process (the dtype policy, XLA and TensorFlow's op determinism are process-wide),
after a warm-up that also traces; every configuration is measured `--rounds` times, the rounds interleaved so that a
slow spell of a shared machine hits them alike, and the median kept.

* pretrain: MiniLM (6 x 384), MLM + NSP at MSL 128 with 20 predictions, batch 32, random token ids (pretraining
  sequences are packed to full length, so speed depends on the shapes only): fp32 against bf16.
* finetune: MiniLM's classifier on the demo task's real training texts (data/sample/pkg_section) at MSL 128, batch
  32: before (fp32, every batch padded to max_seq_length, as the stage trained until #10) against after (bf16, batches
  of similar lengths padded to their longest, `vbert.text.encoding.length_grouped_batches`, as the stage trains now).
* XLA: the tiny and MiniLM pretraining steps with jit_compile on and off (the `jit_compile` defaults).

    python benchmarks/model_speed.py --out benchmarks/results/model_speed.json
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.bench.measure import machine  # noqa: E402
from vbert.bench.report import write_result  # noqa: E402

log = logging.getLogger("benchmark")

CONFIGURATIONS = {  # name: (task, model, precision, padding, jit)
    "pretrain-minilm-fp32": ("pretrain", "minilm", "fp32", "full", False),
    "pretrain-minilm-bf16": ("pretrain", "minilm", "bf16", "full", False),
    "finetune-minilm-before": ("finetune", "minilm", "fp32", "max_seq_length", False),
    "finetune-minilm-after": ("finetune", "minilm", "bf16", "longest", False),
    "pretrain-tiny-xla": ("pretrain", "tiny", "fp32", "full", True),
    "pretrain-tiny-no-xla": ("pretrain", "tiny", "fp32", "full", False),
}
BATCH, MSL = 32, 128


def pretrain_speed(model: str, jit: bool, steps: int) -> float:
    import numpy as np

    from vbert.model.bert import named_config
    from vbert.pipeline.pretrain import build_trainer

    trainer = build_trainer(named_config(model, 30522), 5e-5, 1000, 10, MSL, 20, jit)
    rng = np.random.default_rng(0)
    n = BATCH * (steps + 2)
    features = {
        "input_ids": rng.integers(1000, 30000, (n, MSL)).astype(np.int32),
        "input_mask": np.ones((n, MSL), np.int32),
        "segment_ids": np.zeros((n, MSL), np.int32),
        "masked_lm_positions": rng.integers(1, MSL, (n, 20)).astype(np.int32),
        "masked_lm_ids": rng.integers(1000, 30000, (n, 20)).astype(np.int32),
        "masked_lm_weights": np.ones((n, 20), np.float32),
        "next_sentence_labels": rng.integers(0, 2, (n, 1)).astype(np.int32),
    }
    trainer.fit({k: v[: 2 * BATCH] for k, v in features.items()}, batch_size=BATCH, epochs=1, verbose=0)
    started = time.perf_counter()
    trainer.fit({k: v[2 * BATCH :] for k, v in features.items()}, batch_size=BATCH, epochs=1, verbose=0)
    return BATCH * steps / (time.perf_counter() - started)


def finetune_speed(padding: str, steps: int) -> float:
    import keras
    import numpy as np
    import tensorflow as tf

    from vbert.core.resources import packaged_model_dir
    from vbert.model.bert import BertConfig, build_classifier
    from vbert.model.classifier import batches_dataset, padded
    from vbert.pipeline.finetune import encode_task
    from vbert.text.encoding import length_grouped_batches, pad_rows

    folder = packaged_model_dir("minilm")
    data = encode_task(_tokenizer_folder(folder), REPO / "data/sample/pkg_section", MSL)
    rows, labels = data.rows["train"], data.labels["train"]
    model = build_classifier(BertConfig.from_json(folder / "config.json"), len(data.label_names))
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batches = length_grouped_batches([len(r.ids) for r in rows], BATCH, np.random.default_rng(0))[: steps + 2]
    if padding == "longest":
        inputs = [(padded(rows, b), labels[b]) for b in batches]
    else:
        inputs = [(pad_rows([rows[i] for i in b], MSL), labels[b]) for b in batches]
    labels_spec = tf.TensorSpec((None,), tf.int32)
    model.fit(batches_dataset(inputs[:2], labels_spec), epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(batches_dataset(inputs[2:], labels_spec), epochs=1, verbose=0)
    return sum(len(b) for b in batches[2:]) / (time.perf_counter() - started)


def _tokenizer_folder(model_folder: Path) -> Path:
    """MiniLM's vocabulary as a tokenizer folder (uncased, as the model was trained)."""
    import tempfile

    from vbert.text.tokenization import load_vocab, save_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="vbert-speed-"))
    save_tokenizer(folder, load_vocab(model_folder / "vocab.txt"), do_lower_case=True)
    return folder


def markdown(results: dict) -> str:
    machine_ = results["machine"]
    lines = [
        f"# Training speed ({machine_['cpu']}, {machine_['cpus']} cores)",
        "",
        f"`python benchmarks/model_speed.py`: batch {results['batch']}, MSL {results['max_seq_length']}, "
        f"{results['steps']} timed steps, median of {results['rounds']} interleaved rounds, each in a fresh process.",
        "",
        "| configuration | task | precision | padding | XLA | examples/s |",
        "|---|---|---|---|---|---:|",
    ]
    for name, value in results["median_examples_per_second"].items():
        c = results["configurations"][name]
        lines.append(
            f"| {name} | {c['task']} | {c['precision']} | {c['padding']} | {'on' if c['jit_compile'] else 'off'} "
            f"| {value} |"
        )
    ratios = results["ratios"]
    lines += [
        "",
        f"pretraining bf16 / fp32: **{ratios['pretrain_bf16_over_fp32']}x**; fine-tuning after (bf16, "
        f"length-grouped) / before (fp32, padded to {results['max_seq_length']}): "
        f"**{ratios['finetune_after_over_before']}x**; tiny pretraining with XLA / without: "
        f"{ratios['pretrain_tiny_xla_over_no_xla']}x.",
        "",
    ]
    return "\n".join(lines)


def measure(name: str, steps: int) -> float:
    """Examples/s of configuration `name` in this process."""
    from vbert.model.precision import computing_in

    task, model, precision, padding, jit = CONFIGURATIONS[name]
    with computing_in(precision):
        return pretrain_speed(model, jit, steps) if task == "pretrain" else finetune_speed(padding, steps)


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/model_speed.json")
@click.option("--steps", default=8, show_default=True, help="timed steps per measurement")
@click.option("--rounds", default=3, show_default=True, help="measurements per configuration, interleaved")
@click.option("--one", hidden=True, help="internal: measure this configuration in this process")
def main(out: Path, steps: int, rounds: int, one: str | None) -> None:
    if one:
        print(json.dumps({"examples_per_second": measure(one, steps)}))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    speeds: dict[str, list[float]] = {name: [] for name in CONFIGURATIONS}
    for round_ in range(rounds):
        for name in CONFIGURATIONS:
            done = subprocess.run(
                [sys.executable, __file__, "--steps", str(steps), "--one", name],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            speeds[name].append(json.loads(done.stdout.strip().splitlines()[-1])["examples_per_second"])
            log.info("round %d: %s %.1f examples/s", round_ + 1, name, speeds[name][-1])
    median = {name: round(statistics.median(values), 1) for name, values in speeds.items()}
    ratios = {
        "pretrain_bf16_over_fp32": round(median["pretrain-minilm-bf16"] / median["pretrain-minilm-fp32"], 2),
        "finetune_after_over_before": round(median["finetune-minilm-after"] / median["finetune-minilm-before"], 2),
        "pretrain_tiny_xla_over_no_xla": round(median["pretrain-tiny-xla"] / median["pretrain-tiny-no-xla"], 2),
    }
    results = {
        "machine": machine(),
        "batch": BATCH,
        "max_seq_length": MSL,
        "steps": steps,
        "rounds": rounds,
        "configurations": {
            n: dict(zip(("task", "model", "precision", "padding", "jit_compile"), c, strict=True))
            for n, c in CONFIGURATIONS.items()
        },
        "examples_per_second": speeds,
        "median_examples_per_second": median,
        "ratios": ratios,
    }
    click.echo(write_result(out, results, markdown))


if __name__ == "__main__":
    main()
