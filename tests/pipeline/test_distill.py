"""The distill stage: which layers the student keeps, its weights copied from the teacher, the loss by hand, the
unlabelled texts, and a whole run on a tiny teacher whose student freeze can ship."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.helpers import from_params, tiny_finetuned, tiny_task, write_lines
from vbert.core.errors import InputError
from vbert.model.classifier import load_finetuned
from vbert.pipeline.distill import (
    DistillJob,
    augmented_texts,
    distill,
    distillation_loss,
    kept_layers,
    parameter_count,
    student_from_teacher,
    student_parameter_count,
    unlabelled_texts,
)
from vbert.pipeline.freeze import choose_shipped, freeze

pytestmark = pytest.mark.xdist_group("heavy")

LABELS = ["admin", "net"]


@pytest.mark.parametrize(
    ("teacher", "student", "kept"),
    [(6, 3, [1, 3, 5]), (12, 4, [2, 5, 8, 11]), (12, 6, [1, 3, 5, 7, 9, 11]), (2, 1, [1]), (3, 3, [0, 1, 2])],
)
def test_the_student_keeps_evenly_spaced_layers_ending_with_the_last(teacher, student, kept):
    assert kept_layers(teacher, student) == kept


def test_a_student_larger_than_its_teacher_is_refused():
    with pytest.raises(InputError, match=r"student_layers 7: must be in \[1, 6\]"):
        kept_layers(6, 7)


def test_the_student_starts_from_the_teachers_weights(tmp_path):
    from vbert.model.bert import backbone_of
    from vbert.model.weights import google_variable_map

    teacher, config, _ = load_finetuned(tiny_finetuned(tmp_path / "best", LABELS))
    student, student_config = student_from_teacher(teacher, config, [1], len(LABELS))
    assert (config.num_hidden_layers, student_config.num_hidden_layers) == (2, 1)
    ours = google_variable_map(student_config, backbone_of(student))
    theirs = google_variable_map(config, backbone_of(teacher))
    assert len(ours) == len(theirs) - 16  # one layer's 16 variables fewer
    for name, variable in ours.items():
        source = name.replace("layer_0/", "layer_1/")
        np.testing.assert_array_equal(variable.numpy(), theirs[source].numpy(), err_msg=name)
    for mine, its in zip(student.get_layer("classifier").weights, teacher.get_layer("classifier").weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), its.numpy())
    assert student_parameter_count(teacher, config, [1]) == parameter_count(student) < parameter_count(teacher)


def test_the_loss_by_hand():
    # targets: [label, teacher logits]; -1 marks an unlabelled row
    targets = np.array([[-1, 0.0, 0.0], [1, 0.0, 0.0], [1, 0.0, 0.0]], np.float32)
    student = np.array([[0.0, 0.0], [0.0, math.log(3)], [0.0, math.log(3)]], np.float32)
    soft_only = np.asarray(distillation_loss(1.0, 1.0)(targets, student))
    # the teacher says (1/2, 1/2): cross-entropy -1/2 log p0 - 1/2 log p1; student (1/2, 1/2) -> log 2, (1/4, 3/4)
    # -> -1/2 log(1/4) - 1/2 log(3/4)
    np.testing.assert_allclose(soft_only, [math.log(2), *[-0.5 * math.log(0.25) - 0.5 * math.log(0.75)] * 2], 1e-5)
    hard_only = np.asarray(distillation_loss(1.0, 0.0)(targets, student))
    np.testing.assert_allclose(hard_only, [0.0, -math.log(0.75), -math.log(0.75)], atol=1e-5)  # unlabelled: no loss
    # at temperature 2 the soft term is scaled by T^2 = 4 and both logits are halved
    soft_t2 = np.asarray(distillation_loss(2.0, 1.0)(targets[1:2], student[1:2]))
    p = np.exp([0.0, math.log(3) / 2]) / np.exp([0.0, math.log(3) / 2]).sum()
    np.testing.assert_allclose(soft_t2, [4 * (-0.5 * math.log(p[0]) - 0.5 * math.log(p[1]))], rtol=1e-5)


def test_unlabelled_texts_are_runs_of_sentences_within_a_document(tmp_path):
    corpus = write_lines(tmp_path / "corpus.txt", ["one two three", "four five", "six", "", "seven eight nine ten", ""])
    texts = unlabelled_texts(corpus, words_per_text=4, count=10, seed=0)
    assert texts == ["one two three four five", "six", "seven eight nine ten"]  # a run never spans documents
    assert len(unlabelled_texts(corpus, 4, count=2, seed=0)) == 2


def test_augmented_texts_drop_words_or_join_two_texts_halves():
    texts = ["a b c d e f g h", "p q r s t u v w", ""]  # the empty text is never drawn
    made = augmented_texts(texts, count=200, seed=0)
    assert len(made) == 200 and made == augmented_texts(texts, count=200, seed=0)
    sources = [text.split() for text in texts[:2]]
    for k, text in enumerate(made):
        words = text.split()
        assert words
        if k % 2 == 0:  # a subsequence of one text, about 10% of its words dropped
            assert any(_subsequence(words, source) for source in sources), text
        else:  # a prefix of one text, then a suffix of one
            assert any(
                words[:i] == a[:i] and words[i:] == b[len(b) - (len(words) - i) :] and len(words) - i <= len(b)
                for a in sources
                for b in sources
                for i in range(1, len(a) + 1)
            ), text
    dropped = 1 - np.mean([len(t.split()) / 8 for t in made[::2]])
    assert 0.05 < dropped < 0.15
    assert any(set(t.split()) & set("abcdefgh") and set(t.split()) & set("pqrstuvw") for t in made[1::2])
    assert augmented_texts(texts, count=0, seed=0) == []
    with pytest.raises(InputError, match="no words to make texts from"):
        augmented_texts(["", " "], count=1, seed=0)


def _subsequence(words: list[str], source: list[str]) -> bool:
    rest = iter(source)
    return all(word in rest for word in words)


def tiny_teacher_and_corpus(tmp_path):
    """A tiny fine-tuned teacher, its task, and a corpus of the task's train texts."""
    teacher = tiny_finetuned(tmp_path / "teacher", LABELS, max_seq_length=16)
    (teacher / "selection.json").write_text(json.dumps({"cell": "reference", "seed": 1}))
    task = tiny_task(tmp_path / "task", LABELS)
    sentences = (tmp_path / "task" / "train.tsv").read_text().splitlines()[1:]
    corpus = write_lines(tmp_path / "corpus.txt", [line.split("\t")[1] for line in sentences] + [""])
    return teacher, task, corpus


