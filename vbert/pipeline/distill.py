"""The distill stage: a smaller student learns the fine-tuned teacher's answers (task-specific distillation).

    student   the teacher's embeddings, pooler and classifier, and `student_layers` of its transformer layers, evenly
              spaced and ending with the last (6 -> 3 keeps layers 1, 3, 5; 12 -> 4 keeps 2, 5, 8, 11)
    texts     the task's train split (labelled) plus unlabelled in-domain texts cut from the cleaned corpus, runs of
              consecutive sentences of about the length of the task's texts, plus `augmented_texts` made from the
              train texts (words dropped, or two texts' halves joined: Tang et al. 2019, TinyBERT), unlabelled
    targets   the teacher's logits on every text, computed once
    loss      soft_weight * T^2 * cross-entropy(softmax(teacher / T), softmax(student / T))
              + (1 - soft_weight) * cross-entropy(label, student) on the labelled rows (Hinton et al., 2015)
              + hidden_state_weight * mean squared difference of student layer j's output from that of the teacher
              layer it was copied from, over real tokens (TinyBERT's hidden-state loss; the teacher runs each step)
              + attention_weight * KL divergence of the student's last-layer attention distributions and value
              relations from the teacher's last layer's (MiniLM's self-attention distillation)

Each seed trains for up to `epochs` epochs and keeps its epoch with the best eval F1; `best/` holds the seed with
the best eval F1, in the finetune stage's `best/` format, so freeze can ship it instead of the teacher. The metrics
set the student beside its teacher: test F1 (mean and spread over seeds, and a paired bootstrap against the
teacher), parameters, and FLOPs per sequence at the task's real lengths; and the kept epochs' training losses, each
part apart (task_loss: soft targets and labels; hidden_state_loss, attention_loss), so a run shows what each part did.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from vbert.core import params as knob
from vbert.core.atomic import atomic_dir, write_json
from vbert.core.errors import InputError
from vbert.core.provenance import SETTINGS_FILE
from vbert.evaluation.scores import classification_scores, positive_index, spread
from vbert.evaluation.significance import paired_bootstrap
from vbert.model.bert import BertConfig, backbone_of, classifier_flops
from vbert.model.classifier import load_finetuned, logits, predict, read_selection, write_finetuned
from vbert.model.export import SERVING_CONFIG, ServingConfig
from vbert.model.training import Scored, TrainingSchedule, best_epoch, train_classifier
from vbert.text.corpus import CorpusReader
from vbert.text.encoding import Encoder, Row
from vbert.text.tasks import read_task
from vbert.text.tokenization import load_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillJob:
    SECTION: ClassVar[str] = "distill"
    teacher_dir: Path  # the finetune stage's best/
    corpus: Path  # the vnlp stage's corpus.txt: the unlabelled texts come from it
    task_dir: Path
    out_dir: Path
    student_layers: int = knob.integer(
        "the student keeps this many of the teacher's layers, evenly spaced, ending with the last", min=1
    )
    temperature: float = knob.number("softens both models' probabilities in the soft loss", min=0, min_open=True)
    soft_weight: float = knob.probability("loss = w * T^2 * soft cross-entropy + (1 - w) * label cross-entropy")
    unlabelled_texts: int = knob.integer("in-domain corpus texts labelled by the teacher (0: train split only)", min=0)
    augmented_texts: int = knob.integer(
        "texts made from the train split (words dropped, halves joined), labelled by the teacher", min=0
    )
    hidden_state_weight: float = knob.number(
        "> 0: add this weight x the mean squared difference of each student layer's output from its teacher "
        "layer's (intermediate-layer distillation, TinyBERT); 0: soft targets only",
        min=0,
    )
    attention_weight: float = knob.number(
        "> 0: add this weight x the KL divergence of the student's last-layer self-attention distributions and value "
        "relations from the teacher's last layer's (MiniLM's self-attention distillation); 0: none",
        min=0,
    )
    seeds: tuple[int, ...] = knob.integers("each student is trained once per seed", min=0, distinct=True)
    training: TrainingSchedule = knob.nested()  # epochs, learning_rate, batch sizes, warm-up, mixed_precision


# ---- the student -------------------------------------------------------------------------------------------


def kept_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """The teacher's layers the student starts from: evenly spaced, the last always among them."""
    if not 1 <= student_layers <= teacher_layers:
        raise InputError(f"student_layers {student_layers}: must be in [1, {teacher_layers}] (the teacher's layers)")
    return [round((j + 1) * teacher_layers / student_layers) - 1 for j in range(student_layers)]


