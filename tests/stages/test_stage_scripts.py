"""The stage scripts as DVC runs them: bad input gives one clear line, exit code 2, and no outputs."""

from __future__ import annotations

import importlib
import json

import pytest
import yaml

from tests.helpers import GOOGLE_TEST_VOCAB, REPO, run_stage, small_corpus, uncased_tokenizer, write_lines


def params_file(tmp_path, section: str, **changes) -> str:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[section].update(changes)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return str(path)


def line_of(path: str, key: str) -> int:
    return next(i for i, line in enumerate(open(path), 1) if line.strip().startswith(f"{key}:"))


@pytest.fixture
def upstream(tmp_path, sample_docs):
    """A data/clean and models/vocab as the earlier stages leave them."""
    clean = tmp_path / "clean"
    small_corpus(clean / "corpus.txt", sample_docs, documents=8)
    (clean / "info.json").write_text('{"corpus": "docs"}')
    vocab = uncased_tokenizer(tmp_path / "vocab")
    (vocab / "info.json").write_text('{"variant": "default"}')
    return clean, vocab


def run_tfrecords(tmp_path, upstream, params):
    clean, vocab = upstream
    return run_stage(
        "tfrecords",
        "--params",
        params,
        "--clean",
        str(clean),
        "--vocab",
        str(vocab),
        "--out",
        str(tmp_path / "tfrecords"),
        "--metrics",
        str(tmp_path / "metrics.json"),
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("masked_lm_prob", 1.5, "must be in (0, 1)"),
        ("masked_lm_prob", 0, "must be in (0, 1)"),
        ("max_predictions_per_seq", 200, "must not exceed the max_seq_length of its phase (128)"),
        ("dupe_factor", "ten", "must be an integer"),
    ],
)
def test_params_out_of_range(tmp_path, upstream, key, value, message):
    params = params_file(tmp_path, "tfrecords", **{key: value})
    result = run_tfrecords(tmp_path, upstream, params)
    assert result.returncode == 2, result.stderr
    assert f"tfrecords: {params}:{line_of(params, key)}: tfrecords.{key} = {value!r}: {message}" in result.stderr
    assert not (tmp_path / "tfrecords").exists() and not (tmp_path / "metrics.json").exists()


def test_vocab_without_special_tokens(tmp_path, upstream):
    _clean, vocab = upstream
    write_lines(vocab / "vocab.txt", [t for t in GOOGLE_TEST_VOCAB if t != "[SEP]"])
    result = run_tfrecords(tmp_path, upstream, params_file(tmp_path, "tfrecords"))
    assert result.returncode == 2
    assert f"{vocab / 'vocab.txt'}: vocabulary lacks the special token(s) [SEP]" in result.stderr
    assert not (tmp_path / "tfrecords").exists()


def test_vnlp_not_utf8(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "docs.txt").write_bytes(b"ok\n\nsecond doc caf\xe9\n")
    params = params_file(tmp_path, "vnlp", input_dir=str(tmp_path / "in"), lexicon="")
    result = run_stage(
        "vnlp",
        *("--params", params, "--task-dir", str(REPO / "data/sample/pkg_section")),
        *("--out", str(tmp_path / "clean"), "--metrics", str(tmp_path / "m.json")),
    )
    assert result.returncode == 2
    assert "docs.txt:3: not UTF-8: byte 0xe9 at byte offset 18" in result.stderr
    assert not (tmp_path / "clean").exists() and not (tmp_path / "m.json").exists()


def test_bench_says_which_input_is_missing_and_which_param_is_wrong(tmp_path):
    paths = ("--model", str(tmp_path / "serving" / "vbert"), "--teacher", str(tmp_path / "teacher" / "vbert"))
    paths += ("--ir", str(tmp_path / "ir"))
    paths += ("--task-dir", str(tmp_path / "task"))
    outputs = ("--report", "r.md", "--results", "r.json", "--metrics", "m.json", "--plots", "p.csv")
    paths += (*outputs, "--load-plots", "l.csv")
    result = run_stage("bench", "--params", str(REPO / "params.yaml"), *paths, cwd=tmp_path)
    assert result.returncode == 2
    assert f"{tmp_path / 'serving' / 'vbert'}: missing; `dvc repro ir` makes the bench's inputs" in result.stderr
    params = params_file(tmp_path, "bench", models=["bert-base", "gpt"])
    result = run_stage("bench", "--params", params, *paths, cwd=tmp_path)
    assert result.returncode == 2 and "bench.models = ['bert-base', 'gpt']: unknown gpt" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\n\n  \n", "no documents (the corpus is empty or holds only blank lines)"),
        ("one document\nof two lines\n", "only 1 document(s); at least 2 are needed"),
    ],
)
def test_vnlp_empty_or_single_document_corpus(tmp_path, text, message):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "docs.txt").write_text(text, encoding="utf-8")
    params = params_file(tmp_path, "vnlp", input_dir=str(tmp_path / "in"), lexicon="")
    result = run_stage(
        "vnlp",
        *("--params", params, "--task-dir", str(REPO / "data/sample/pkg_section")),
        *("--out", str(tmp_path / "clean"), "--metrics", str(tmp_path / "m.json")),
    )
    assert result.returncode == 2
    assert f"vnlp: {tmp_path / 'in' / 'docs.txt'}: {message}" in result.stderr
    assert not (tmp_path / "clean").exists() and not (tmp_path / "m.json").exists()