def tiny_distill_job(tmp_path, out: str, **changes) -> DistillJob:
    """A quick distill job of a 1-layer student on `tiny_teacher_and_corpus`."""
    teacher, task = tmp_path / "teacher", tmp_path / "task"
    settings = dict(student_layers=1, epochs=1, train_batch_size=8, mixed_precision="fp32")
    return from_params(
        DistillJob,
        "distill",
        teacher_dir=teacher,
        corpus=tmp_path / "corpus.txt",
        task_dir=task,
        out_dir=tmp_path / out,
        **{**settings, **changes},
    )


def test_distill_end_to_end_and_freeze_ships_the_student(tmp_path):
    teacher, _, _ = tiny_teacher_and_corpus(tmp_path)
    job = tiny_distill_job(tmp_path, "distill", unlabelled_texts=6, augmented_texts=4, seeds=(1, 2))
    metrics = distill(job)
    assert metrics["layers_kept"] == [1] and (metrics["unlabelled_texts"], metrics["augmented_texts"]) == (6, 4)
    assert len(metrics["student_test_f1"]["values"]) == 2
    assert metrics["student_parameters"] < metrics["teacher_parameters"]
    assert metrics["flops_ratio"] > 1.9  # the embeddings cost no FLOPs: half the layers is about half the work
    assert -1 <= metrics["student_minus_teacher"]["difference"] <= 1

    best = tmp_path / "distill" / "best"
    distilled = json.loads((best / "selection.json").read_text())["distilled"]
    assert distilled["seed"] == metrics["best_seed"] and distilled["student_layers"] == [1]
    assert json.loads((best / "bert_config.json").read_text())["num_hidden_layers"] == 1

    # the eval comparison is the kept student's (restored from its best epoch) against the teacher
    compared = distilled["eval_minus_teacher"]
    assert compared["difference"] == pytest.approx(distilled["eval_f1"] - distilled["teacher_eval_f1"], abs=1e-6)
    assert compared["ci95"][0] <= compared["difference"] <= compared["ci95"][1]
    assert metrics["student_minus_teacher_eval"]["ci95"] == compared["ci95"]
    shipped, why = choose_shipped("auto", teacher, best, max_eval_f1_drop=1.0)
    assert (shipped, why["shipped"]) == (best, "student")
    expected = best if compared["ci95"][0] >= 0 else teacher  # allowed no drop at all
    assert choose_shipped("auto", teacher, best, max_eval_f1_drop=0.0)[0] == expected
    assert choose_shipped("teacher", teacher, tmp_path / "nothing", 0.0)[0] == teacher
    frozen = freeze(best, tmp_path / "serving" / "vbert", 1)
    assert frozen["num_hidden_layers"] == 1


