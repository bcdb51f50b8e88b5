"""Pretraining under tf.distribute: MirroredStrategy over 2 logical CPU devices, and 2 multi-worker processes
on 127.0.0.1. Each runs in its own process: devices and clusters are fixed when TensorFlow starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import (
    REPO,
    google_flags,
    pretrain_stage_args,
    tiny_pretrain_params,
    tiny_pretraining_inputs,
)
from vbert.serving.launcher import free_ports

pytestmark = pytest.mark.xdist_group("heavy")

# One optimizer step with SGD(learning_rate=1): the weight change is minus the gradient. Mirrored over two devices
# (each gets half the batch) it must equal the single-device step on the whole batch; every masked position has
# weight 1, so the mean of the two halves' losses is the whole batch's loss.
ONE_STEP = """
import json, sys
import numpy as np
from vbert.model.distribution import make_strategy
strategy = make_strategy("mirrored", cpu_devices=2)
import keras, tensorflow as tf
from vbert.model.bert import BertConfig, BertPretrainer

config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=16,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
rng = np.random.default_rng(0)
batch = {
    "input_ids": rng.integers(5, 40, (4, 8)).astype(np.int32),
    "input_mask": np.ones((4, 8), np.int32),
    "segment_ids": np.repeat([[0] * 4 + [1] * 4], 4, 0).astype(np.int32),
    "masked_lm_positions": rng.integers(1, 8, (4, 3)).astype(np.int32),
    "masked_lm_ids": rng.integers(5, 40, (4, 3)).astype(np.int32),
    "masked_lm_weights": np.ones((4, 3), np.float32),
    "next_sentence_labels": np.array([[0], [1], [1], [0]], np.int32),
}

def one_step(strategy, weights):
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = BertPretrainer(config)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), jit_compile=False)
        model(batch)
        if weights is not None:
            model.set_weights(weights)
    before = [w.copy() for w in model.get_weights()]
    model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
    return before, [a - b for a, b in zip(model.get_weights(), before)]

weights, single = one_step(tf.distribute.get_strategy(), None)
_, mirrored = one_step(strategy, weights)
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "max_update": max(float(np.abs(s).max()) for s in single),
    "max_difference": max(float(np.abs(s - m).max()) for s, m in zip(single, mirrored)),
}))
"""


def python(code_or_args: list[str], env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, *code_or_args], env=env, capture_output=True, text=True, **kwargs)


def test_mirrored_step_equals_the_single_device_step():
    done = python(["-c", ONE_STEP], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["max_update"] > 1e-3  # the step changed the weights
    assert result["max_difference"] < 1e-5 * max(1.0, result["max_update"]), result


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):

    phases = (google_flags(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=2),)
    return tiny_pretraining_inputs(tmp_path_factory.mktemp("dist"), documents=30, phases=phases)


def assert_trained(out, metrics_file) -> None:
    assert sorted(p.name for p in (out / "msl32").iterdir()) == [f"step-{s:06d}" for s in (0, 2, 4, 6)]
    metrics = json.loads(metrics_file.read_text())
    assert metrics["final_step"] == 6
    assert metrics["masked_lm_loss"] < metrics["initial"]["masked_lm_loss"]


def test_pretrain_stage_with_mirrored_strategy(inputs, tmp_path):
    params = tiny_pretrain_params(tmp_path / "params.yaml", strategy="mirrored", cpu_devices=2)
    done = python(pretrain_stage_args(inputs, params, tmp_path / "out", tmp_path / "m.json"), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "strategy mirrored: 2 replica(s)" in done.stderr
    assert_trained(tmp_path / "out", tmp_path / "m.json")


def test_pretrain_stage_with_two_workers_on_localhost(inputs, tmp_path):
    params = tiny_pretrain_params(tmp_path / "params.yaml", strategy="multi-worker")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        }
        args = pretrain_stage_args(inputs, params, tmp_path / "out", tmp_path / f"worker{index}.json")
        log = (tmp_path / f"worker{index}.log").open("w")
        workers.append(subprocess.Popen([sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        codes = [worker.wait(timeout=600) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert "strategy multi-worker: 2 replica(s)" in logs[0]
    assert_trained(tmp_path / "out", tmp_path / "worker0.json")
    assert not (tmp_path / "worker1.json").exists()  # only the chief writes
