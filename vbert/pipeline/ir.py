"""The ir stage: OpenVINO IR variants of the frozen SavedModel, each checked against TensorFlow, the fastest kept.

Variants: `fp32`; `fp16` (weights stored in FP16, computed in FP32); `bf16` (the FP32 IR computed in bfloat16,
where the CPU supports it); `int8` (NNCF's quantisation with accuracy control: calibrated on the task's eval split,
then the layers that cost the most eval F1 are put back in floating point until the eval F1 drop is at most
`max_f1_drop`); `int8-bf16` (that IR with what stays in floating point computed in bfloat16). Each is gated on the
task's test split against the SavedModel: the largest |Δprobability| and the drop in test F1.
`precision: auto` times every variant that passes on this CPU (request batch `timing_batch` at the serving
max_seq_length) and keeps the fastest; a named precision keeps that one.

OpenVINO's CPU plugin computes in bf16 by default where the CPU can, which changes probabilities by ~1e-3; vbert
asks for f32 (`INFERENCE_PRECISION_HINT`) except in the `bf16` variant, and records the hint with the model, so the
server compiles it the same way.

    <out>/<model_name>/<version>/model.xml, model.bin, the assets (vocab.txt, tokenizer_config.json, labels.txt,
                                 serving.json), ir.json
    <out>/variants/<precision>/model.xml, model.bin
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from vbert.core import params as knob
from vbert.core.atomic import atomic_dir
from vbert.core.errors import InputError
from vbert.evaluation.scores import classification_scores, positive_index
from vbert.model.einsum import einsum_as_matmul
from vbert.model.export import SERVING_CONFIG, ServingConfig, latest_version
from vbert.model.ir_folder import compile_config, write_version
from vbert.text.encoding import Encoder
from vbert.text.tasks import read_task, split_file
from vbert.text.tokenization import load_tokenizer

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int8-bf16")
INT8 = ("int8", "int8-bf16")  # one quantised IR, compiled two ways


@dataclass(frozen=True)
class IRJob:
    SECTION: ClassVar[str] = "ir"
    serving_dir: Path  # <base>/<model_name> of the freeze stage
    task_dir: Path
    out_dir: Path
    precision: str = knob.choice(("auto", *PRECISIONS), "auto: the fastest variant that passes the gate")
    calibration_size: int = knob.integer(
        "int8: eval rows NNCF calibrates on (then layers go back to floating point until eval F1 is within "
        "max_f1_drop)",
        min=1,
    )
    max_probability_delta: float = knob.probability("gate against TF on test: largest |probability difference|")
    max_f1_drop: float = knob.probability("gate: test F1 may drop this much at most (int8: eval F1 too)")
    timing_batch: int = knob.integer("auto: requests of this many rows are timed", min=1)
    timing_repeats: int = knob.integer("requests per variant, the variants taking turns", min=1)


def encoded_split(version_dir: Path, task_dir: Path, split: str) -> tuple[dict, np.ndarray, ServingConfig]:
    """A task split encoded for the frozen model (its tokenizer and max_seq_length, padded to it), with label
    indices and the model's serving config."""
    assets = version_dir / "assets"
    serving = ServingConfig.from_json(assets / SERVING_CONFIG)
    splits, _ = read_task(task_dir)
    unknown = sorted(set(splits[split].labels) - set(serving.labels))
    if unknown:
        raise InputError(f"{split_file(task_dir, split)}: labels the model does not know: {', '.join(unknown)}")
    encoder = Encoder(load_tokenizer(assets), serving.max_seq_length)
    features = encoder.encode_items(splits[split].items(), pad_to=serving.max_seq_length).features
    labels = np.array([serving.labels.index(label) for label in splits[split].labels], np.int32)
    return features, labels, serving


def task_f1(serving: ServingConfig, gold: np.ndarray, probabilities: np.ndarray) -> float:
    """The F1 the finetune stage reports: of the positive label for a binary task, else macro over classes."""
    positive = positive_index(serving.labels, serving.positive_label)
    return classification_scores(gold, probabilities.argmax(-1), len(serving.labels), positive=positive)["f1"]


def batches(features: dict, size: int):
    n = len(features["input_ids"])
    for start in range(0, n, size):
        yield {k: v[start : start + size] for k, v in features.items()}


def tensorflow_probabilities(version_dir: Path, features: dict) -> np.ndarray:
    import tensorflow as tf

    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    return np.concatenate([serve(**batch)["probabilities"].numpy() for batch in batches(features, 64)])


def openvino_probabilities(compiled, features: dict) -> np.ndarray:
    return np.concatenate([compiled(batch)["probabilities"] for batch in batches(features, 64)])