def student_from_teacher(teacher, teacher_config: BertConfig, layers: list[int], num_labels: int):
    """A classifier with `len(layers)` transformer layers, every weight copied from the teacher's (layer j of the
    student from the teacher's layer `layers[j]`)."""
    from vbert.model.bert import build_classifier
    from vbert.model.weights import google_variable_map

    config = replace(teacher_config, num_hidden_layers=len(layers))
    student = build_classifier(config, num_labels)
    source = google_variable_map(teacher_config, backbone_of(teacher))
    for name, variable in google_variable_map(config, backbone_of(student)).items():
        for j, i in enumerate(layers):
            if name.startswith(f"bert/encoder/layer_{j}/"):
                name = name.replace(f"bert/encoder/layer_{j}/", f"bert/encoder/layer_{i}/", 1)
                break
        variable.assign(source[name])
    student.get_layer("classifier").set_weights(teacher.get_layer("classifier").get_weights())
    return student, config


def parameter_count(model) -> int:
    return int(sum(np.prod(v.shape) for v in model.weights))


def student_parameter_count(teacher, teacher_config: BertConfig, layers: list[int]) -> int:
    """The parameters of the student keeping `layers`: the teacher's, less those of the layers it drops."""
    from vbert.model.weights import google_variable_map

    dropped = tuple(f"bert/encoder/layer_{i}/" for i in range(teacher_config.num_hidden_layers) if i not in layers)
    variables = google_variable_map(teacher_config, backbone_of(teacher)).items()
    return parameter_count(teacher) - int(sum(np.prod(v.shape) for name, v in variables if name.startswith(dropped)))


def mean_flops(config: BertConfig, rows: list[Row], num_labels: int) -> float:
    """FLOPs per sequence averaged over `rows` at their own lengths (what serving without padding costs)."""
    return float(np.mean([classifier_flops(config, len(row.ids), num_labels) for row in rows]))


# ---- the texts ---------------------------------------------------------------------------------------------


def unlabelled_texts(corpus: Path, words_per_text: int, count: int, seed: int) -> list[str]:
    """Up to `count` texts drawn at random from `corpus`: runs of consecutive sentences of one document, each run
    ending once it holds `words_per_text` words (or its document ends): `vbert.data.selection.passages`."""
    from vbert.data.selection import passages

    texts = [passage.text for passage in passages(CorpusReader([corpus]), words_per_text)]
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(texts))[:count]
    return [texts[i] for i in sorted(chosen)]


AUGMENT_WORD_DROP = 0.1


def augmented_texts(texts: list[str], count: int, seed: int) -> list[str]:
    """`count` new texts made from `texts` (the train split's) for the teacher to label: in turn, one text with each
    word dropped with probability AUGMENT_WORD_DROP (one word at least kept), and one text's words up to a random cut
    followed by another's from a random cut (the teacher's answers between classes)."""
    pool = [words for words in (text.split() for text in texts) if words]
    if count and not pool:
        raise InputError("augmented_texts: the train split has no words to make texts from")
    rng = np.random.default_rng(seed)
    made = []
    for k in range(count):
        words = pool[rng.integers(len(pool))]
        if k % 2 == 0:
            kept = [w for w in words if rng.random() >= AUGMENT_WORD_DROP] or words[:1]
        else:
            other = pool[rng.integers(len(pool))]
            kept = words[: rng.integers(1, len(words) + 1)] + other[rng.integers(len(other)) :]
        made.append(" ".join(kept))
    return made


# ---- training ----------------------------------------------------------------------------------------------


def distillation_loss(temperature: float, soft_weight: float):
    """A Keras loss over targets [label (-1: unlabelled), teacher logits...] and the student's logits."""
    import keras
    from keras import ops

    def loss(targets, student_logits):
        student_logits = ops.cast(student_logits, "float32")
        labels, teacher_logits = ops.cast(targets[:, 0], "int32"), targets[:, 1:]
        soft_targets = ops.softmax(teacher_logits / temperature, axis=-1)
        soft = -ops.sum(soft_targets * ops.log_softmax(student_logits / temperature, axis=-1), axis=-1)
        labelled = ops.cast(labels >= 0, "float32")
        hard = keras.losses.sparse_categorical_crossentropy(ops.maximum(labels, 0), student_logits, from_logits=True)
        return soft_weight * temperature**2 * soft + (1.0 - soft_weight) * hard * labelled

    return loss


