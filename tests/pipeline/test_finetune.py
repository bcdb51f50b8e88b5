"""The fine-tuning sweep for real, on tiny pretraining checkpoints and a small slice of the sample task."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.helpers import REPO, from_params, google_flags, tiny_pretrain_job, tiny_pretraining_inputs, write_lines
from vbert.evaluation.baselines import EMBEDDING_C_VALUES
from vbert.model.checkpoints import pretraining_cells
from vbert.pipeline.finetune import FinetuneJob, best_epochs, run_sweep
from vbert.pipeline.pretrain import run_pretraining

pytestmark = pytest.mark.xdist_group("heavy")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    phase = google_flags(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=1)
    root = tiny_pretraining_inputs(tmp_path_factory.mktemp("finetune"), documents=20, phases=(phase,), num_shards=1)
    run_pretraining(tiny_pretrain_job(root, root / "pre", num_train_steps=2))
    task = root / "task"
    for split, rows in (("train", 160), ("eval", 40), ("test", 40)):
        lines = (REPO / f"data/sample/pkg_section/{split}.tsv").read_text().splitlines()
        kept = [line for line in lines[1:] if line.split("\t")[0] in ("games", "science")][:rows]
        write_lines(task / f"{split}.tsv", [lines[0], *kept])
    return root


def finetune_job(pretrained, out, **changes) -> FinetuneJob:
    """Fine-tuning the tiny checkpoints on the two-label slice, quickly."""
    settings = dict(max_seq_length=32, learning_rate=1e-3, train_batch_size=16, jit_compile=False)
    return from_params(
        FinetuneJob,
        "finetune",
        pretrain_dir=pretrained / "pre",
        task_dir=pretrained / "task",
        out_dir=out,
        **{**settings, **changes},
    )


def test_sweep_runs_every_cell_and_seed_against_baselines_and_is_resumable(pretrained, tmp_path):
    cells = pretraining_cells(pretrained / "pre", "all")
    # the vocabulary replaced no token: the reference is step 0 (the starting model, default vocabulary)
    assert [(c.name, c.checkpoint.name) for c in cells] == [
        ("reference", "step-000000"),
        ("msl32-step-000002", "step-000002"),
    ]
    assert [c.name for c in pretraining_cells(pretrained / "pre", "reference")] == ["reference"]
    job = finetune_job(pretrained, tmp_path / "ft", epochs=2, patience=1, seeds=(1, 2), positive_label="games")
    first = run_sweep(job)
    rows = first["rows"]
    assert {(r["cell"], r["seed"]) for r in rows} == {(c.name, s) for c in cells for s in (1, 2)}
    assert all(
        set(r) >= {"eval_f1", "eval_precision", "eval_recall", "test_f1", "train_examples_per_second"} for r in rows
    )
    summary = {s["cell"]: s for s in first["summary"]}
    kept = best_epochs(rows)
    tests = [kept[("msl32-step-000002", seed)]["test_f1"] for seed in (1, 2)]
    assert summary["msl32-step-000002"]["test_f1_mean"] == pytest.approx(np.mean(tests), abs=1e-6)
    assert summary["msl32-step-000002"]["test_f1_std"] == pytest.approx(np.std(tests, ddof=1), abs=1e-6)

    metrics = first["metrics"]
    assert metrics["seeds"] == [1, 2] and metrics["cells"] == 2
    best = summary[metrics["best_cell"]]
    assert best["eval_f1_mean"] == max(s["eval_f1_mean"] for s in summary.values()) == metrics["eval_f1"]
    selection = json.loads((tmp_path / "ft/best/selection.json").read_text())
    assert selection["cell"] == metrics["best_cell"] and selection["seed"] == metrics["best_seed"]
    assert sorted(p.name for p in (tmp_path / "ft/best").iterdir()) == [
        "bert_config.json",
        "selection.json",
        "serving.json",
        "settings.json",
        "tokenizer_config.json",
        "variables.npz",
        "vocab.txt",
    ]
    assert metrics["baselines"]["majority"]["label"] in ("games", "science")
    tfidf = metrics["baselines"]["tfidf_lr"]
    assert tfidf["C"] in (0.3, 1.0, 3.0, 10.0, 30.0) and 0 <= tfidf["test_f1"] <= 1
    frozen = metrics["baselines"]["embeddings_lr"]  # the reference cell's encoder, untrained on the task
    assert frozen["C"] in EMBEDDING_C_VALUES and 0 <= frozen["test_f1"] <= 1 and 0 <= frozen["eval_f1"] <= 1
    over = metrics["chosen_over_best_baseline"]
    chosen_baseline = max(("tfidf_lr", "embeddings_lr"), key=lambda n: metrics["baselines"][n]["eval_f1"])
    assert over["baseline"] == chosen_baseline
    assert over["difference"] == pytest.approx(metrics["test_f1"] - metrics["baselines"][chosen_baseline]["test_f1"])
    assert metrics["no_domain_pretraining"]["cell"] == "reference"
    assert metrics["domain_pretraining"]["test_f1"] == tests
    difference = metrics["difference"]
    assert difference["difference"] == pytest.approx(
        np.mean(tests) - np.mean(metrics["no_domain_pretraining"]["test_f1"]), abs=1e-5
    )
    assert difference["ci95"][0] <= difference["difference"] <= difference["ci95"][1]

    done = tmp_path / "ft/cells/reference/seed-1/done.json"
    stamp = done.stat().st_mtime_ns
    again = run_sweep(job)
    assert done.stat().st_mtime_ns == stamp and again["rows"] == rows  # finished runs are not recomputed

    # other settings: fine-tuned again; seed 2 removed
    other = run_sweep(replace(job, training=replace(job.training, epochs=1), seeds=(1,)))
    assert done.stat().st_mtime_ns != stamp and [r["epoch"] for r in other["rows"]] == [1, 1]
    assert not (tmp_path / "ft/cells/reference/seed-2").exists()


def test_runs_in_parallel_processes_and_only_last_checkpoints(pretrained, tmp_path):
    job = finetune_job(pretrained, tmp_path / "ft", epochs=1, jobs=2, seeds=(7,), checkpoints="last")
    rows = run_sweep(job)["rows"]
    assert [r["cell"] for r in rows] == ["reference", "msl32-step-000002"]
    assert all((tmp_path / "ft" / "cells" / r["cell"] / "seed-7" / "done.json").exists() for r in rows)
    assert all(0.0 <= r["test_f1"] <= 1.0 for r in rows)


def test_the_reference_alone_makes_a_teacher_without_a_comparison(pretrained, tmp_path):
    metrics = run_sweep(finetune_job(pretrained, tmp_path / "ft", epochs=1, seeds=(3,), checkpoints="reference"))
    assert (metrics["metrics"]["cells"], metrics["metrics"]["best_cell"]) == (1, "reference")
    assert "domain_pretraining" not in metrics["metrics"] and "difference" not in metrics["metrics"]
    assert (tmp_path / "ft" / "best" / "variables.npz").exists()


def test_end_task_aware_twins_are_adapted_arms_compared_with_the_reference(pretrained, tmp_path):
    """end_task_aware_weight > 0: the reference gets a twin reference+mlm, fine-tuned with the masked-LM loss (its
    own settings, so the plain reference is not re-run), and it counts as an adapted arm against the reference."""
    job = finetune_job(pretrained, tmp_path / "ft", epochs=1, seeds=(3,), checkpoints="reference")
    plain = run_sweep(job)
    done = tmp_path / "ft/cells/reference/seed-3/done.json"
    stamp = done.stat().st_mtime_ns
    result = run_sweep(replace(job, end_task_aware_weight=0.5))
    assert done.stat().st_mtime_ns == stamp  # the plain reference was kept
    assert [r["cell"] for r in result["rows"]] == ["reference", "reference+mlm"]
    settings = json.loads((tmp_path / "ft/cells/reference+mlm/seed-3/settings.json").read_text())
    assert settings["masked_lm_weight"] == 0.5
    metrics = result["metrics"]
    assert metrics["cells"] == 2 and metrics["domain_pretraining"]["cell"] == "reference+mlm"
    assert metrics["no_domain_pretraining"]["test_f1"] == plain["metrics"]["no_domain_pretraining"]["test_f1"]
    twin = np.load(tmp_path / "ft/cells/reference+mlm/seed-3/test_predictions.npy")
    assert twin.shape == (40,) and "difference" in metrics
    rows = {row["cell"]: row for row in result["summary"]}  # every cell's difference from the reference
    assert rows["reference"]["minus_reference"] == 0.0
    twin_row = rows["reference+mlm"]
    assert twin_row["minus_reference"] == metrics["difference"]["difference"]
    assert twin_row["minus_reference_low"] <= twin_row["minus_reference"] <= twin_row["minus_reference_high"]


def test_best_epochs_take_the_first_of_equal_eval_scores():
    rows = [
        {"cell": "a", "seed": 1, "epoch": 1, "eval_f1": 0.5},
        {"cell": "a", "seed": 1, "epoch": 2, "eval_f1": 0.7},
        {"cell": "a", "seed": 1, "epoch": 3, "eval_f1": 0.7},
        {"cell": "a", "seed": 2, "epoch": 1, "eval_f1": 0.6},
    ]
    kept = best_epochs(rows)
    assert kept[("a", 1)]["epoch"] == 2 and kept[("a", 2)]["epoch"] == 1
