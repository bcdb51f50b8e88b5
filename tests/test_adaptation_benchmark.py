"""benchmarks/adaptation.py without training: each arm's params, what a record is keyed by, and the report built
from records (the arm chosen on eval only among complete arms, differences over the seeds both arms have)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from tests.helpers import REPO


@pytest.fixture()
def adaptation(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("adaptation_benchmark", REPO / "benchmarks/adaptation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RECORDS", tmp_path / "records")
    return module


def test_every_pretraining_arm_gets_the_recipe_s_number_of_updates(adaptation):
    recipe = adaptation.read_recipe(adaptation.RECIPE)
    sequences = recipe["pretrain.num_train_steps"] * recipe["pretrain.train_batch_size"]
    for task in ("pkg_daemon",):  # the task committed with the project (pkg_section needs `make data-full`)
        tapt = adaptation.config_values(task, adaptation.TAPT)
        assert tapt["pretrain.num_train_steps"] == 0 and tapt["pretrain.task_adaptive_from_steps"] == [0]
        epochs = tapt["pretrain.task_adaptive_epochs"]
        rows = adaptation.train_rows(task)
        assert abs(epochs * rows - sequences) <= rows / 2  # the epochs nearest the DAPT arms' sequences
        selected = adaptation.config_values(task, adaptation.SELECTED)
        assert selected["select.fraction"] < 1 and selected["pretrain.task_adaptive_from_steps"] == [
            recipe["pretrain.num_train_steps"]
        ]
        assert adaptation.config_values(task, adaptation.WHOLE)["select.fraction"] == 1


def test_a_record_is_keyed_by_everything_but_its_seed(adaptation):
    reference = adaptation.protocol("pkg_daemon", "reference")
    twin = adaptation.protocol("pkg_daemon", "end_task_aware")
    assert reference["end_task_aware_weight"] == 0 and twin["end_task_aware_weight"] > 0
    assert reference["params"]["finetune"] == twin["params"]["finetune"]
    assert "seeds" not in reference["params"]["finetune"] and "jobs" not in reference["params"]["finetune"]
    assert reference["params"]["finetune"]["positive_label"] == "daemon"
    assert "pretrain" not in reference["params"] and "pretrain" in twin["params"]  # its MLM head's warm-up
    assert adaptation.protocol_digest(reference) != adaptation.protocol_digest(twin)
    # fp32 on any machine (params.yaml's auto would be bf16 on some), so arms recorded on two machines compare
    assert reference["params"]["finetune"]["mixed_precision"] == twin["params"]["pretrain"]["mixed_precision"] == "fp32"


def test_the_end_task_aware_recipe_is_the_measured_arm(adaptation):
    """What plain `make adapt` (recipes/end-task-aware.yaml) runs is the arm the benchmark measured: every param the
    arm's result depends on, but the data's place, is the same (the precision too: fp32, which the benchmark pins)."""
    import yaml

    from vbert.tools.recipe import applied

    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    recipe = adaptation.read_recipe(REPO / "recipes/end-task-aware.yaml")
    team = applied(params, recipe)
    measured = adaptation.protocol("pkg_daemon", "end_task_aware")
    assert team["finetune"]["end_task_aware_weight"] == measured["end_task_aware_weight"] > 0
    where = {"input_dir", "task_dir", "positive_label"}
    for section, values in measured["params"].items():
        if not isinstance(values, dict):
            assert team[section] == values, section
            continue
        for key, value in values.items():
            if key not in where:
                assert team[section][key] == value, f"{section}.{key}"


def write_record(adaptation, arm: str, seed: int, predictions: np.ndarray, eval_f1: float, test_f1: float) -> None:
    protocol = adaptation.protocol("pkg_daemon", arm)
    record = {
        "seed": seed,
        "protocol_digest": adaptation.protocol_digest(protocol),
        "eval_f1": eval_f1,
        "test_f1": test_f1,
        "kept_epoch": 1,
        "test_predictions": predictions.tolist(),
        "finetune_minutes": 10.0,
        "pretraining_minutes": 5.0,
        "machine": {"cpu": "test", "cpus": 2, "isa": ["avx2", "avx512f"] if seed == 3 else ["avx2"]},
    }
    path = adaptation.record_path("pkg_daemon", arm, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_the_report_chooses_on_eval_among_complete_arms_and_compares_paired_seeds(adaptation):
    from vbert.text.tasks import read_task

    splits, names = read_task(REPO / "data/tasks/pkg_daemon")
    gold = np.array([names.index(label) for label in splits["test"].labels])
    wrong = 1 - gold  # every answer flipped: F1 of the positive class 0
    for seed in (1, 2, 3):
        write_record(adaptation, "reference", seed, wrong, eval_f1=0.5, test_f1=0.0)
        write_record(adaptation, "tapt", seed, gold, eval_f1=0.6, test_f1=1.0)
    write_record(adaptation, "end_task_aware", 1, gold, eval_f1=0.9, test_f1=1.0)  # best on eval, one seed only
    stale = adaptation.record_path("pkg_daemon", "dapt", 1)
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"protocol_digest": "another protocol"}))

    result = adaptation.task_report("pkg_daemon")
    arms = result["arms"]
    assert list(arms) == ["reference", "end_task_aware", "tapt"]  # the stale dapt record is not this protocol's
    assert arms["tapt"]["test_f1"] == [1.0, 1.0, 1.0] and arms["tapt"]["complete"]
    assert arms["tapt"]["minus_reference"] == 1.0 and arms["tapt"]["minus_reference_ci95"] == [1.0, 1.0]
    assert not arms["end_task_aware"]["complete"] and arms["end_task_aware"]["minus_reference"] == 1.0
    assert result["chosen_arm"] == "tapt" and result["chosen_minus_reference"] == 1.0
    assert arms["tapt"]["minutes"] == 35.0  # pretraining once, then three fine-tuning runs
    assert arms["tapt"]["ran_on"] == ["avx2", "avx512"] and arms["end_task_aware"]["ran_on"] == ["avx2"]
    assert "tapt | 3/3 | 1.0000 ± 0.0000" in adaptation.markdown({"tasks": {"pkg_daemon": result}})
    assert "| 35.0 | avx2, avx512 |" in adaptation.markdown({"tasks": {"pkg_daemon": result}})
    (adaptation.RECORDS / "pkg_daemon/reference/seed-3.json").unlink()  # the reference incomplete: nothing chosen,
    result = adaptation.task_report("pkg_daemon")  # though tapt is complete and best on eval
    assert "chosen_arm" not in result and result["arms"]["tapt"]["complete"]
    text = adaptation.markdown({"tasks": {"pkg_daemon": result}})
    assert "No arm is chosen until the reference has all its seeds." in text


def test_a_task_with_only_its_baselines_is_reported_and_the_reference_alone_is_not_called_a_gain(adaptation):
    assert adaptation.task_report("pkg_daemon") is None  # nothing recorded
    path = adaptation.baselines_path("pkg_daemon")
    path.parent.mkdir(parents=True)
    scores = {"test_f1": 0.4, "eval_f1": 0.5}
    machine = {"cpu": "test", "cpus": 2, "isa": []}
    baselines = {"majority": {"f1": 0.0}, "tfidf_lr": scores, "embeddings_lr": {**scores, "eval_f1": 0.6}}
    path.write_text(json.dumps({"baselines": baselines, "machine": machine}))
    result = adaptation.task_report("pkg_daemon")
    assert result["arms"] == {} and result["best_baseline_by_eval"] == "embeddings_lr"
    assert "No arm recorded yet." in adaptation.markdown({"tasks": {"pkg_daemon": result}})

    from vbert.text.tasks import read_task

    splits, names = read_task(REPO / "data/tasks/pkg_daemon")
    gold = np.array([names.index(label) for label in splits["test"].labels])
    for seed in (1, 2, 3):
        write_record(adaptation, "reference", seed, gold, eval_f1=0.5, test_f1=1.0)
    text = adaptation.markdown({"tasks": {"pkg_daemon": adaptation.task_report("pkg_daemon")}})
    assert "**reference** (no adapted arm is complete), +60.00 F1 over the best baseline by eval" in text
    assert "over the reference" not in text
    for seed in (1, 2, 3):  # complete, better on test, worse on eval: the reference stays chosen, and says why
        write_record(adaptation, "tapt", seed, gold, eval_f1=0.4, test_f1=1.0)
    text = adaptation.markdown({"tasks": {"pkg_daemon": adaptation.task_report("pkg_daemon")}})
    assert "**reference** (eval F1 0.5000; complete adapted arms lower on eval: tapt 0.4000)" in text
    assert "no adapted arm is complete" not in text


def test_no_run_starts_past_the_deadline_even_after_waiting_for_a_free_slot(adaptation, tmp_path, monkeypatch):
    import time

    from click.testing import CliRunner

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "docs.txt.gz").write_bytes(b"")
    started = []

    def finetune(task, arm, seed, *_):
        started.append((arm, seed))
        time.sleep(0.5)  # the one slot is busy past the deadline

    monkeypatch.setattr(adaptation, "CORPUS", tmp_path / "corpus")
    monkeypatch.setattr(adaptation, "prepare", lambda task, config: (tmp_path, 0.0))
    monkeypatch.setattr(adaptation, "ensure_baselines", lambda task, pretrain: None)
    monkeypatch.setattr(adaptation, "finetune", finetune)
    arguments = ["run", "--task", "pkg_daemon", "--arm", "reference", "--hours", "0.00005", "--parallel", "1"]
    result = CliRunner().invoke(adaptation.main, arguments)  # 0.18 s: seed 1 starts, seed 2 waits until 0.5 s
    assert result.exit_code == 0, result.output
    assert started == [("reference", 1)]


def test_a_record_carries_the_params_its_run_read_though_the_recipe_changed_meanwhile(
    adaptation, tmp_path, monkeypatch
):
    """Editing the recipe while a run trains (say, to queue the next arm) does not relabel the run's record."""
    import subprocess

    monkeypatch.setattr(adaptation, "WORK", tmp_path / "work")
    before = adaptation.protocol("pkg_daemon", "reference")
    adaptation.params_file("pkg_daemon", adaptation.START)
    edited = tmp_path / "recipe.yaml"
    edited.write_text(adaptation.RECIPE.read_text(encoding="utf-8").replace("epochs: 3", "epochs: 4"))

    def training(command, **_):  # the run's child: the recipe is edited while it trains, then it finishes
        monkeypatch.setattr(adaptation, "RECIPE", edited)
        out = tmp_path / "work/pkg_daemon/finetune/reference/seed-1"
        out.mkdir(parents=True)
        rows = [{"epoch": 1, "cell": "reference", "eval_f1": 0.5, "test_f1": 0.4}]
        (out / "done.json").write_text(json.dumps(rows))
        np.save(out / "test_predictions.npy", np.zeros(3, dtype=np.int64))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(adaptation.subprocess, "run", training)
    record = adaptation.finetune("pkg_daemon", "reference", 1, tmp_path, 0.0, 1)
    assert adaptation.protocol("pkg_daemon", "reference") != before  # the recipe did change
    assert record["protocol"] == before
    assert adaptation.recorded("pkg_daemon", "reference", 1) is None  # ... so the run is not current any more