def train_student(job: DistillJob, teacher, teacher_config, layers, data: dict, seed: int, out: Path) -> list[dict]:
    """One seed: epochs on (train + unlabelled) with the teacher's targets (vbert.model.training); the best eval
    epoch's weights and test predictions are written to `out`. Returns a row per epoch."""
    import keras

    keras.utils.set_random_seed(seed)
    from vbert.model.training import IntermediateLayers

    student, _ = student_from_teacher(teacher, teacher_config, layers, data["num_labels"])
    intermediate = None
    if job.hidden_state_weight or job.attention_weight:
        intermediate = IntermediateLayers(teacher, tuple(layers), job.hidden_state_weight, job.attention_weight)
    history = train_classifier(
        student,
        distillation_loss(job.temperature, job.soft_weight),
        data["train_rows"],
        data["targets"],
        Scored(data["rows"], data["labels"], data["score"]),
        job.training,
        seed,
        out,
        name=f"student seed {seed}",
        objective=intermediate,
    )
    return [{"seed": seed, **row} for row in history]


def _task_data(job: DistillJob, teacher, serving: ServingConfig) -> dict:
    """The encoded splits, the unlabelled texts, and the teacher's targets for train + unlabelled."""
    splits, names = read_task(job.task_dir)
    if names != serving.labels:
        raise InputError(f"{job.task_dir}: labels {names} differ from the teacher's {serving.labels}")
    encoder = Encoder(load_tokenizer(job.teacher_dir), serving.max_seq_length)
    index = {label: i for i, label in enumerate(names)}
    rows = {name: encoder.rows(split.texts_a, split.texts_b)[0] for name, split in splits.items()}
    labels = {name: np.array([index[x] for x in split.labels], np.int32) for name, split in splits.items()}
    words = int(np.median([len(text.split()) for text in splits["train"].texts_a]))
    if job.augmented_texts and splits["train"].texts_b is not None:
        raise InputError(f"{job.task_dir}: augmented_texts works on single-text tasks, this one has text pairs: set 0")
    corpus_texts = unlabelled_texts(job.corpus, words, job.unlabelled_texts, job.seeds[0])
    made = augmented_texts(splits["train"].texts_a, job.augmented_texts, job.seeds[0])
    extra_rows = encoder.rows(corpus_texts + made)[0] if corpus_texts or made else []
    train_rows = rows["train"] + extra_rows
    started = time.perf_counter()
    teacher_logits = logits(teacher, train_rows, job.training.eval_batch_size)
    log.info(
        "teacher targets for %d labelled + %d corpus (~%d words each) + %d augmented texts in %.0f s",
        len(rows["train"]),
        len(corpus_texts),
        words,
        len(made),
        time.perf_counter() - started,
    )
    gold = np.concatenate([labels["train"], np.full(len(extra_rows), -1, np.int32)])
    positive = positive_index(names, serving.positive_label)
    return {
        "rows": rows,
        "labels": labels,
        "train_rows": train_rows,
        "targets": np.concatenate([gold[:, None].astype(np.float32), teacher_logits], axis=1),
        "num_labels": len(names),
        "unlabelled": len(corpus_texts),
        "augmented": len(made),
        "words_per_text": words,
        "score": lambda g, p: classification_scores(g, p, len(names), positive=positive),
    }


