"""Facts that cross stages have one source: the casing recorded with the vocabulary, and one encoder of texts.

A cased vocabulary goes through the real stage scripts (vocab, tfrecords, pretrain, finetune, freeze) and the
server, and `Apple` and `apple` keep different ids everywhere; the same texts (pairs, over-long, accented) give the
same arrays through the finetune stage, the ir stage, the server and the bench.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tests.helpers import REPO, run_stage, tiny_finetuned, tiny_pipeline_models, write_lines
from vbert.bench.models import BenchModel
from vbert.data.features import tf_schema
from vbert.model.bert import BertConfig
from vbert.model.classifier import padded as padded_batch
from vbert.model.export import ServingConfig
from vbert.pipeline.bench import model_encoder
from vbert.pipeline.finetune import encode_task
from vbert.pipeline.freeze import freeze
from vbert.pipeline.ir import encoded_split
from vbert.serving.backends import load_version
from vbert.serving.launcher import running_server
from vbert.text.tokenization import load_tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("heavy")]

PAIRS = [  # (label, text_a, text_b): accents, a text far over max_seq_length, a short one
    ("games", "Ünïcödé Café: a naïve puzzle game", "résumé of the rules"),
    ("science", "library " * 60, "numerical methods for science " * 5),
    ("games", "chess", "board game"),
]


def write_pair_task(folder: Path) -> Path:
    for split in ("train", "eval", "test"):
        write_lines(folder / f"{split}.tsv", ["label\ttext_a\ttext_b", *("\t".join(row) for row in PAIRS)])
    return folder


def test_one_encoder_for_finetune_ir_server_and_bench(tmp_path):
    best = tiny_finetuned(tmp_path / "best", ["games", "science"], max_seq_length=32)
    freeze(best, tmp_path / "serving" / "vbert", 1)
    version = tmp_path / "serving" / "vbert" / "1"
    task = write_pair_task(tmp_path / "task")
    items = [[a, b] for _, a, b in PAIRS]

    test_rows = encode_task(best, task, 32).rows["test"]
    by_finetune = padded_batch(test_rows, np.arange(len(test_rows)))
    by_ir = encoded_split(version, task, "test")[0]
    served = load_version("tensorflow", version)
    by_server = served.encoder.encode_items(items).features
    assets = version / "assets"
    bench_model = BenchModel(
        "pipeline", version, {}, BertConfig.from_json(assets / "bert_config.json"), served.config, False
    )
    by_bench = model_encoder(bench_model).encode_items(items).features

    def padded(features):  # finetune, the server and the bench pad to the longest row, ir to max_seq_length
        return {k: np.pad(v, ((0, 0), (0, 32 - v.shape[1]))) for k, v in features.items()}

    assert by_ir["input_ids"].shape == (3, 32)
    for name, features in (("finetune", by_finetune), ("server", by_server), ("bench", by_bench)):
        for key in by_ir:
            np.testing.assert_array_equal(padded(features)[key], by_ir[key], err_msg=f"{name}: {key}")
    assert by_server["input_ids"].shape[1] == 32  # the long pair fills max_seq_length exactly
    tokens = served.encoder.tokenizer.vocab.convert_ids_to_tokens(by_ir["input_ids"][0][:6].tolist())
    assert tokens == ["[CLS]", "unicode", "cafe", ":", "a", "naive"]  # accents stripped: the uncased vocabulary


# ---- a cased vocabulary, end to end -----------------------------------------------------------------------

CASED = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Apple", "apple", "makes", "phones", "is", "a", "fruit"]
CASED += ["I", "like", "pie", "The", "the", "company", ".", "sells", "red", "green", "tree", "grows"]
APPLE, LOWER_APPLE = CASED.index("Apple"), CASED.index("apple")
SENTENCES = [
    "Apple makes phones.",
    "The apple is a fruit.",
    "I like Apple phones.",
    "I like apple pie.",
    "The company Apple sells phones.",
    "The tree grows a red apple.",
    "A green apple is a fruit.",
]


def cased_params(tmp_path: Path, task: Path) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(vocab="default", msl512=False, model="tiny")
    params["vocabulary"].update(base_vocab=str(tmp_path / "cased.txt"), do_lower_case=False)
    params["tfrecords"].update(
        max_seq_length=32, max_predictions_per_seq=5, dupe_factor=2, eval_fraction=0.2, workers=1
    )
    params["pretrain"].update(
        init_checkpoint="scratch",
        train_batch_size=8,
        num_train_steps=2,
        num_warmup_steps=1,
        save_checkpoints_steps=2,
        num_train_steps_msl512=0,
        msl512_from_steps=[],
        eval_batch_size=8,
        eval_batches=1,
    )
    params["finetune"].update(task_dir=str(task), max_seq_length=16, epochs=1, train_batch_size=8)
    params["distill"].update(student_layers=1, unlabelled_texts=8, epochs=1, train_batch_size=8)
    params["freeze"].update(ship="teacher")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def stage(name: str, params: Path, *args: str) -> None:
    result = run_stage(name, "--params", str(params), *args)
    assert result.returncode == 0, f"{name}:\n{result.stderr[-3000:]}"


def ids_in_tfrecords(folder: Path) -> set[int]:
    manifest = json.loads((folder / "manifest.json").read_text())
    phase = manifest["phases"][0]
    schema = tf_schema(phase["max_seq_length"], phase["max_predictions_per_seq"])
    found: set[int] = set()
    for record in tf.data.TFRecordDataset([str(folder / f) for f in phase["train_files"]]):
        example = tf.io.parse_single_example(record, schema)
        found |= set(example["input_ids"].numpy().tolist()) | set(example["masked_lm_ids"].numpy().tolist())
    return found


def classify(url: str, texts: list[str]) -> list[dict]:
    request = urllib.request.Request(
        f"{url}/v1/models/vbert:classify_text", json.dumps({"texts": texts}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["predictions"]


def corpus_and_task(tmp_path: Path, sentences: list[str], label_of) -> Path:
    """`tmp_path/clean` as the vnlp stage writes it (20 documents, each the sentences rotated), and `tmp_path/task`
    with every sentence labelled by `label_of` in each split; returns the task folder."""
    n = len(sentences)
    documents = [sentences[i % n :] + sentences[: i % n] for i in range(20)]
    write_lines(tmp_path / "clean" / "corpus.txt", [line for d in documents for line in (*d, "")])
    (tmp_path / "clean" / "info.json").write_text('{"corpus": "docs"}')
    task = tmp_path / "task"
    rows = [f"{label_of(s)}\t{s}" for s in sentences]
    for split in ("train", "eval", "test"):
        write_lines(task / f"{split}.tsv", ["label\ttext", *rows])
    return task


def test_a_cased_vocabulary_keeps_apple_and_apple_apart_in_every_stage(tmp_path):
    write_lines(tmp_path / "cased.txt", CASED)
    task = corpus_and_task(tmp_path, SENTENCES, lambda s: "company" if "Apple" in s else "fruit")
    params = cased_params(tmp_path, task)
    vocab, records, pretrain = tmp_path / "vocab", tmp_path / "tfrecords", tmp_path / "pretrain"
    finetuned, serving = tmp_path / "finetune", tmp_path / "serving"

    stage("vocab", params, "--clean", str(tmp_path / "clean"), "--out", str(vocab), "--metrics", str(tmp_path / "1"))
    assert json.loads((vocab / "tokenizer_config.json").read_text())["do_lower_case"] is False
    stage(
        "tfrecords",
        params,
        "--clean",
        str(tmp_path / "clean"),
        "--vocab",
        str(vocab),
        "--out",
        str(records),
        "--metrics",
        str(tmp_path / "2"),
    )
    assert {APPLE, LOWER_APPLE} <= ids_in_tfrecords(records)
    assert json.loads((records / "manifest.json").read_text())["do_lower_case"] is False

    outputs = ("--metrics", str(tmp_path / "3"), "--plots", str(tmp_path / "3.csv"))
    stage("pretrain", params, "--tfrecords", str(records), "--vocab", str(vocab), "--out", str(pretrain), *outputs)
    table = ("--plots", str(tmp_path / "4.csv"), "--table", str(tmp_path / "4t.csv"))
    stage(
        "finetune",
        params,
        "--pretrain",
        str(pretrain),
        "--out",
        str(finetuned),
        "--metrics",
        str(tmp_path / "4"),
        *table,
    )
    features = [row.ids for row in encode_task(finetuned / "best", task, 16).rows["train"]]
    assert features[0][1] == APPLE and LOWER_APPLE in features[1]  # "Apple makes ...", "The apple ..."
    distilled, hf = tmp_path / "distill", tmp_path / "hf"
    stage(
        "distill",
        params,
        *("--teacher", str(finetuned / "best"), "--corpus", str(tmp_path / "clean" / "corpus.txt")),
        *("--task-dir", str(task), "--out", str(distilled), "--metrics", str(tmp_path / "d")),
    )
    assert load_tokenizer(distilled / "best").encode("Apple apple") == [APPLE, LOWER_APPLE]
    shipped = yaml.safe_load(params.read_text())
    shipped["freeze"].update(ship="student")
    params.write_text(yaml.safe_dump(shipped))
    stage(
        "freeze",
        params,
        *("--teacher", str(finetuned / "best"), "--student", str(distilled / "best"), "--pretrain", str(pretrain)),
        *("--out", str(serving), "--hf", str(hf), "--teacher-out", str(tmp_path / "teacher")),
        *("--metrics", str(tmp_path / "5")),
    )
    assert json.loads((tmp_path / "5").read_text())["num_hidden_layers"] == 1  # the student was shipped
    for folder in ("classifier", "masked_lm"):  # the Hugging Face folders carry the casing too
        assert json.loads((hf / folder / "tokenizer_config.json").read_text())["do_lower_case"] is False
        assert load_tokenizer(hf / folder).encode("Apple apple") == [APPLE, LOWER_APPLE]

    version = serving / "vbert" / "1"
    assert json.loads((version / "assets" / "tokenizer_config.json").read_text())["do_lower_case"] is False
    for encoder in (
        load_version("tensorflow", version).encoder,  # the server's
        model_encoder(
            BenchModel("pipeline", version, {}, None, ServingConfig.from_json(version / "assets/serving.json"), False)
        ),
    ):
        assert encoder(["Apple", "apple"]).features["input_ids"][:, 1].tolist() == [APPLE, LOWER_APPLE]
    assert encoded_split(version, task, "test")[0]["input_ids"][0][1] == APPLE  # the ir stage's
    assert load_tokenizer(version / "assets").encode("Apple apple APPLE") == [APPLE, LOWER_APPLE, 1]

    arguments = ["--backend", "tensorflow", "--model-dir", str(serving / "vbert"), "--poll-seconds", "0"]
    with running_server(arguments, tmp_path / "server.log") as server:
        upper, lower = classify(server.url, ["Apple", "apple"])
        assert upper["probabilities"] != lower["probabilities"]  # different ids, different inputs to the model
        same = classify(server.url, ["Apple", "Apple"])
        assert same[0]["probabilities"] == same[1]["probabilities"]


# ---- a vocabulary larger than the starting model's, end to end ---------------------------------------------

BASE = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cluster", "runs", "on", "node", "."]
BASE += [*"abcdefghijklmnopqrstuvwxyz", *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz")]
DOMAIN = ["kubectl runs on the node.", "the vsphere cluster runs.", "a kubectl node.", "the node runs vsphere."]


def starting_model(folder: Path, vocab_size: int) -> Path:
    """A tiny BertForPreTraining HF folder over the base vocabulary (with an MLM head, so its bias grows too)."""
    from safetensors.numpy import save_file

    from tests.model.test_weights import google_weights, to_hf
    from vbert.model.bert import MODEL_SIZES

    config = {**MODEL_SIZES["tiny"], "vocab_size": vocab_size, "max_position_embeddings": 512, "type_vocab_size": 2}
    folder.mkdir(parents=True)
    save_file(to_hf(google_weights(config)), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    return folder


def test_an_extended_vocabulary_runs_through_the_stages_and_the_exports(tmp_path):
    write_lines(tmp_path / "base.txt", BASE)
    task = corpus_and_task(tmp_path, DOMAIN, lambda s: "tool" if "kubectl" in s else "platform")
    params_path = cased_params(tmp_path, task)
    params = yaml.safe_load(params_path.read_text())
    params["vocab"] = "extend"
    params["vocabulary"].update(base_vocab=str(tmp_path / "base.txt"), do_lower_case=True)
    params["vocabulary"].update(min_frequency=2, heldout_fraction=0.1)
    params["pretrain"].update(init_checkpoint=str(starting_model(tmp_path / "start", len(BASE))), head_warmup_steps=0)
    params_path.write_text(yaml.safe_dump(params))
    vocab, records, pretrain = tmp_path / "vocab", tmp_path / "tfrecords", tmp_path / "pretrain"
    finetuned, serving, hf = tmp_path / "finetune", tmp_path / "serving", tmp_path / "hf"

    stage(
        "vocab", params_path, "--clean", str(tmp_path / "clean"), "--out", str(vocab), "--metrics", str(tmp_path / "1")
    )
    tokens = (vocab / "vocab.txt").read_text().splitlines()
    assert tokens[: len(BASE)] == BASE and "kubectl" in tokens[len(BASE) :] and "vsphere" in tokens[len(BASE) :]
    kubectl = tokens.index("kubectl")
    records_args = ("--clean", str(tmp_path / "clean"), "--vocab", str(vocab), "--out", str(records))
    stage("tfrecords", params_path, *records_args, "--metrics", str(tmp_path / "2"))
    assert kubectl in ids_in_tfrecords(records)
    outputs = ("--metrics", str(tmp_path / "3"), "--plots", str(tmp_path / "3.csv"))
    stage("pretrain", params_path, "--tfrecords", str(records), "--vocab", str(vocab), "--out", str(pretrain), *outputs)
    assert json.loads((pretrain / "bert_config.json").read_text())["vocab_size"] == len(tokens)
    assert len((pretrain / "reference" / "vocab.txt").read_text().splitlines()) == len(BASE)
    table = ("--plots", str(tmp_path / "4.csv"), "--table", str(tmp_path / "4t.csv"))
    stage(
        "finetune",
        params_path,
        "--pretrain",
        str(pretrain),
        "--out",
        str(finetuned),
        "--metrics",
        str(tmp_path / "4"),
        *table,
    )
    frozen = ("--teacher", str(finetuned / "best"), "--student", "none", "--pretrain", str(pretrain))
    frozen += ("--out", str(serving), "--hf", str(hf), "--teacher-out", str(tmp_path / "teacher"))
    stage("freeze", params_path, *frozen, "--metrics", str(tmp_path / "5"))
    shipped, teacher_copy = serving / "vbert" / "1", tmp_path / "teacher" / "vbert" / "1"  # ship: teacher
    files = sorted(p.relative_to(shipped) for p in shipped.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(teacher_copy) for p in teacher_copy.rglob("*") if p.is_file())
    assert all((shipped / f).read_bytes() == (teacher_copy / f).read_bytes() for f in files)
    best = json.loads((tmp_path / "4").read_text())["best_cell"]  # the reference has the base vocabulary
    for folder in ("classifier", "masked_lm"):
        config = json.loads((hf / folder / "config.json").read_text())
        exported = (hf / folder / "vocab.txt").read_text().splitlines()
        assert config["vocab_size"] == len(exported) == (len(BASE) if best == "reference" else len(tokens)), best


def test_a_model_with_an_extended_vocabulary_is_served_by_both_backends(tmp_path):
    """A classifier over Google's vocabulary and three appended tokens: freeze, the ir stage's OpenVINO IR, and
    both servers take ids past 30,522 (the Hugging Face side: tests/model/test_huggingface.py)."""
    appended = ("kubectl", "vsphere", "##ctl")
    models = tiny_pipeline_models(tmp_path / "m", ["admin", "net"], appended=appended)  # sample task labels
    texts = ["kubectl runs on the node", "the vsphere cluster"]
    version = models / "serving" / "vbert" / "1"
    ids = load_version("tensorflow", version).encoder(texts).features["input_ids"]
    assert ids[0][1] == 30522 and ids[1][2] == 30523
    answers = {}
    for backend, folder in (("tensorflow", models / "serving" / "vbert"), ("openvino", models / "ir" / "vbert")):
        arguments = ["--backend", backend, "--model-dir", str(folder), "--poll-seconds", "0"]
        with running_server(arguments, tmp_path / f"{backend}.log") as server:
            answers[backend] = classify(server.url, texts)
    for ours, theirs in zip(answers["tensorflow"], answers["openvino"], strict=True):
        assert ours["label"] == theirs["label"]
        for label, probability in ours["probabilities"].items():
            assert abs(probability - theirs["probabilities"][label]) < 1e-4
