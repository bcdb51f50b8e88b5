"""The fine-tuning sweep for real, on tiny pretraining checkpoints and a small slice of the sample task."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.helpers import REPO, from_params, google_flags, tiny_pretraining_inputs, write_lines
from vbert.pipeline.finetune import FinetuneJob, pretraining_cells, run_sweep, sweep_summary
from vbert.pipeline.pretrain import PretrainJob, run_pretraining

pytestmark = pytest.mark.xdist_group("heavy")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    phase = google_flags(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=1)
    root = tiny_pretraining_inputs(tmp_path_factory.mktemp("finetune"), documents=20, phases=(phase,), num_shards=1)
    run_pretraining(
        from_params(
            PretrainJob,
            "pretrain",
            tfrecords=root / "tf",
            vocab_dir=root / "vocab",
            out_dir=root / "pre",
            model="tiny",
            init_checkpoint="scratch",
            learning_rate=1e-3,
            train_batch_size=8,
            num_train_steps=2,
            num_warmup_steps=1,
            save_checkpoints_steps=2,
            num_train_steps_msl512=0,
            msl512_from_steps=(),
            eval_batches=1,
            jit_compile=False,
        )
    )
    task = root / "task"
    for split, rows in (("train", 160), ("eval", 40), ("test", 40)):
        lines = (REPO / f"data/sample/pkg_section/{split}.tsv").read_text().splitlines()
        kept = [line for line in lines[1:] if line.split("\t")[0] in ("games", "science")][:rows]
        write_lines(task / f"{split}.tsv", [lines[0], *kept])
    return root


def test_sweep_covers_every_checkpoint_and_is_resumable(pretrained, tmp_path):
    cells = pretraining_cells(pretrained / "pre")
    assert [c.name for c in cells] == ["msl32-step-000000", "msl32-step-000002"]
    job = from_params(
        FinetuneJob,
        "finetune",
        pretrain_dir=pretrained / "pre",
        task_dir=pretrained / "task",
        out_dir=tmp_path / "ft",
        max_seq_length=32,
        epochs=3,
        patience=1,
        learning_rate=1e-3,
        train_batch_size=16,
        positive_label="games",
        jit_compile=False,
    )
    first = run_sweep(job)
    rows = first["rows"]
    assert {r["cell"] for r in rows} == {c.name for c in cells}
    assert all(set(r) >= {"eval_f1", "eval_precision", "eval_recall", "eval_accuracy", "test_f1"} for r in rows)
    metrics = first["metrics"]
    selection = json.loads((tmp_path / "ft/best/selection.json").read_text())
    assert selection["eval_f1"] == max(r["eval_f1"] for r in rows) == metrics["eval_f1"]
    assert (tmp_path / "ft/best/model.weights.h5").exists()
    assert metrics["majority_baseline"]["label"] in ("games", "science")

    done = tmp_path / "ft/cells/msl32-step-000000/done.json"
    stamp = done.stat().st_mtime_ns
    again = run_sweep(job)
    assert done.stat().st_mtime_ns == stamp and again["rows"] == rows  # finished cells are not recomputed

    other = run_sweep(replace(job, epochs=1))  # other settings: every cell is fine-tuned again
    assert done.stat().st_mtime_ns != stamp and [r["epoch"] for r in other["rows"]] == [1, 1]
    assert np.isfinite([r["test_f1"] for r in rows]).all()


def test_cells_in_parallel_processes(pretrained, tmp_path):
    job = from_params(
        FinetuneJob,
        "finetune",
        pretrain_dir=pretrained / "pre",
        task_dir=pretrained / "task",
        out_dir=tmp_path / "ft",
        max_seq_length=32,
        epochs=1,
        learning_rate=1e-3,
        train_batch_size=16,
        jobs=2,
        jit_compile=False,
    )
    rows = run_sweep(job)["rows"]
    assert [r["cell"] for r in rows] == ["msl32-step-000000", "msl32-step-000002"]
    assert all((tmp_path / "ft" / "cells" / r["cell"] / "done.json").exists() for r in rows)
    assert all(0.0 <= r["test_f1"] <= 1.0 for r in rows)


def test_cells_count_msl512_steps_on_from_their_start(tmp_path):
    for folder in (
        "msl128/step-000000",
        "msl128/step-000010",
        "msl512/from-step-000010/step-000000",
        "msl512/from-step-000010/step-000004",
    ):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "variables.npz").touch()
    cells = pretraining_cells(tmp_path)
    assert [(c.name, c.phase, c.step, c.total_step) for c in cells] == [
        ("msl128-step-000000", "msl128", 0, 0),
        ("msl128-step-000010", "msl128", 10, 10),
        ("msl512-from-step-000010-step-000004", "msl512-from-step-000010", 4, 14),
    ]


def test_sweep_summary_keeps_each_cells_first_best_epoch():
    rows = [
        {"cell": "a", "pretrain_phase": "msl128", "pretrain_total_step": 0, "epoch": 1, "eval_f1": 0.5, "test_f1": 0.4},
        {"cell": "a", "pretrain_phase": "msl128", "pretrain_total_step": 0, "epoch": 2, "eval_f1": 0.7, "test_f1": 0.6},
        {"cell": "a", "pretrain_phase": "msl128", "pretrain_total_step": 0, "epoch": 3, "eval_f1": 0.7, "test_f1": 0.9},
        {
            "cell": "b",
            "pretrain_phase": "msl128",
            "pretrain_total_step": 10,
            "epoch": 1,
            "eval_f1": 0.8,
            "test_f1": 0.7,
        },
    ]
    summary = sweep_summary(rows)
    assert [(s["cell"], s["phase"], s["best_epoch"], s["test_f1"]) for s in summary] == [
        ("a", "msl128", 2, 0.6),
        ("b", "msl128", 1, 0.7),
    ]
