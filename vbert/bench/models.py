"""The models the bench measures, each as a SavedModel (the freeze stage's layout) and OpenVINO IR variants.

`pipeline`: the pipeline's own fine-tuned model (models/serving and models/ir). `bert-base` (12 layers, hidden 768,
as in the paper) and `tiny` (for tests) are built here with random weights: their speed is real, their predictions
mean nothing. They use the pipeline model's vocabulary and labels, and `seq_length` as max_seq_length.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from vbert.model.bert import MODEL_SIZES, BertConfig
from vbert.model.export import SERVING_CONFIG, ServingConfig, export_saved_model, latest_version
from vbert.pipeline.ir import write_version

log = logging.getLogger(__name__)

SIZES = {  # bert-base as the paper's; tiny for tests (smaller than the pretrain stage's tiny, to be quick)
    "bert-base": MODEL_SIZES["base"],
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
}
MODELS = ("pipeline", *SIZES)


@dataclass(frozen=True)
class BenchModel:
    name: str
    saved_model: Path  # a version folder: saved_model.pb, variables/, assets/
    variants: dict[str, Path]  # precision -> OpenVINO model.xml
    config: BertConfig
    serving: ServingConfig
    random_weights: bool

    @property
    def assets(self) -> Path:
        return self.saved_model / "assets"


def pipeline_model(serving_dir: Path, ir_dir: Path) -> BenchModel:
    """The freeze stage's latest version and every variant the ir stage kept (`<ir_dir>/variants/<precision>`)."""
    version_dir = latest_version(serving_dir)
    variants = {p.name: p / "model.xml" for p in sorted((ir_dir / "variants").glob("*")) if (p / "model.xml").exists()}
    if not variants:
        raise FileNotFoundError(f"{ir_dir}/variants: no OpenVINO models; run the ir stage first")
    serving = ServingConfig.from_json(version_dir / "assets" / SERVING_CONFIG)
    return BenchModel(
        "pipeline",
        version_dir,
        variants,
        BertConfig.from_json(version_dir / "assets" / "bert_config.json"),
        serving,
        False,
    )


def random_model(name: str, like: BenchModel, seq_length: int, work_dir: Path, seed: int = 0) -> BenchModel:
    """A classifier of size `name` with random weights, with `like`'s vocabulary and labels, exported to
    `work_dir/<name>/`: SavedModel in `saved_model/1`, IR in `ir/model.xml` (bf16 is the same IR, computed in bf16)."""
    import keras
    import openvino as ov

    from vbert.model.bert import build_classifier

    config = BertConfig(vocab_size=like.config.vocab_size, **SIZES[name])
    serving = ServingConfig(like.serving.labels, seq_length, like.serving.positive_label)
    root = work_dir / name
    shutil.rmtree(root, ignore_errors=True)
    keras.utils.set_random_seed(seed)
    log.info("building %s with random weights (%s)", name, json.dumps(config.to_dict()))
    classifier = build_classifier(config, len(serving.labels), None)
    saved = export_saved_model(classifier, config, serving, like.assets, root / "saved_model" / "1")
    xml = root / "ir" / "model.xml"
    ov.save_model(ov.convert_model(str(saved)), str(xml), compress_to_fp16=False)
    return BenchModel(name, saved, {"fp32": xml, "bf16": xml}, config, serving, True)


def server_folder(model: BenchModel, precision: str, root: Path, model_name: str = "vbert") -> Path:
    """`root/<model>-<precision>/<model_name>/1/` as the ir stage writes it, for the server (files linked, not
    copied); returns `root/<model>-<precision>/<model_name>`."""
    base = root / f"{model.name}-{precision}" / model_name
    shutil.rmtree(base, ignore_errors=True)
    write_version(base / "1", model.variants[precision], model.assets, precision, link=True)
    return base
