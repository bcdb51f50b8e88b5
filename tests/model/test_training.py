"""The one classifier training loop (vbert.model.training): epochs, early stopping on eval, the best epoch kept."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.helpers import TINY_BERT
from vbert.model.bert import BertConfig, build_classifier
from vbert.model.classifier import predict
from vbert.model.training import Scored, TrainingSchedule, best_epoch, train_classifier
from vbert.text.encoding import Row

pytestmark = pytest.mark.xdist_group("heavy")  # trains a (tiny) BERT: not in make test-fast

SCHEDULE = TrainingSchedule(
    epochs=4, learning_rate=1e-3, train_batch_size=4, eval_batch_size=8, warmup_proportion=0.1, mixed_precision="fp32"
)


def tiny_rows(count: int, seed: int) -> list[Row]:
    rng = np.random.default_rng(seed)
    return [Row([101, *rng.integers(1000, 1100, rng.integers(1, 9)).tolist(), 102], 0) for _ in range(count)]


def scripted(eval_f1: list[float]):
    """A scorer whose eval F1 after epoch k is eval_f1[k-1] (test F1: always 0.5), calls in the loop's order."""
    calls = iter([value for f1 in eval_f1 for value in (f1, 0.5)])
    return lambda gold, predicted: {"f1": next(calls), "accuracy": float(np.mean(gold == predicted))}


def fixture(tmp_path, eval_f1: list[float]):
    keras.utils.set_random_seed(0)
    model = build_classifier(BertConfig(vocab_size=1200, max_position_embeddings=16, **TINY_BERT), 2)
    rows = {"train": tiny_rows(12, 0), "eval": tiny_rows(6, 1), "test": tiny_rows(5, 2)}
    labels = {split: np.arange(len(r), dtype=np.int32) % 2 for split, r in rows.items()}
    scored = Scored(rows, labels, scripted(eval_f1))
    return model, rows, labels, scored


@pytest.mark.parametrize(
    "eval_f1, patience, epochs_run, kept",
    [
        ([0.4, 0.6, 0.5, 0.5], 2, 4, 2),  # two epochs without gain after epoch 2: stops after 4
        ([0.6, 0.5, 0.7, 0.1], 1, 2, 1),  # one epoch without gain: stops after 2, epoch 1 kept
        ([0.6, 0.5, 0.7, 0.1], None, 4, 3),  # no early stopping: every epoch, the best (3) kept
        ([0.5, 0.5, 0.5, 0.5], 5, 4, 1),  # ties: the first
    ],
)
def test_epochs_stop_after_patience_and_the_best_eval_epoch_is_kept(tmp_path, eval_f1, patience, epochs_run, kept):
    model, rows, labels, scored = fixture(tmp_path, eval_f1)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    history = train_classifier(
        model, loss, rows["train"], labels["train"], scored, SCHEDULE, 0, tmp_path, name="t", patience=patience
    )
    assert [row["epoch"] for row in history] == list(range(1, epochs_run + 1))
    assert [row["eval_f1"] for row in history] == eval_f1[:epochs_run]
    assert best_epoch(history)["epoch"] == kept
    assert {"train_seconds", "train_examples_per_second", "train_loss", "eval_accuracy", "test_f1"} <= set(history[0])
    assert (tmp_path / "variables.npz").exists()
    assert np.load(tmp_path / "test_predictions.npy").shape == (5,)


def test_the_weights_written_are_the_kept_epochs(tmp_path):
    """After a worse last epoch, the folder holds the best epoch's weights: restoring them gives its predictions."""
    from vbert.model.checkpoints import restore_checkpoint

    model, rows, labels, scored = fixture(tmp_path, [0.9, 0.1])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    schedule = TrainingSchedule(**{**SCHEDULE.__dict__, "epochs": 2, "learning_rate": 0.05})
    train_classifier(model, loss, rows["train"], labels["train"], scored, schedule, 0, tmp_path, name="t")
    kept = np.load(tmp_path / "test_predictions.npy")
    last = [np.array(w) for w in model.get_weights()]
    restore_checkpoint(tmp_path, model)
    assert any(
        not np.array_equal(a, b) for a, b in zip(last, model.get_weights(), strict=True)
    )  # epoch 1's, not the last
    np.testing.assert_array_equal(predict(model, rows["test"], 8), kept)


def test_updates_count_every_epochs_batches():
    assert SCHEDULE.updates(12) == 4 * 3 and SCHEDULE.updates(13) == 4 * 4


