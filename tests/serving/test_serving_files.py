"""serving/: Dockerfiles linted by hadolint, Kubernetes manifests validated strictly, the image's pins and imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

BIN = Path(sys.executable).parent
DOCKERFILES = [REPO / "serving/openvino/Dockerfile", REPO / "serving/tfserving/Dockerfile"]
MANIFESTS = [REPO / "serving/k8s/openvino.yaml", REPO / "serving/k8s/tfserving.yaml"]


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfiles_pass_hadolint(dockerfile):
    result = run(BIN / "hadolint", dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_an_unpinned_install(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11.14-slim-bookworm\nRUN pip install fastapi\n")
    result = run(BIN / "hadolint", bad)
    assert result.returncode != 0 and "DL3013" in result.stdout


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_manifests_pass_strict_validation(manifest):
    result = run(BIN / "kubernetes-validate", "--strict", manifest)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == 3  # Deployment, Service, HorizontalPodAutoscaler


def test_strict_validation_catches_a_misspelt_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(MANIFESTS[0].read_text().replace("  replicas: 2", "  replica: 2", 1))
    result = run(BIN / "kubernetes-validate", "--strict", bad)
    assert result.returncode != 0 and "replica" in result.stdout + result.stderr


def test_image_pins_come_from_pyproject():
    result = run(sys.executable, "-m", "vbert.tools.pins", REPO / "pyproject.toml", "openvino", "fastapi")
    assert result.returncode == 0
    pyproject = (REPO / "pyproject.toml").read_text()
    for line in result.stdout.split():
        assert f'"{line}"' in pyproject
    assert run(sys.executable, "-m", "vbert.tools.pins", REPO / "pyproject.toml", "nosuchpackage").returncode == 2


def test_the_server_imports_neither_tensorflow_nor_keras():
    """The OpenVINO image installs no TensorFlow: the server's import path must not need it."""
    code = (
        "import sys, vbert.serving.__main__, vbert.serving.rest, vbert.serving.grpc_api, vbert.serving.backends;"
        "from vbert.serving.protos import serving_api; serving_api();"
        "print(sorted(m for m in ('tensorflow.python', 'keras', 'keras_hub', 'nncf') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr


@pytest.mark.parametrize(
    ("cpu_max", "threads"), [("150000 100000", "2"), ("200000 100000", "2"), ("50000 100000", "1")]
)
def test_entrypoint_takes_threads_from_the_cpu_limit(tmp_path, cpu_max, threads):
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    fake = tmp_path / "bin" / "python"  # stands in for the interpreter: prints what it would have been given
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "OMP_NUM_THREADS=$OMP_NUM_THREADS $*"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "CPU_MAX": str(tmp_path / "cpu.max"), "MODEL_DIR": "/m", "PORT": "9"}
    result = subprocess.run(
        ["sh", str(REPO / "serving/openvino/entrypoint.sh")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        f"OMP_NUM_THREADS={threads}",
        *[
            "-m",
            "vbert.serving",
            "--backend",
            "openvino",
            "--model-dir",
            "/m",
            "--host",
            "0.0.0.0",
            "--port",
            "9",
            "--grpc-port",
            "8500",
            "--threads",
        ],
        threads,
    ]
