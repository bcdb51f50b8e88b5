"""The pretrain stage for real: checkpoints, eval metrics, the MSL-512 phase, and resuming after SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from tests.helpers import (
    REPO,
    google_flags,
    pretrain_stage_args,
    tiny_pretrain_job,
    tiny_pretrain_params,
    tiny_pretraining_inputs,
)
from vbert.pipeline.pretrain import checkpoint_rows, run_pretraining


def pretrain_command(inputs, params: str, out) -> list[str]:
    return [sys.executable, *pretrain_stage_args(inputs, params, out, out.parent / f"{out.name}.json")]


pytestmark = pytest.mark.xdist_group("heavy")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    phases = (
        google_flags(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=2),
        google_flags(max_seq_length=512, max_predictions_per_seq=20, dupe_factor=1),
    )
    return tiny_pretraining_inputs(tmp_path_factory.mktemp("pretrain"), documents=30, phases=phases)


def test_checkpoints_metrics_and_msl512_phase(inputs, tmp_path, caplog):
    job = tiny_pretrain_job(inputs, tmp_path / "pre", num_train_steps_msl512=2, msl512_from_steps=(4,), eval_batches=2)
    results = run_pretraining(job)
    assert [row["step"] for row in results["phases"]["msl32"]] == [0, 2, 4, 6]
    assert [row["step"] for row in results["phases"]["msl512-from-step-000004"]] == [0, 2]
    assert sorted(p.name for p in (tmp_path / "pre" / "msl32").iterdir()) == [
        "step-000000",
        "step-000002",
        "step-000004",
        "step-000006",
    ]
    first = results["phases"]["msl32"][0]
    assert set(first) >= {"masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy", "next_sentence_loss"}
    assert results["masked_lm_loss"] < first["masked_lm_loss"]

    # Other settings in the same (persistent) output folder: the old checkpoints are not built upon.
    final = tmp_path / "pre" / "msl32" / "step-000006" / "variables.npz"
    before = final.read_bytes()
    again = run_pretraining(replace(job, learning_rate=5e-4, num_train_steps_msl512=0))
    assert "made from other inputs or settings: starting it over" in caplog.text
    assert [row["step"] for row in again["phases"]["msl32"]] == [0, 2, 4, 6]
    assert final.read_bytes() != before and not (tmp_path / "pre" / "msl512").exists()


@pytest.mark.parametrize("jit_compile", [False, True], ids=["ops-deterministic", "xla"])
def test_killed_run_resumes_to_the_same_checkpoints(inputs, tmp_path, jit_compile):
    params = tiny_pretrain_params(
        tmp_path / "params.yaml",
        num_train_steps=40,
        num_warmup_steps=4,
        save_checkpoints_steps=4,
        jit_compile=jit_compile,
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(pretrain_command(inputs, params, whole), check=True, env=env, capture_output=True, timeout=600)

    process = subprocess.Popen(
        pretrain_command(inputs, params, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not (killed / "msl32" / "step-000004" / "variables.npz").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "msl32" / "step-000040").exists()
    subprocess.run(pretrain_command(inputs, params, killed), check=True, env=env, capture_output=True, timeout=600)

    steps = sorted(p.name for p in (whole / "msl32").iterdir())
    assert steps == sorted(p.name for p in (killed / "msl32").iterdir()) and len(steps) == 11
    with (
        np.load(whole / "msl32/step-000040/variables.npz") as a,
        np.load(killed / "msl32/step-000040/variables.npz") as b,
    ):
        assert a.files == b.files
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    metrics = json.loads((tmp_path / "killed.json").read_text())
    assert metrics["final_step"] == 40
    assert (tmp_path / "killed.csv").read_text().splitlines()[0].startswith("phase,total_step,step,masked_lm_accuracy")


def test_task_adaptive_phases_from_the_start_and_after_domain_steps_become_finetune_cells(inputs, tmp_path):
    """TAPT from step 0 (the starting model) and from step 4 (after domain pretraining): masked LM on the task's
    train texts for 2 epochs, one checkpoint at the end of each; the finetune stage's cells include both."""
    from tests.helpers import tiny_task
    from vbert.data.task_adaptive import task_train_rows
    from vbert.model.checkpoints import pretraining_cells

    task = tiny_task(tmp_path / "task", ["games", "science"], rows=10)
    texts = len(task_train_rows(task, inputs / "vocab", 32))
    job = tiny_pretrain_job(
        inputs,
        tmp_path / "pre",
        task_dir=task,
        task_adaptive_epochs=2,
        task_adaptive_from_steps=(0, 4),
        eval_batches=1,
    )
    results = run_pretraining(job)
    updates = 2 * -(-texts // job.train_batch_size)
    for start in ("000000", "000004"):
        rows = results["phases"][f"tapt-from-step-{start}"]
        assert [row["step"] for row in rows] == [0, updates]
        assert rows[-1]["masked_lm_loss"] != rows[0]["masked_lm_loss"]
    cells = {cell.name: cell for cell in pretraining_cells(tmp_path / "pre", "last")}
    assert cells[f"tapt-from-step-000004-step-{updates:06d}"].total_step == 4 + updates
    assert f"tapt-from-step-000000-step-{updates:06d}" in cells
    assert [r["total_step"] for r in checkpoint_rows(results["phases"]) if r["phase"] == "tapt-from-step-000004"] == [
        4,
        4 + updates,
    ]


def test_no_domain_steps_is_task_adaptive_pretraining_alone(inputs, tmp_path):
    """num_train_steps 0: the MSL-128 phase keeps only its starting checkpoint (for MiniLM: the heads warmed up, the
    encoder as it started), so TAPT from step 0 costs no domain pretraining; the cells are the reference and TAPT."""
    from tests.helpers import tiny_task
    from vbert.data.task_adaptive import task_train_rows
    from vbert.model.checkpoints import pretraining_cells

    task = tiny_task(tmp_path / "task", ["games", "science"], rows=10)
    job = tiny_pretrain_job(
        inputs, tmp_path / "pre", task_dir=task, num_train_steps=0, task_adaptive_epochs=1, eval_batches=1
    )
    results = run_pretraining(job)
    assert results["final_step"] == 0 and [row["step"] for row in results["phases"]["msl32"]] == [0]
    updates = -(-len(task_train_rows(task, inputs / "vocab", 32)) // job.train_batch_size)
    cells = [cell.name for cell in pretraining_cells(tmp_path / "pre", "all")]
    assert cells == ["reference", f"tapt-from-step-000000-step-{updates:06d}"]


def test_task_adaptive_embeddings_only_leaves_the_encoder_as_it_started(inputs, tmp_path):
    from tests.helpers import tiny_task

    task = tiny_task(tmp_path / "task", ["games", "science"], rows=10)
    job = tiny_pretrain_job(
        inputs,
        tmp_path / "pre",
        task_dir=task,
        task_adaptive_epochs=1,
        task_adaptive_embeddings_only=True,
        eval_batches=1,
    )
    run_pretraining(job)
    phase = tmp_path / "pre" / "tapt" / "from-step-000000"
    last = sorted(phase.glob("step-*"))[-1]
    with np.load(tmp_path / "pre/msl32/step-000000/variables.npz") as start, np.load(last / "variables.npz") as end:
        weights = [name for name in start.files if name.startswith("model/") and "seed_generator" not in name]
        changed = {name for name in weights if not np.array_equal(start[name], end[name])}
    encoder = {name for name in weights if "transformer_layer" in name}
    assert "model/00000:token_embedding/embeddings" in changed and encoder and not changed & encoder


def test_task_adaptive_pretraining_needs_the_task(inputs, tmp_path):
    from vbert.core.errors import InputError

    job = tiny_pretrain_job(inputs, tmp_path / "pre", task_adaptive_epochs=1, eval_batches=1)
    with pytest.raises(InputError, match="--task-dir"):
        run_pretraining(job)


def test_checkpoint_rows_count_msl512_steps_on_from_their_start():
    phases = {
        "msl128": [{"step": 0, "masked_lm_accuracy": 0.1}, {"step": 10, "masked_lm_accuracy": 0.2}],
        "msl512-from-step-000010": [{"step": 0, "masked_lm_accuracy": 0.2}, {"step": 4, "masked_lm_accuracy": 0.3}],
    }
    assert [(r["phase"], r["step"], r["total_step"]) for r in checkpoint_rows(phases)] == [
        ("msl128", 0, 0),
        ("msl128", 10, 10),
        ("msl512-from-step-000010", 0, 10),
        ("msl512-from-step-000010", 4, 14),
    ]


def headless_hf_folder(folder):
    """An HF folder with the `tiny` size's encoder and no pretraining heads: a sentence encoder, as MiniLM."""
    from safetensors.numpy import save_file

    from tests.model.test_weights import google_weights, to_hf
    from vbert.model.bert import MODEL_SIZES

    config = {**MODEL_SIZES["tiny"], "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}
    folder.mkdir()
    weights = {k: v for k, v in to_hf(google_weights(config)).items() if not k.startswith("cls.")}
    save_file(weights, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    return folder


def test_head_warmup_trains_the_heads_and_new_rows_only_and_the_reference_keeps_the_start(inputs, tmp_path):
    vocab = tmp_path / "vocab"
    shutil.copytree(inputs / "vocab", vocab)
    new_rows = (1, 2, 3)  # [unused0..2], as the `unused` variant fills them
    replaced = [{"id": i, "old_token": f"[unused{i - 1}]", "old_piece_ids": [1996]} for i in new_rows]
    (vocab / "replaced.json").write_text(json.dumps(replaced))
    (vocab / "vocab.txt").write_text((vocab / "vocab.txt").read_text().replace("[unused0]\n", "kubectl\n", 1))
    out = tmp_path / "pre"
    job = tiny_pretrain_job(
        inputs,
        out,
        vocab_dir=vocab,
        init_checkpoint=str(headless_hf_folder(tmp_path / "hf")),
        head_warmup_steps=3,
        head_warmup_learning_rate=0.3,  # the main phase's 1e-3 moves no weight by more than 1e-3 in 3 updates
    )
    results = run_pretraining(job)
    assert results["head_warmup_steps"] == 3

    def load(path):
        with np.load(path / "variables.npz") as saved:
            return {k: saved[k] for k in saved.files if k.startswith("model/") and "seed_generator" not in k}

    start, warmed = load(out / "reference"), load(out / "heads")
    step0, last = load(out / "msl32" / "step-000000"), load(out / "msl32" / "step-000006")
    embeddings = next(k for k in start if k.endswith("token_embedding/embeddings"))
    heads = [k for k in start if "pretraining_heads" in k]
    encoder = [k for k in start if k not in heads and k != embeddings]
    assert heads and len(encoder) > 20
    for name in encoder:
        np.testing.assert_array_equal(warmed[name], start[name], err_msg=name)  # the encoder stayed frozen
    others = [i for i in range(30522) if i not in new_rows]
    np.testing.assert_array_equal(warmed[embeddings][others], start[embeddings][others])
    assert not np.allclose(warmed[embeddings][list(new_rows)], start[embeddings][list(new_rows)])
    assert all(not np.array_equal(warmed[k], start[k]) for k in heads if k.endswith("kernel"))
    assert max(np.abs(warmed[k] - start[k]).max() for k in heads if k.endswith("kernel")) > 0.01  # its own rate
    assert all(np.array_equal(step0[k], warmed[k]) for k in warmed)  # step 0 is the warmed-up model
    assert any(not np.array_equal(last[k], start[k]) for k in encoder)  # then the whole model trains
    reference_vocab = (out / "reference" / "vocab.txt").read_text().splitlines()
    assert reference_vocab[1] == "[unused0]" and (out / "vocab.txt").read_text().splitlines()[1] == "kubectl"


def test_bf16_training_keeps_float32_weights_and_the_policy_is_restored(inputs, tmp_path):
    import keras

    results = run_pretraining(tiny_pretrain_job(inputs, tmp_path / "pre", mixed_precision="bf16"))
    assert results["mixed_precision"] == "bf16" and keras.mixed_precision.global_policy().name == "float32"
    assert results["masked_lm_loss"] < results["initial"]["masked_lm_loss"]
    with np.load(tmp_path / "pre" / "msl32" / "step-000006" / "variables.npz") as saved:
        floats = {saved[k].dtype for k in saved.files if saved[k].dtype.kind == "f"}
    assert floats == {np.dtype("float32")}


def hf_folder_with_heads(folder):
    """An HF folder with the `tiny` size's encoder and both pretraining heads (a BertForPreTraining)."""
    from safetensors.numpy import save_file

    from tests.model.test_weights import google_weights, to_hf
    from vbert.model.bert import MODEL_SIZES

    config = {**MODEL_SIZES["tiny"], "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}
    folder.mkdir()
    weights = to_hf(google_weights(config))
    weights["cls.predictions.bias"] = np.random.default_rng(0).normal(0, 1, 30522).astype(np.float32)
    save_file(weights, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    return folder, weights


def test_an_extended_vocabulary_grows_the_rows_from_their_pieces_and_the_reference_keeps_google_s(inputs, tmp_path):
    vocab = tmp_path / "vocab"
    shutil.copytree(inputs / "vocab", vocab)
    pieces = {"kubectl": [13970, 4783, 6593, 2140], "vsphere": [5443, 27921, 2063]}  # ku ##be ##ct ##l; vs ##pher ##e
    replaced = [
        {"id": 30522 + i, "old_token": None, "new_token": token, "old_piece_ids": ids}
        for i, (token, ids) in enumerate(pieces.items())
    ]
    (vocab / "replaced.json").write_text(json.dumps(replaced))
    (vocab / "vocab.txt").write_text((vocab / "vocab.txt").read_text() + "kubectl\nvsphere\n")
    folder, source = hf_folder_with_heads(tmp_path / "hf")
    out = tmp_path / "pre"
    run_pretraining(tiny_pretrain_job(inputs, out, vocab_dir=vocab, init_checkpoint=str(folder)))

    assert json.loads((out / "bert_config.json").read_text())["vocab_size"] == 30524
    with np.load(out / "msl32" / "step-000000" / "variables.npz") as saved:
        embeddings = next(saved[k] for k in saved.files if k.endswith("token_embedding/embeddings"))
        bias = next(saved[k] for k in saved.files if k.endswith("pretraining_heads/output_bias"))
    assert embeddings.shape == (30524, 128) and bias.shape == (30524,)
    old_rows, old_bias = source["bert.embeddings.word_embeddings.weight"], source["cls.predictions.bias"]
    np.testing.assert_allclose(embeddings[:30522], old_rows)
    for entry in replaced:
        np.testing.assert_allclose(embeddings[entry["id"]], old_rows[entry["old_piece_ids"]].mean(0), rtol=1e-6)
        np.testing.assert_allclose(bias[entry["id"]], old_bias[entry["old_piece_ids"]].mean(), rtol=1e-5)
    reference = (out / "reference" / "vocab.txt").read_text().splitlines()
    assert len(reference) == 30522 and (out / "vocab.txt").read_text().splitlines()[-2:] == ["kubectl", "vsphere"]
    assert json.loads((out / "reference" / "bert_config.json").read_text())["vocab_size"] == 30522
    with np.load(out / "reference" / "variables.npz") as saved:  # the starting model as it was: no new rows
        np.testing.assert_array_equal(
            next(saved[k] for k in saved.files if k.endswith("token_embedding/embeddings")), old_rows
        )