def quantise(model, calibration: dict, validation: tuple[dict, np.ndarray], serving: ServingConfig, job: IRJob):
    """NNCF's int8 quantisation with accuracy control: calibrated on `calibration_size` rows, then layers are
    reverted to floating point, most harmful first, until the F1 on `validation` drops by at most `max_f1_drop`."""
    import nncf

    calibration_items = list(batches({k: v[: job.calibration_size] for k, v in calibration.items()}, 1))
    features, labels = validation
    starts = range(0, len(labels), 32)
    validation_items = [(batch, labels[i : i + 32]) for i, batch in zip(starts, batches(features, 32), strict=True)]

    def validate(compiled, items) -> tuple[float, None]:
        items = list(items)
        probabilities = np.concatenate([compiled(batch)["probabilities"] for batch, _ in items])
        return task_f1(serving, np.concatenate([gold for _, gold in items]), probabilities), None

    return nncf.quantize_with_accuracy_control(
        model,
        nncf.Dataset(calibration_items),
        nncf.Dataset(validation_items, lambda item: item[0]),
        validate,
        max_drop=job.max_f1_drop,
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calibration_items),
    )


def seconds_per_request(compiled: dict, features: dict, batch: int, repeats: int) -> dict[str, float]:
    """Per variant, the median wall time of one request of `batch` rows. The variants take turns, request by
    request (after one warm-up each), so that a change in the machine's load falls on all of them alike."""
    request = {k: v[:batch] for k, v in features.items()}
    times: dict[str, list[float]] = {name: [] for name in compiled}
    for model in compiled.values():
        model(request)
    for _ in range(repeats):
        for name, model in compiled.items():
            started = time.perf_counter()
            model(request)
            times[name].append(time.perf_counter() - started)
    return {name: float(np.median(values)) for name, values in times.items()}


def build_ir(job: IRJob) -> dict:
    """Convert, quantise, gate and time the variants; write the chosen one; returns the stage metrics."""
    import openvino as ov

    version_dir = latest_version(job.serving_dir)
    test_x, test_y, serving = encoded_split(version_dir, job.task_dir, "test")
    eval_x, eval_y, _ = encoded_split(version_dir, job.task_dir, "eval")
    reference = tensorflow_probabilities(version_dir, test_x)
    reference_f1 = task_f1(serving, test_y, reference)
    model = ov.convert_model(str(version_dir))
    einsum_as_matmul(model)  # so that NNCF quantises the attention projections too
    core = ov.Core()
    wanted = PRECISIONS if job.precision == "auto" else (job.precision,)
    results: dict[str, dict] = {}
    compiled_variants = {}
    with atomic_dir(job.out_dir) as tmp:
        quantised = None
        for precision in wanted:
            if precision in INT8 and quantised is None:
                quantised = quantise(model, eval_x, (eval_x, eval_y), serving, job)
            path = tmp / "variants" / precision / "model.xml"
            ov.save_model(quantised if precision in INT8 else model, str(path), compress_to_fp16=precision == "fp16")
            compiled = core.compile_model(str(path), "CPU", compile_config(precision))
            probabilities = openvino_probabilities(compiled, test_x)
            f1 = task_f1(serving, test_y, probabilities)
            delta = float(np.abs(probabilities - reference).max())
            results[precision] = {
                "max_probability_delta": round(delta, 6),
                "test_f1": round(f1, 6),
                "f1_drop": round(reference_f1 - f1, 6),
                "passes": delta <= job.max_probability_delta and reference_f1 - f1 <= job.max_f1_drop,
                "size_mb": round(path.with_suffix(".bin").stat().st_size / 1e6, 2),
            }
            compiled_variants[precision] = compiled
        timings = seconds_per_request(compiled_variants, test_x, job.timing_batch, job.timing_repeats)
        for precision, seconds in timings.items():
            results[precision]["ms_per_request"] = round(1000 * seconds, 3)
            log.info("%s: %s", precision, results[precision])
        chosen = choose(results, job.precision)
        target = tmp / version_dir.parent.name / version_dir.name
        write_version(target, tmp / "variants" / chosen / "model.xml", version_dir / "assets", chosen)
    return {"chosen": chosen, "tensorflow_test_f1": round(reference_f1, 6), "variants": results}


def choose(results: dict[str, dict], precision: str) -> str:
    """`precision` if named and it passes the gate; with `auto`, the fastest variant that passes."""
    passing = {p: r for p, r in results.items() if r["passes"]}
    if not passing:
        raise InputError(f"no OpenVINO variant passes the accuracy gate against TensorFlow: {json.dumps(results)}")
    if precision != "auto" and precision not in passing:
        raise InputError(f"precision {precision} fails the accuracy gate: {results[precision]}")
    return min(passing, key=lambda p: passing[p]["ms_per_request"])
