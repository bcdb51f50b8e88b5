"""The freeze stage: the model to ship (the finetune stage's best, the teacher, or the distill stage's student) as a
TF SavedModel in TF-Serving's layout (`vbert.model.export`), checked against the Keras model it came from; and as
Hugging Face folders (`vbert.model.huggingface`): the shipped classifier, and the domain-adapted encoder with its
MLM head from the pretraining checkpoint the teacher was fine-tuned from."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from vbert.core import params as knob
from vbert.core.atomic import atomic_dir
from vbert.core.errors import InputError
from vbert.model.classifier import SELECTION_FILE, load_finetuned, read_selection
from vbert.model.export import export_saved_model, random_inputs

log = logging.getLogger(__name__)

SHIP = ("auto", "teacher", "student")


@dataclass(frozen=True)
class FreezeJob:
    SECTION: ClassVar[str] = "freeze"
    teacher_dir: Path  # the finetune stage's best/
    student_dir: Path  # the distill stage's best/
    pretrain_dir: Path
    out_dir: Path  # served models' base: <out>/<model_name>/<version>/
    hf_dir: Path
    teacher_out_dir: Path  # the teacher's SavedModel base (the bench's "paper's way" model)
    ship: str = knob.choice(
        SHIP, "auto: the student when its eval F1 is, beyond the eval split's noise, at most max_eval_f1_drop worse"
    )
    max_eval_f1_drop: float = knob.probability("auto: the most eval F1 the student may lose (95% interval's low end)")
    model_name: str = knob.text("TF-Serving layout: models/serving/<model_name>/<version>/", empty=False)
    version: int = knob.integer("the version folder", min=1)

    def problems(self) -> Iterator[tuple[str, str]]:
        if "/" in self.model_name:
            yield "model_name", "must be a name without '/'"


def run_freeze(job: FreezeJob) -> dict:
    """Ship the chosen model (and the teacher beside it, for the bench); returns the stage metrics."""
    shipped, choice = choose_shipped(job.ship, job.teacher_dir, job.student_dir, job.max_eval_f1_drop)
    frozen = freeze(shipped, job.out_dir / job.model_name, job.version, job.pretrain_dir, job.hf_dir)
    version_dir = job.out_dir / job.model_name / str(job.version)
    shipped_teacher = (version_dir, frozen) if choice["shipped"] == "teacher" else None
    teacher = freeze_teacher(job.teacher_dir, job.teacher_out_dir / job.model_name, job.version, shipped_teacher)
    teacher_keys = ("num_hidden_layers", "weights_mb", "max_logit_difference_to_keras")
    return {**choice, **frozen, "teacher": {k: teacher[k] for k in teacher_keys}}


def choose_shipped(ship: str, teacher_dir: Path, student_dir: Path, max_eval_f1_drop: float) -> tuple[Path, dict]:
    """The folder to ship and why: `teacher`, `student`, or `auto`: the student when the paired-bootstrap 95%
    interval of its eval F1 minus its teacher's (the distill stage's) lies above -max_eval_f1_drop, so that a
    student ships only when it is, beyond the noise of the eval split, at most that much worse."""
    if ship == "teacher":
        return teacher_dir, {"shipped": "teacher", "why": "freeze.ship: teacher"}
    if not (student_dir / SELECTION_FILE).exists():
        raise InputError(
            f"{student_dir / SELECTION_FILE}: missing; run the distill stage first (or set freeze.ship: teacher)"
        )
    distilled = read_selection(student_dir)["distilled"]
    if ship == "student":
        return student_dir, {"shipped": "student", "why": "freeze.ship: student"}
    if "eval_minus_teacher" not in distilled:
        raise InputError(f"{student_dir / SELECTION_FILE}: made by an older distill stage; run it again")
    difference, (low, high) = distilled["eval_minus_teacher"]["difference"], distilled["eval_minus_teacher"]["ci95"]
    chosen = "student" if low >= -max_eval_f1_drop else "teacher"
    why = (
        f"auto: student eval F1 {distilled['eval_f1']:.4f}, teacher {distilled['teacher_eval_f1']:.4f}; difference "
        f"{difference:+.4f}, 95% interval [{low:+.4f}, {high:+.4f}] {'within' if chosen == 'student' else 'past'} "
        f"the allowed drop of {max_eval_f1_drop}"
    )
    return (student_dir if chosen == "student" else teacher_dir), {"shipped": chosen, "why": why}


def max_difference_to_keras(model, loaded, seq: int, vocab_size: int) -> float:
    """Max |logit difference| between the Keras model and a loaded SavedModel on random inputs."""
    inputs = random_inputs(4, seq, vocab_size)
    expected = np.asarray(model(inputs, training=False))
    served = loaded.signatures["serving_default"](**inputs)
    return float(np.abs(served["logits"].numpy() - expected).max())


def export_hugging_face(model, config, serving, best_dir: Path, pretrain_dir: Path, hf_dir: Path) -> dict:
    """`hf_dir/classifier` (BertForSequenceClassification) and `hf_dir/masked_lm` (BertForMaskedLM, from the
    pretraining checkpoint the best model, or a student's teacher, was fine-tuned from)."""
    from vbert.model.bert import BertConfig, build_pretrainer
    from vbert.model.checkpoints import pretraining_cells, restore_checkpoint
    from vbert.model.huggingface import export_classifier, export_masked_lm

    chosen = read_selection(best_dir)["cell"]
    cells = {cell.name: cell for cell in pretraining_cells(pretrain_dir, "all")}
    if chosen not in cells:
        raise InputError(f"{pretrain_dir}: no checkpoint {chosen!r}, which {best_dir} was fine-tuned from")
    pretrainer_config = BertConfig.from_json(cells[chosen].folder / "bert_config.json")  # the teacher's size
    pretrainer = build_pretrainer(pretrainer_config)
    restore_checkpoint(cells[chosen].checkpoint, pretrainer)
    export_masked_lm(pretrainer, pretrainer_config, cells[chosen].folder, hf_dir / "masked_lm")
    export_classifier(model, config, serving.labels, best_dir, hf_dir / "classifier")
    log.info("Hugging Face folders: %s/masked_lm (from %s), %s/classifier", hf_dir, chosen, hf_dir)
    return {"hugging_face": {"masked_lm_from": chosen, "folders": ["masked_lm", "classifier"]}}


def freeze(
    best_dir: Path, model_dir: Path, version: int, pretrain_dir: Path | None = None, hf_dir: Path | None = None
) -> dict:
    """Write `model_dir/<version>/` from a fine-tuned (or distilled) model's folder (and the Hugging Face folders when
    `hf_dir` is given); returns the stage metrics."""
    import tensorflow as tf

    model, config, serving = load_finetuned(best_dir)
    exported = export_hugging_face(model, config, serving, best_dir, pretrain_dir, hf_dir) if hf_dir else {}
    version_dir = model_dir / str(version)
    export_saved_model(model, config, serving, best_dir, version_dir)
    weight_bytes = sum(int(np.prod(v.shape)) * 4 for v in model.weights)
    saved_bytes = sum(p.stat().st_size for p in (version_dir / "variables").iterdir())
    check = max_difference_to_keras(
        model, tf.saved_model.load(str(version_dir)), serving.max_seq_length, config.vocab_size
    )
    log.info(
        "SavedModel %s: variables %.1f MB (weights %.1f MB), max |Δlogit| vs Keras %.2e",
        version_dir,
        saved_bytes / 1e6,
        weight_bytes / 1e6,
        check,
    )
    return {
        "model_name": model_dir.name,
        "version": version,
        "num_hidden_layers": config.num_hidden_layers,
        "labels": len(serving.labels),
        "max_seq_length": serving.max_seq_length,
        "weights_mb": round(weight_bytes / 1e6, 2),
        "variables_mb": round(saved_bytes / 1e6, 2),
        "max_logit_difference_to_keras": float(check),
        **exported,
    }


def freeze_teacher(
    teacher_dir: Path, teacher_model_dir: Path, version: int, shipped_teacher: tuple[Path, dict] | None = None
) -> dict:
    """The teacher's SavedModel in `teacher_model_dir/<version>/` (the bench's paper's-way model) and its freeze
    metrics. `shipped_teacher`: (version folder, metrics) of the teacher's export when freeze just shipped the teacher:
    copied rather than exported a second time."""
    if shipped_teacher is None:
        return freeze(teacher_dir, teacher_model_dir, version)
    version_dir, metrics = shipped_teacher
    with atomic_dir(teacher_model_dir / str(version)) as tmp:
        shutil.copytree(version_dir, tmp, dirs_exist_ok=True)
    return metrics
