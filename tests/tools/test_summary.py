"""The demo's closing summary: a few lines from the metrics files, only for the stages that ran."""

from __future__ import annotations

import json

from vbert.tools.summary import lines, verdict


def write(folder, stage, data):
    (folder / f"{stage}.json").write_text(json.dumps(data))


def test_a_line_per_finding_from_the_metrics(tmp_path):
    write(tmp_path, "vnlp", {"documents": 1200, "words": 345678, "corrections": 12, "splits": 3})
    write(
        tmp_path,
        "vocab",
        {"variant": "unused", "tokens_added": 994, "pieces_per_word_before": 1.15, "pieces_per_word_after": 1.08},
    )
    write(
        tmp_path,
        "pretrain",
        {
            "final_step": 40,
            "mixed_precision": "bf16",
            "masked_lm_accuracy": 0.21,
            "initial": {"masked_lm_accuracy": 0.0},
        },
    )
    write(
        tmp_path,
        "finetune",
        {
            "best_cell": "msl128-step-000040",
            "test_f1": 0.7012,
            "test_f1_std": 0.004,
            "seeds": [1, 2, 3],
            "baselines": {
                "tfidf_lr": {"test_f1": 0.65, "eval_f1": 0.7},
                "embeddings_lr": {"test_f1": 0.66, "eval_f1": 0.71},
                "majority": {"f1": 0.05},
            },
            "chosen_over_best_baseline": {"baseline": "embeddings_lr", "baseline_test_f1": 0.66, "difference": 0.0412},
            "no_domain_pretraining": {"test_f1_mean": 0.69},
            "domain_pretraining": {"cell": "msl128-step-000040"},
            "difference": {"difference": 0.0112, "ci95": [0.002, 0.02], "beyond_noise": True},
        },
    )
    write(
        tmp_path,
        "distill",
        {
            "student_layers": 3,
            "teacher_layers": 6,
            "seeds": [1, 2],
            "student_test_f1": {"mean": 0.6954, "std": 0.003},
            "teacher_test_f1": 0.7012,
            "flops_ratio": 2.0,
        },
    )
    write(tmp_path, "freeze", {"model_name": "docs", "shipped": "student"})
    write(
        tmp_path,
        "ir",
        {
            "chosen": "bf16",
            "tensorflow_test_f1": 0.7,
            "variants": {"bf16": {"ms_per_request": 12.34, "test_f1": 0.699}},
        },
    )
    text = "\n".join(lines(tmp_path))
    assert "1,200 documents, 345,678 words" in text
    assert "994 domain tokens added; word pieces per word 1.15 -> 1.08" in text
    assert "40 steps (bf16): masked-LM accuracy 0.000 -> 0.210" in text
    assert "test F1 0.701 ± 0.004 over 3 seeds" in text
    assert "no domain pretraining 0.690, frozen embeddings + LR 0.660, TF-IDF + LR 0.650, majority class 0.050" in text
    assert "chosen     by eval F1: msl128-step-000040, +0.041 F1 over the best baseline by eval (embeddings_lr" in text
    assert "+0.011 F1 (95% interval +0.002 .. +0.020: better beyond noise)" in text
    assert "3 of 6 layers: test F1 0.695 ± 0.003 over 2 seeds (teacher 0.701), 2.0x fewer FLOPs" in text
    assert "; shipped: student" in text
    assert "OpenVINO bf16: 12.3 ms per request" in text and "/v1/models/docs:classify_text" in text


def test_only_the_stages_that_ran(tmp_path):
    write(tmp_path, "vnlp", {"documents": 2, "words": 10, "corrections": 0, "splits": 0})
    assert len(lines(tmp_path)) == 1
    assert lines(tmp_path / "nothing") == []


def test_verdict_reads_the_interval_both_ways():
    assert verdict((0.002, 0.02)) == "better beyond noise"
    assert verdict((-0.048, -0.002)) == "worse beyond noise"
    assert verdict((-0.01, 0.01)) == "within noise"


def test_a_stage_dvc_calls_stale_is_named_not_summarised(tmp_path):
    """After `make adapt` (a run up to finetune) the distill and ir metrics are an earlier run's."""
    write(tmp_path, "vnlp", {"documents": 2, "words": 10, "corrections": 0, "splits": 0})
    write(tmp_path, "distill", {"student_layers": 3})  # would raise KeyError if it were read
    write(tmp_path, "ir", {"chosen": "bf16"})
    text = "\n".join(lines(tmp_path, {"distill", "ir", "bench"}))
    assert "corpus       2 documents" in text and "distilled" not in text and "serving" not in text
    assert "not re-run   distill, ir: their inputs changed" in text and "`dvc repro ir`" in text


def test_stale_stages_are_dvc_status_s(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from vbert.tools.summary import stale_stages

    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "input.txt").write_text("a\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  first:\n    cmd: cp input.txt middle.txt\n    deps: [input.txt]\n    outs: [middle.txt]\n"
        "  second:\n    cmd: cp middle.txt output.txt\n    deps: [middle.txt]\n    outs: [output.txt]\n"
    )
    subprocess.run([dvc, "repro", "-q"], cwd=tmp_path, check=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert stale_stages(tmp_path) == set()
    (tmp_path / "input.txt").write_text("b\n")
    assert stale_stages(tmp_path) == {"first"}  # second's input has not changed yet: first has not re-run
    assert stale_stages(tmp_path / "no-such-folder") == set()


def test_one_seed_has_no_spread(tmp_path):
    write(
        tmp_path,
        "distill",
        {
            "student_layers": 3,
            "teacher_layers": 6,
            "seeds": [1],
            "flops_ratio": 2.0,
            "student_test_f1": {"mean": 0.69, "std": 0.0},
            "teacher_test_f1": 0.7,
        },
    )
    assert "test F1 0.690 over 1 seed (teacher" in lines(tmp_path)[0]


def test_no_pretraining_phase_is_said_so(tmp_path):
    """The end-task-aware recipe (make adapt): no domain phase, only the masked-LM head's warm-up."""
    pretrain = {"final_step": 0, "head_warmup_steps": 100, "mixed_precision": "fp32", "masked_lm_accuracy": 0.0787}
    write(tmp_path, "pretrain", pretrain | {"initial": {"masked_lm_accuracy": 0.0787}})
    assert lines(tmp_path) == [
        "pretraining  none: the starting model, its masked-LM head warmed up for 100 steps (fp32): masked-LM accuracy "
        "0.079"
    ]


def test_a_malformed_metrics_file_is_named_not_a_traceback(tmp_path, capsys, monkeypatch):
    from vbert.tools.summary import main

    monkeypatch.chdir(tmp_path)  # not a DVC project: no stage is called stale, so the file is read
    (tmp_path / "vnlp.json").write_text('{"documents":')
    assert main([str(tmp_path)]) == 2
    assert f"summary: {tmp_path / 'vnlp.json'}: not a metrics file" in capsys.readouterr().err
