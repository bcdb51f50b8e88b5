"""Benchmark: pretraining and fine-tuning examples/s on this machine, per model size, with and without XLA.

Each measurement runs in a fresh process (XLA and TensorFlow's op determinism are process-wide switches) on random
token ids of the stated shapes (speed depends on shapes, not on the text): one warm-up `fit` that also compiles,
then `--steps` timed steps. Pretraining: MLM + NSP at MSL 128 with 20 predictions. Fine-tuning: the classifier of
the finetune stage, 8 labels. Results go to a JSON file and a markdown table on stdout.

    python benchmarks/model_speed.py --out benchmarks/results/model_speed.json
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import sys
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.core.atomic import write_json  # noqa: E402

log = logging.getLogger("benchmark")


def measure(task: str, model: str, jit: bool, batch: int, max_seq_length: int, steps: int) -> dict:
    """Examples/s of `steps` training steps (after a warm-up) in this process."""
    import keras
    import numpy as np

    from vbert.model.bert import build_classifier, named_config
    from vbert.model.optimization import make_optimizer
    from vbert.pipeline.pretrain import build_trainer

    keras.utils.set_random_seed(0)
    config = named_config(model, 30522)
    rng = np.random.default_rng(0)
    features = {
        "input_ids": rng.integers(1000, 30000, (batch * steps, max_seq_length)).astype(np.int32),
        "input_mask": np.ones((batch * steps, max_seq_length), np.int32),
        "segment_ids": np.zeros((batch * steps, max_seq_length), np.int32),
    }
    if task == "pretrain":
        trainer = build_trainer(config, 5e-5, 1000, 10, max_seq_length, 20, jit)
        features.update(
            masked_lm_positions=rng.integers(1, max_seq_length, (batch * steps, 20)).astype(np.int32),
            masked_lm_ids=rng.integers(1000, 30000, (batch * steps, 20)).astype(np.int32),
            masked_lm_weights=np.ones((batch * steps, 20), np.float32),
            next_sentence_labels=rng.integers(0, 2, (batch * steps, 1)).astype(np.int32),
        )

        def fit(n: int) -> None:
            trainer.fit({k: v[: n * batch] for k, v in features.items()}, batch_size=batch, epochs=1, verbose=0)
    else:
        trainer = build_classifier(config, 8)
        trainer.compile(
            optimizer=make_optimizer(5e-5, 1000, 10),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        labels = rng.integers(0, 8, batch * steps).astype(np.int32)

        def fit(n: int) -> None:
            x = {k: v[: n * batch] for k, v in features.items()}
            trainer.fit(x, labels[: n * batch], batch_size=batch, epochs=1, verbose=0)

    fit(2)
    started = time.perf_counter()
    fit(steps)
    seconds = time.perf_counter() - started
    return {
        "task": task,
        "model": model,
        "jit_compile": jit,
        "batch": batch,
        "max_seq_length": max_seq_length,
        "steps": steps,
        "seconds_per_step": round(seconds / steps, 3),
        "examples_per_second": round(batch * steps / seconds, 1),
    }


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/model_speed.json")
@click.option("--models", default="tiny,minilm", show_default=True)
@click.option("--steps", default=6, show_default=True, help="timed steps per measurement")
@click.option("--one", hidden=True, help="internal: task,model,jit,batch,msl,steps to measure in this process")
def main(out: Path, models: str, steps: int, one: str | None) -> None:
    if one:
        task, model, jit, batch, msl, n = one.split(",")
        print(json.dumps(measure(task, model, jit == "1", int(batch), int(msl), int(n))))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    rows = []
    for model in models.split(","):
        for task, msl in (("pretrain", 128), ("finetune", 128)):
            for jit in ("1", "0"):
                spec = f"{task},{model},{jit},32,{msl},{steps}"
                done = subprocess.run(
                    [sys.executable, __file__, "--one", spec], capture_output=True, text=True, check=True
                )
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                log.info("%s", rows[-1])
    write_json(out, {"machine": platform.processor() or platform.machine(), "cpus": _cpus(), "results": rows})
    print("| task | model | XLA | batch x MSL | s/step | examples/s |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['task']} | {r['model']} | {'on' if r['jit_compile'] else 'off'} | {r['batch']} x "
            f"{r['max_seq_length']} | {r['seconds_per_step']} | {r['examples_per_second']} |"
        )


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