@pytest.mark.parametrize("knob", ["hidden_state_weight", "attention_weight"])
def test_intermediate_layer_weights_train_the_student_through_its_layers_too(tmp_path, knob):
    """hidden_state_weight (or attention_weight) > 0 reaches the loop: the same seed gives other weights than soft
    targets alone (which give the same weights twice); the metrics report the kept epoch's loss parts."""
    tiny_teacher_and_corpus(tmp_path)
    weights, losses = {}, {}
    for run, weight in enumerate((0.0, 0.0, 5.0)):
        job = tiny_distill_job(tmp_path, f"distill-{run}", unlabelled_texts=0, seeds=(1,), **{knob: weight})
        losses[run] = distill(job)["student_train_losses"]
        weights[run] = np.load(tmp_path / f"distill-{run}" / "best" / "variables.npz")
    names = weights[0].files
    assert names == weights[2].files
    assert all(np.array_equal(weights[0][n], weights[1][n]) for n in names)
    assert any(not np.allclose(weights[0][n], weights[2][n]) for n in names)
    assert set(losses[0]) == {"train_loss"}  # soft targets alone: one loss
    part = "train_hidden_state_loss" if knob == "hidden_state_weight" else "train_attention_loss"
    assert losses[2][part] > 0
    assert losses[2]["train_loss"] > losses[2]["train_task_loss"]  # the weighted layer loss is in the total


@pytest.mark.parametrize(
    "ci95, allowed, shipped",
    [
        ([-0.03, 0.02], 0.01, "teacher"),  # as good on average, but possibly 3 points worse: not shipped
        ([-0.03, 0.02], 0.05, "student"),
        ([-0.004, 0.03], 0.01, "student"),
        ([0.01, 0.04], 0.0, "student"),
    ],
)
def test_auto_ships_the_student_only_when_the_eval_intervals_low_end_is_within_the_drop(
    tmp_path, ci95, allowed, shipped
):
    student = tmp_path / "student"
    student.mkdir()
    distilled = {"eval_f1": 0.7, "teacher_eval_f1": 0.7, "eval_minus_teacher": {"difference": 0.0, "ci95": ci95}}
    (student / "selection.json").write_text(json.dumps({"cell": "reference", "distilled": distilled}))
    folder, why = choose_shipped("auto", tmp_path / "teacher", student, allowed)
    assert why["shipped"] == shipped and folder == (student if shipped == "student" else tmp_path / "teacher")
    assert "95% interval" in why["why"]


def test_auto_without_a_student_says_to_run_distill(tmp_path):
    with pytest.raises(InputError, match=r"selection\.json: missing; run the distill stage first"):
        choose_shipped("auto", tmp_path, tmp_path / "none", 0.01)
