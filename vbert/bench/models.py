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

from vbert.bench.report import PIPELINE_MODEL
from vbert.model.bert import MODEL_SIZES, BertConfig
from vbert.model.einsum import einsum_as_matmul
from vbert.model.export import SERVING_CONFIG, ServingConfig, export_saved_model, latest_version
from vbert.model.ir_folder import write_version

log = logging.getLogger(__name__)

SIZES = {  # bert-base as the paper's; tiny for tests (smaller than the pretrain stage's tiny, to be quick)
    "bert-base": MODEL_SIZES["base"],
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
}
MODELS = (PIPELINE_MODEL, *SIZES)


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
        PIPELINE_MODEL,
        version_dir,
        variants,
        BertConfig.from_json(version_dir / "assets" / "bert_config.json"),
        serving,
        False,
    )


def random_model(
    name: str, like: BenchModel, seq_length: int, work_dir: Path, calibration: list | None = None, seed: int = 0
) -> BenchModel:
    """A classifier of size `name` with random weights, with `like`'s vocabulary and labels, exported to
    `work_dir/<name>/`: SavedModel in `saved_model/1`, IR in `ir/model.xml` (bf16 is the same IR, computed in bf16);
    with `calibration` (texts or pairs), also NNCF's int8 IR in `ir-int8/model.xml`, calibrated on them (int8 and
    int8-bf16: for speed, as the random weights' answers mean nothing)."""
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
    converted = ov.convert_model(str(saved))
    einsum_as_matmul(converted)  # as the ir stage does, so that NNCF quantises the attention projections
    ov.save_model(converted, str(xml), compress_to_fp16=False)
    variants = {"fp32": xml, "bf16": xml}
    if calibration:
        int8 = root / "ir-int8" / "model.xml"
        ov.save_model(quantised(converted, like, seq_length, calibration), str(int8), compress_to_fp16=False)
        variants |= {"int8": int8, "int8-bf16": int8}
    return BenchModel(name, saved, variants, config, serving, True)


def quantised(model, like: BenchModel, seq_length: int, calibration: list):
    """NNCF's int8 quantisation of `model`, calibrated on `calibration` encoded with `like`'s tokenizer."""
    import nncf

    from vbert.text.encoding import Encoder
    from vbert.text.tokenization import load_tokenizer

    encoder = Encoder(load_tokenizer(like.assets), seq_length)
    items = [encoder.encode_items([item]).features for item in calibration]
    log.info("quantising with NNCF on %d texts", len(items))
    return nncf.quantize(model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items))


def server_folder(model: BenchModel, precision: str, root: Path, model_name: str = "vbert") -> Path:
    """`root/<model>-<precision>/<model_name>/1/` as the ir stage writes it, for the server (files linked, not
    copied); returns `root/<model>-<precision>/<model_name>`."""
    base = root / f"{model.name}-{precision}" / model_name
    shutil.rmtree(base, ignore_errors=True)
    write_version(base / "1", model.variants[precision], model.assets, precision, link=True)
    return base
