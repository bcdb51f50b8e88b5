"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


# google-research/bert create_pretraining_data.py's flag defaults: the reference behaviour the data tests check.
GOOGLE_FLAGS = {
    "max_seq_length": 128,
    "max_predictions_per_seq": 20,
    "masked_lm_prob": 0.15,
    "short_seq_prob": 0.1,
    "dupe_factor": 10,
    "do_whole_word_mask": False,
    "exact_google_rng": False,
}


def google_flags(**changes):
    """An InstanceConfig with Google's defaults, then `changes`."""
    from vbert.data.instances import InstanceConfig

    return InstanceConfig(**{**GOOGLE_FLAGS, **changes})


def repo_params() -> dict:
    """The repository's params.yaml: the one place defaults live."""
    from vbert.core.params import ParamsFile

    return ParamsFile.load(REPO / "params.yaml").data


def params_section(name: str) -> dict:
    """Section `name` of the repository's params.yaml."""
    return repo_params()[name]


def from_params(cls, section: str, **values):
    """A config or job dataclass `cls` with the values params.yaml has for its fields (keys of `section`, or the
    switches a field is read from, or top-level keys of the same name), then `values`. A nested config's fields
    (`knob.nested`: keys of the same section) are given flat, as in params.yaml: `epochs=1`, not `training=...`."""
    from vbert.core.params import knob_fields, nested_type

    params = repo_params()
    switches = {k.field[0]: k.key for k in knob_fields(cls) if k.knob.switch and len(k.field) == 1}
    defaults = {}
    for field in dataclasses.fields(cls):
        if inner := nested_type(cls, field):
            names = {f.name for f in dataclasses.fields(inner)}
            mine = {k: values.pop(k) for k in list(values) if k in names}
            defaults[field.name] = from_params(inner, section, **mine)
            continue
        key = switches.get(field.name, field.name)
        found = params[section].get(key, params.get(key) if not isinstance(params.get(key), dict) else None)
        if found is not None:
            defaults[field.name] = tuple(found) if isinstance(found, list) else found
    return cls(**{**defaults, **values})


# The vocabulary of google-research/bert's tokenization_test.py, then the special tokens it lacks.
GOOGLE_TEST_VOCAB = [
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "want",
    "##want",
    "##ed",
    "wa",
    "un",
    "runn",
    "##ing",
    ",",
    "[PAD]",
    "[MASK]",
]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def small_corpus(path: Path, source: Path, documents: int) -> Path:
    """The first `documents` documents of `source`."""
    out, count = [], 0
    for line in source.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            count += 1
            if count >= documents:
                break
        out.append(line)
    return write_lines(path, out)


def uncased_tokenizer(folder: Path, appended: tuple[str, ...] = ()) -> Path:
    """A tokenizer folder (as the vocab stage writes it) with Google's uncased 30,522-token vocabulary, and
    `appended` tokens after it (as the `extend` variant writes them)."""
    from vbert.core.resources import resolve_vocab
    from vbert.text.tokenization import Vocab, load_vocab, save_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = load_vocab(resolve_vocab("minilm"))
    save_tokenizer(folder, Vocab([*vocab.tokens, *appended]), do_lower_case=True)
    return folder


def tiny_pretraining_inputs(
    root: Path, documents: int, phases: tuple, num_shards: int = 2, eval_fraction: float = 0.1
) -> Path:
    """What the model stages read, made by the real text stages on the first documents of the sample:
    `root/tf` (TFRecords and manifest) and `root/vocab` (Google's uncased vocabulary as a tokenizer folder)."""
    from vbert.pipeline.tfrecords import TFRecordsJob, build_tfrecords

    corpus = small_corpus(root / "corpus.txt", REPO / "data" / "sample" / "docs.txt", documents=documents)
    build_tfrecords(
        from_params(
            TFRecordsJob,
            "tfrecords",
            corpus=corpus,
            vocab_dir=uncased_tokenizer(root / "vocab"),
            out_dir=root / "tf",
            phases=phases,
            dataset_name="t",
            num_shards=num_shards,
            eval_fraction=eval_fraction,
            workers=1,
            extra_info={},
        )
    )
    return root