def masked_lm_loss_on(pretrainer, rows: list[Row], masking, special) -> float:
    from vbert.data.task_adaptive import masked_features
    from vbert.model.bert import masked_lm_loss

    features = masked_features(rows, masking, special, np.random.default_rng(99))
    logits, _ = pretrainer(features, training=False)
    return float(masked_lm_loss(features, logits))


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_end_task_aware_training_adds_the_masked_lm_loss_of_the_train_texts(tmp_path, weight):
    """With masked_lm, each update also lowers the masked-LM loss on the (masked) train texts through the MLM head
    that shares the classifier's encoder; without it (weight 0 here) the head is not trained at all. The folder
    keeps the classifier's weights only, in the format plain fine-tuning writes."""
    from vbert.data.instances import SpecialIds
    from vbert.data.task_adaptive import task_masking
    from vbert.model.bert import build_pretrainer
    from vbert.model.training import MaskedLm

    keras.utils.set_random_seed(0)
    config = BertConfig(vocab_size=1200, max_position_embeddings=16, **TINY_BERT)
    pretrainer = build_pretrainer(config)
    model = build_classifier(config, 2, pretrainer.backbone)
    rows = {"train": tiny_rows(12, 0), "eval": tiny_rows(6, 1), "test": tiny_rows(5, 2)}
    labels = {split: np.arange(len(r), dtype=np.int32) % 2 for split, r in rows.items()}
    special = SpecialIds(101, 102, 103, 1200, tuple(False for _ in range(1200)))
    masking = task_masking(16)
    head = pretrainer.pretraining_heads.transform.kernel
    head_before = np.array(head)
    loss_before = masked_lm_loss_on(pretrainer, rows["train"], masking, special)
    schedule = TrainingSchedule(**{**SCHEDULE.__dict__, "epochs": 3, "learning_rate": 0.05})
    train_classifier(
        model,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        rows["train"],
        labels["train"],
        Scored(rows, labels, scripted([0.5, 0.6, 0.7])),
        schedule,
        0,
        tmp_path,
        name="t",
        objective=MaskedLm(pretrainer, weight, masking, special) if weight else None,
    )
    loss_after = masked_lm_loss_on(pretrainer, rows["train"], masking, special)
    if weight:
        assert not np.allclose(np.array(head), head_before)
        assert loss_after < loss_before - 0.5, (loss_before, loss_after)
    else:
        np.testing.assert_array_equal(np.array(head), head_before)
    saved = set(np.load(tmp_path / "variables.npz").files)
    plain = build_classifier(config, 2)
    from vbert.model.checkpoints import restore_checkpoint

    restore_checkpoint(tmp_path, plain)  # a plain classifier reads it: nothing of the MLM head in the format
    assert saved and np.load(tmp_path / "test_predictions.npy").shape == (5,)


def layer_outputs(student, teacher, rows: list[Row]) -> tuple:
    """Both models' LayerOutputs ([embeddings, layer 0, layer 1, ...]) on `rows`, and the rows' padding mask."""
    from vbert.model.bert import LayerOutputs, backbone_of
    from vbert.model.classifier import padded

    features = padded(rows, np.arange(len(rows)))
    inputs = {"token_ids": features["input_ids"], "segment_ids": features["segment_ids"]}
    inputs["padding_mask"] = features["input_mask"]
    ours, theirs = (LayerOutputs(backbone_of(model))(inputs) for model in (student, teacher))
    return ours, theirs, features["input_mask"]


def hidden_gap(student, teacher, rows: list[Row], layers: list[int]) -> float:
    """Mean squared difference of each student layer's output from its teacher layer's, over real tokens."""
    from vbert.model.bert import masked_mean_square

    ours, theirs, mask = layer_outputs(student, teacher, rows)
    mask = mask.astype(np.float32)
    return float(np.mean([masked_mean_square(ours[j + 1], theirs[i + 1], mask) for j, i in enumerate(layers)]))


def attention_gap(student, teacher, rows: list[Row], teacher_layer: int) -> float:
    """KL divergence of the student's last-layer attention distributions and value relations from those of the
    teacher's layer `teacher_layer`."""
    from vbert.model.bert import backbone_of, relation_divergence, self_attention_relations

    ours, theirs, mask = layer_outputs(student, teacher, rows)
    student_relations = self_attention_relations(backbone_of(student), len(ours) - 2, ours[-2], mask)
    teacher_relations = self_attention_relations(backbone_of(teacher), teacher_layer, theirs[teacher_layer], mask)
    pairs = zip(teacher_relations, student_relations, strict=True)
    return float(sum(relation_divergence(t, s, mask) for t, s in pairs))


