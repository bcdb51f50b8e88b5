"""The OpenVINO IR version folder, as the ir stage writes it and the server and the bench read it: its one owner.

    <base>/<model_name>/<version>/
        model.xml, model.bin                 the IR of the chosen variant
        vocab.txt, tokenizer_config.json,    the SavedModel's assets (vbert.model.export), carried unchanged
        labels.txt, serving.json, bert_config.json
        ir.json                              {"precision", "compile_config" (OpenVINO's hints), "inputs"}

A folder without ir.json (an IR made by hand) is served in fp32.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vbert.core.atomic import write_json
from vbert.core.errors import InputError
from vbert.model.export import ASSET_FILES
from vbert.text.encoding import INPUT_NAMES

SETTINGS_FILE = "ir.json"
FP32_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}
BF16_CONFIG = {"INFERENCE_PRECISION_HINT": "bf16"}  # computed in bfloat16 where the CPU has it (AVX512_BF16, AMX)


def compile_config(precision: str) -> dict[str, str]:
    """OpenVINO's compile hints for a variant: bf16 compute for bf16 and int8-bf16, f32 for the others."""
    return BF16_CONFIG if precision in ("bf16", "int8-bf16") else FP32_CONFIG


@dataclass(frozen=True)
class IRSettings:
    precision: str
    compile_config: dict[str, str]


def write_version(target: Path, xml: Path, assets: Path, precision: str, link: bool = False) -> None:
    """A version folder: the IR (model.xml, model.bin), the SavedModel's assets and ir.json. `link` hard-links the
    files where the file system allows, instead of copying them."""
    target.mkdir(parents=True)
    sources = {"model.xml": xml, "model.bin": xml.with_suffix(".bin")}
    sources.update({name: assets / name for name in ASSET_FILES})
    for name, source in sources.items():
        if link:
            try:
                os.link(source, target / name)
                continue
            except OSError:
                pass
        shutil.copy(source, target / name)
    settings = {"precision": precision, "compile_config": compile_config(precision), "inputs": INPUT_NAMES}
    write_json(target / SETTINGS_FILE, settings)


def read_settings(version_dir: Path) -> IRSettings:
    """The precision and compile hints a version folder was written with (fp32 for a folder without ir.json)."""
    path = version_dir / SETTINGS_FILE
    if not path.exists():
        return IRSettings("fp32", dict(FP32_CONFIG))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return IRSettings(data["precision"], dict(data["compile_config"]))
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not the ir stage's settings ({type(error).__name__}: {error})") from error


def model_xml(version_dir: Path) -> Path:
    xml = version_dir / "model.xml"
    if not xml.exists():
        raise InputError(f"{version_dir}: no model.xml (the ir stage's output)")
    return xml