def test_tfrecords_single_document_corpus(tmp_path, upstream):
    clean, _ = upstream
    (clean / "corpus.txt").write_text("A single document.\nWith two sentences.\n", encoding="utf-8")
    result = run_tfrecords(tmp_path, upstream, params_file(tmp_path, "tfrecords"))
    assert result.returncode == 2
    assert "corpus.txt: only 1 document(s); at least 2 are needed for next-sentence pairs" in result.stderr
    assert not (tmp_path / "tfrecords").exists()


def test_vocab_stage_is_deterministic_across_processes(tmp_path, sample_docs):
    """DVC caches outputs by hash: two runs on the same input must write the same bytes."""
    corpus = small_corpus(tmp_path / "clean" / "corpus.txt", sample_docs, documents=60)
    params = params_file(tmp_path, "vocabulary", min_frequency=2)
    outputs = []
    for run in ("a", "b"):
        result = run_stage(
            "vocab",
            "--params",
            params,
            "--clean",
            str(corpus.parent),
            "--out",
            str(tmp_path / run),
            "--metrics",
            str(tmp_path / f"{run}.json"),
        )
        assert result.returncode == 0, result.stderr
        outputs.append({name: (tmp_path / run / name).read_bytes() for name in ("vocab.txt", "replaced.json")})
    assert outputs[0] == outputs[1]
    assert json.loads((tmp_path / "a.json").read_text())["tokens_added"] > 0


STAGE_PATHS = {  # each stage's path options, its inputs pointing at folders that do not exist
    "ingest": ("--input", "none", "--out", "out", "--metrics", "m.json"),
    "vocab": ("--clean", "none", "--out", "out", "--metrics", "m.json"),
    "tfrecords": ("--clean", "none", "--vocab", "none", "--out", "out", "--metrics", "m.json"),
    "pretrain": ("--tfrecords", "none", "--vocab", "none", "--out", "out", "--metrics", "m.json", "--plots", "p.csv"),
    "finetune": ("--pretrain", "none", "--out", "out", "--metrics", "m.json", "--plots", "p.csv", "--table", "t.csv"),
    "distill": (
        *("--teacher", "none", "--corpus", "none", "--task-dir", "none", "--out", "out", "--metrics", "m.json"),
    ),
    "freeze": (
        *("--teacher", "none", "--student", "none", "--pretrain", "none", "--out", "out", "--hf", "hf"),
        *("--teacher-out", "teacher", "--metrics", "m.json"),
    ),
    "ir": ("--model", "none", "--task-dir", "none", "--out", "out", "--metrics", "m.json"),
    "bench": (
        *("--model", "none", "--teacher", "none", "--ir", "none", "--task-dir", "none"),
        *("--report", "r.md", "--results", "r.json"),
        *("--metrics", "m.json", "--plots", "p.csv", "--load-plots", "l.csv"),
    ),
}


@pytest.mark.parametrize("name", list(STAGE_PATHS))
def test_each_stage_reads_every_key_of_its_section(tmp_path, name):
    """With the repository's params.yaml a stage gets past its params (no unknown key) and stops on the missing
    input; with its first key misspelt it stops on that key, before reading any input."""
    result = run_stage(name, "--params", str(REPO / "params.yaml"), *STAGE_PATHS[name], cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "unknown key" not in result.stderr and "none" in result.stderr.splitlines()[-1]

    section = importlib.import_module(f"stages.{name}").JOB.SECTION
    first = next(iter(yaml.safe_load((REPO / "params.yaml").read_text())[section]))
    text = (REPO / "params.yaml").read_text()
    text = text[: text.index(f"\n{section}:")] + text[text.index(f"\n{section}:") :].replace(
        f"\n  {first}:", f"\n  {first}x:", 1
    )
    (tmp_path / "params.yaml").write_text(text)
    result = run_stage(name, "--params", str(tmp_path / "params.yaml"), *STAGE_PATHS[name], cwd=tmp_path)
    line = text[: text.index(f"  {first}x:")].count("\n") + 1
    assert result.returncode == 2
    assert f"params.yaml:{line}: {section}.{first}x: unknown key; did you mean {first}?" in result.stderr