def test_hidden_state_distillation_pulls_student_layers_to_their_teacher_layers(tmp_path):
    """With IntermediateLayers, the student's layer outputs stay much nearer the mapped teacher layers' than when it
    trains on its targets alone; its one-pass logits are the classifier's own; the teacher's weights do not change."""
    from vbert.model.bert import IntermediateDistiller
    from vbert.model.training import IntermediateLayers
    from vbert.pipeline.distill import student_from_teacher

    keras.utils.set_random_seed(0)
    config = BertConfig(vocab_size=1200, max_position_embeddings=16, **TINY_BERT)
    teacher = build_classifier(config, 2)
    rows = {"train": tiny_rows(12, 0), "eval": tiny_rows(6, 1), "test": tiny_rows(5, 2)}
    labels = {split: np.arange(len(r), dtype=np.int32) % 2 for split, r in rows.items()}
    teacher_weights = [np.array(w) for w in teacher.get_weights()]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    schedule = TrainingSchedule(**{**SCHEDULE.__dict__, "epochs": 3, "learning_rate": 0.01})
    layers = [0]  # a 1-layer student (copied from the teacher's layer 1) learning from the teacher's layer 0
    gaps = {}
    for weight in (0.0, 10.0):
        keras.utils.set_random_seed(1)
        student, _ = student_from_teacher(teacher, config, [1], 2)
        objective = IntermediateLayers(teacher, tuple(layers), weight) if weight else None
        scored = Scored(rows, labels, scripted([0.5, 0.6, 0.7]))
        out = tmp_path / str(weight)
        out.mkdir()
        train_classifier(
            student, loss, rows["train"], labels["train"], scored, schedule, 0, out, name="t", objective=objective
        )
        gaps[weight] = hidden_gap(student, teacher, rows["train"], layers)
        if weight:
            from vbert.model.classifier import padded

            features = padded(rows["test"], np.arange(5))
            distiller = IntermediateDistiller(student, teacher, layers, loss, weight)
            one_pass, _, _ = distiller.logits_and_hidden(features, training=False)
            np.testing.assert_allclose(np.asarray(one_pass), np.asarray(student(features)), atol=1e-5)
    assert gaps[10.0] < 0.5 * gaps[0.0], gaps  # measured: 0.13 against 0.86
    for before, after in zip(teacher_weights, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_self_attention_relations_are_distributions_over_the_real_keys():
    """Identical tokens attend uniformly to the real keys (hand-checkable: 1/3 each for 3 real tokens) and not at all
    to padding; a distribution's divergence from itself is 0, from another one above 0."""
    from vbert.model.bert import build_backbone, relation_divergence, self_attention_relations

    keras.utils.set_random_seed(0)
    backbone = build_backbone(BertConfig(vocab_size=1200, max_position_embeddings=16, **TINY_BERT))
    same = np.tile(np.random.default_rng(0).normal(size=(1, 1, TINY_BERT["hidden_size"])), (2, 5, 1))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32)
    attention, values = self_attention_relations(backbone, 0, same.astype(np.float32), mask)
    heads = TINY_BERT["num_attention_heads"]
    assert attention.shape == values.shape == (2, heads, 5, 5)
    np.testing.assert_allclose(np.asarray(attention)[0], np.tile([1 / 3, 1 / 3, 1 / 3, 0, 0], (heads, 5, 1)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(values)[1], np.full((heads, 5, 5), 1 / 5), atol=1e-6)
    assert float(relation_divergence(attention, attention, mask)) == pytest.approx(0.0, abs=1e-6)
    varied = 30 * np.random.default_rng(1).normal(size=(2, 5, TINY_BERT["hidden_size"])).astype(np.float32)
    other, _ = self_attention_relations(backbone, 0, varied, mask)
    assert float(relation_divergence(other, attention, mask)) > 0.01


def test_attention_distillation_pulls_the_student_s_last_attention_to_the_teacher_s(tmp_path):
    """With attention_weight, the student's last-layer attention and value relations end nearer the teacher's last
    layer's than when it trains on its targets alone (same seed, same data)."""
    from vbert.model.training import IntermediateLayers
    from vbert.pipeline.distill import student_from_teacher

    keras.utils.set_random_seed(0)
    config = BertConfig(vocab_size=1200, max_position_embeddings=16, **TINY_BERT)
    teacher = build_classifier(config, 2)
    rows = {"train": tiny_rows(12, 0), "eval": tiny_rows(6, 1), "test": tiny_rows(5, 2)}
    labels = {split: np.arange(len(r), dtype=np.int32) % 2 for split, r in rows.items()}
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    schedule = TrainingSchedule(**{**SCHEDULE.__dict__, "epochs": 3, "learning_rate": 0.01})
    gaps = {}
    for weight in (0.0, 10.0):
        keras.utils.set_random_seed(1)
        student, _ = student_from_teacher(teacher, config, [0], 2)  # teacher layer 0 as the student's only layer
        objective = IntermediateLayers(teacher, (1,), 0.0, weight) if weight else None  # learning from layer 1
        out = tmp_path / str(weight)
        out.mkdir()
        scored = Scored(rows, labels, scripted([0.5, 0.6, 0.7]))
        train_classifier(
            student, loss, rows["train"], labels["train"], scored, schedule, 0, out, name="t", objective=objective
        )
        gaps[weight] = attention_gap(student, teacher, rows["train"], 1)
    assert gaps[10.0] < 0.5 * gaps[0.0], gaps