def run_stage(script: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run stages/<script>.py as DVC would (`python -m stages.<script>`); returns the finished process (never
    raises)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, "-m", f"stages.{script}", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def tiny_finetuned(
    root: Path,
    labels: list[str],
    max_seq_length: int = 32,
    seed: int = 0,
    positive_label: str | None = None,
    appended: tuple[str, ...] = (),
) -> Path:
    """A `best/` folder as the finetune stage writes it, for a tiny random classifier on Google's vocabulary (with
    `appended` tokens after it)."""
    import keras

    from vbert.model.bert import BertConfig, build_classifier
    from vbert.model.checkpoints import save_weights
    from vbert.model.export import SERVING_CONFIG, ServingConfig

    keras.utils.set_random_seed(seed)
    config = BertConfig(vocab_size=30522 + len(appended), max_position_embeddings=128, **TINY_BERT)
    model = build_classifier(config, len(labels))
    uncased_tokenizer(root, appended)
    save_weights(root, model)
    (root / "bert_config.json").write_text(config.to_json())
    (root / SERVING_CONFIG).write_text(ServingConfig(labels, max_seq_length, positive_label).to_json())
    return root


def tiny_task(root: Path, labels: list[str], rows: int = 20) -> Path:
    """train/eval/test.tsv with the first `rows` examples of each sample split whose label is in `labels`."""
    for split in ("train", "eval", "test"):
        lines = (REPO / f"data/sample/pkg_section/{split}.tsv").read_text().splitlines()
        kept = [line for line in lines[1:] if line.split("\t")[0] in labels][:rows]
        write_lines(root / f"{split}.tsv", [lines[0], *kept])
    return root


def tiny_pipeline_models(
    root: Path, labels: list[str], precision: str = "fp32", appended: tuple[str, ...] = ()
) -> Path:
    """What the freeze and ir stages write for a tiny random classifier: `root/best` (finetune), `root/task`,
    `root/serving/vbert/1` (SavedModel) and `root/ir` (IR variants, `root/ir/vbert/1`)."""
    from vbert.pipeline.freeze import freeze
    from vbert.pipeline.ir import IRJob, build_ir

    freeze(tiny_finetuned(root / "best", labels, max_seq_length=32, appended=appended), root / "serving" / "vbert", 1)
    task = tiny_task(root / "task", labels)
    job = from_params(
        IRJob, "ir", serving_dir=root / "serving" / "vbert", task_dir=task, out_dir=root / "ir", precision=precision
    )
    build_ir(dataclasses.replace(job, timing_repeats=1))
    return root


TINY_PRETRAIN = {  # a pretrain section for the tiny model (switch `model: tiny`): seconds, not minutes
    "init_checkpoint": "scratch",
    "learning_rate": 1e-3,
    "train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "num_train_steps": 6,
    "num_warmup_steps": 1,
    "save_checkpoints_steps": 2,
    "num_train_steps_msl512": 0,
    "msl512_from_steps": [],
    "eval_batches": 1,
    "eval_batch_size": 8,
    "mixed_precision": "fp32",
    "jit_compile": False,
}


def tiny_pretrain_params(path: Path, **overrides) -> str:
    """params.yaml with TINY_PRETRAIN (and `overrides`) as its pretrain section, written to `path`; returns its name."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"] = "tiny"
    params["pretrain"].update({**TINY_PRETRAIN, **overrides})
    path.write_text(yaml.safe_dump(params))
    return str(path)


def tiny_pretrain_job(inputs: Path, out: Path, **overrides):
    """A PretrainJob with TINY_PRETRAIN (and `overrides`) on `tiny_pretraining_inputs`."""
    from vbert.pipeline.pretrain import PretrainJob

    settings = {
        "tfrecords": inputs / "tf",
        "vocab_dir": inputs / "vocab",
        "task_dir": None,
        "model": "tiny",
        **TINY_PRETRAIN,
        **overrides,
    }
    settings["msl512_from_steps"] = tuple(settings["msl512_from_steps"])
    settings["task_adaptive_from_steps"] = tuple(settings.get("task_adaptive_from_steps", (0,)))
    return from_params(PretrainJob, "pretrain", out_dir=out, **settings)


def pretrain_stage_args(inputs: Path, params: str, out: Path, metrics: Path) -> list[str]:
    """stages/pretrain.py and its options (plots beside the metrics file, as .csv)."""
    return [
        str(REPO / "stages/pretrain.py"),
        *("--params", params, "--tfrecords", str(inputs / "tf"), "--vocab", str(inputs / "vocab")),
        *("--out", str(out), "--metrics", str(metrics), "--plots", str(metrics.with_suffix(".csv"))),
    ]