def distill(job: DistillJob) -> dict:
    """Distil the teacher into a student for every seed; write `best/`; returns the stage metrics."""
    from vbert.model.precision import computing_in

    with computing_in(job.training.mixed_precision):
        teacher, teacher_config, serving = load_finetuned(job.teacher_dir)
        layers = kept_layers(teacher_config.num_hidden_layers, job.student_layers)
        data = _task_data(job, teacher, serving)
        teacher_predictions = {
            split: predict(teacher, data["rows"][split], job.training.eval_batch_size) for split in ("eval", "test")
        }
        runs: dict[int, list[dict]] = {}
        for seed in job.seeds:
            with atomic_dir(job.out_dir / "seeds" / f"seed-{seed}") as tmp:
                runs[seed] = train_student(job, teacher, teacher_config, layers, data, seed, tmp)
                write_json(tmp / "history.json", runs[seed])
    student_config = replace(teacher_config, num_hidden_layers=len(layers))
    kept = {seed: best_epoch(history) for seed, history in runs.items()}
    best_seed = max(kept, key=lambda s: (kept[s]["eval_f1"], -s))
    teacher_scores = {
        split: data["score"](data["labels"][split], teacher_predictions[split])["f1"] for split in ("eval", "test")
    }
    selection = read_selection(job.teacher_dir)
    f1 = lambda g, p: data["score"](g, p)["f1"]  # noqa: E731
    with computing_in(job.training.mixed_precision):
        student_eval = kept_student_predictions(job, teacher, teacher_config, layers, data, best_seed, "eval")
    eval_difference = paired_bootstrap(data["labels"]["eval"], [student_eval], [teacher_predictions["eval"]], f1)
    distilled = {
        "student_layers": layers,
        "seed": best_seed,
        "epoch": kept[best_seed]["epoch"],
        "eval_f1": kept[best_seed]["eval_f1"],
        "test_f1": kept[best_seed]["test_f1"],
        "teacher_eval_f1": teacher_scores["eval"],
        "teacher_test_f1": teacher_scores["test"],
        "eval_minus_teacher": {k: eval_difference[k] for k in ("difference", "ci95")},
    }
    _write_best(job, student_config, best_seed, {**selection, "distilled": distilled})
    test_rows = data["rows"]["test"]
    teacher_flops = mean_flops(teacher_config, test_rows, data["num_labels"])
    student_flops = mean_flops(student_config, test_rows, data["num_labels"])
    return {
        "student_layers": len(layers),
        "teacher_layers": teacher_config.num_hidden_layers,
        "layers_kept": layers,
        "unlabelled_texts": data["unlabelled"],
        "augmented_texts": data["augmented"],
        "words_per_unlabelled_text": data["words_per_text"],
        "seeds": list(job.seeds),
        "best_seed": best_seed,
        "student_test_f1": spread([kept[s]["test_f1"] for s in job.seeds]),
        "student_train_losses": {  # the kept epochs' mean losses: soft targets and labels, and each layer loss
            name: round(float(np.mean([kept[s][name] for s in job.seeds])), 5)
            for name in kept[best_seed]
            if name.startswith("train_") and name.endswith("loss")
        },
        "student_eval_f1": spread([kept[s]["eval_f1"] for s in job.seeds]),
        "teacher_test_f1": round(teacher_scores["test"], 6),
        "teacher_eval_f1": round(teacher_scores["eval"], 6),
        "student_minus_teacher_eval": eval_difference,
        "student_minus_teacher": paired_bootstrap(
            data["labels"]["test"],
            [np.load(job.out_dir / "seeds" / f"seed-{s}" / "test_predictions.npy") for s in job.seeds],
            [teacher_predictions["test"]],
            f1,
        ),
        "teacher_parameters": parameter_count(teacher),
        "student_parameters": student_parameter_count(teacher, teacher_config, layers),
        "teacher_flops_per_sequence": round(teacher_flops),
        "student_flops_per_sequence": round(student_flops),
        "flops_ratio": round(teacher_flops / student_flops, 2),
        "mean_test_length": round(float(np.mean([len(row.ids) for row in test_rows])), 1),
    }


def kept_student_predictions(job: DistillJob, teacher, teacher_config, layers, data: dict, seed: int, split: str):
    """The class predictions on `split` of the student that seed `seed` kept (its best eval epoch's weights)."""
    from vbert.model.checkpoints import restore_checkpoint

    student, _ = student_from_teacher(teacher, teacher_config, layers, data["num_labels"])
    restore_checkpoint(job.out_dir / "seeds" / f"seed-{seed}", student)
    return predict(student, data["rows"][split], job.training.eval_batch_size)


def _write_best(job: DistillJob, config: BertConfig, seed: int, selection: dict) -> None:
    write_finetuned(
        job.out_dir / "best",
        job.out_dir / "seeds" / f"seed-{seed}" / "variables.npz",
        config,
        job.teacher_dir,
        ServingConfig.from_json(job.teacher_dir / SERVING_CONFIG),
        selection,
        job.teacher_dir / SETTINGS_FILE,
    )
