"""benchmarks/distillation.py's report without training: it names the task and the student's objective as run."""

from __future__ import annotations

import importlib.util

from tests.helpers import REPO


def load_benchmark():
    spec = importlib.util.spec_from_file_location("distillation_benchmark", REPO / "benchmarks/distillation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def result(distill_overrides: dict, losses: dict) -> dict:
    spread = {"mean": 0.75, "std": 0.01, "values": [0.74, 0.75, 0.76]}
    return {
        "task": "pkg_daemon",
        "overrides": {"finetune": {"max_seq_length": 128}, "distill": {"epochs": 2, **distill_overrides}},
        "teacher": {"baselines": {"tfidf_lr": {"test_f1": 0.47}}},
        "distill": {
            "student_layers": 3,
            "teacher_layers": 6,
            "layers_kept": [1, 3, 5],
            "seeds": [1, 2, 3],
            "unlabelled_texts": 5000,
            "words_per_unlabelled_text": 60,
            "student_test_f1": spread,
            "student_eval_f1": spread,
            "student_train_losses": losses,
            "teacher_test_f1": 0.76,
            "teacher_eval_f1": 0.7,
            "student_minus_teacher": {"difference": -0.01, "ci95": [-0.02, 0.001]},
            "teacher_parameters": 22716296,
            "student_parameters": 17392904,
            "teacher_flops_per_sequence": 1.97e9,
            "student_flops_per_sequence": 0.99e9,
            "flops_ratio": 2.0,
        },
        "seconds": {"finetune": 480, "distill": 3600},
        "machine": {"cpu": "AMD EPYC", "cpus": 2},
    }


def test_the_report_names_the_task_and_every_loss_the_student_trained_on():
    benchmark = load_benchmark()
    layers = {"train_task_loss": 0.41, "train_hidden_state_loss": 0.123456, "train_attention_loss": 0.02}
    text = benchmark.markdown(result({"hidden_state_weight": 1, "attention_weight": 0.5}, layers))
    assert text.startswith("# Distillation on pkg_daemon (AMD EPYC, 2 cores)")
    assert "soft targets and labels + hidden states (TinyBERT) x 1 + last-layer attention (MiniLM) x 0.5" in text
    assert "hidden_state_loss 0.1235" in text
    assert "Student minus teacher: -1.00 F1 points (95% paired-bootstrap interval -2.00 .. +0.10)" in text
    alone = benchmark.markdown(result({}, {"train_loss": 0.5}))
    assert "Objective: soft targets and labels alone; the kept epochs' mean training losses: loss 0.5000." in alone
