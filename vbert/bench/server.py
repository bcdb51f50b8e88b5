"""vbert's server in a child process on 127.0.0.1, for the bench: started, waited for, stopped."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunningServer:
    url: str
    pid: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running_server(
    model_dir: Path, log_file: Path, batching: bool = True, timeout: float = 300, options: tuple[str, ...] = ()
) -> Iterator[RunningServer]:
    """`python -m vbert.serving --backend openvino --model-dir model_dir` until the block ends; its log goes to
    `log_file`. Raises RuntimeError with the log's tail when it exits or is not ready within `timeout`."""
    port = free_port()
    command = [sys.executable, "-m", "vbert.serving", "--backend", "openvino", "--model-dir", str(model_dir)]
    command += ["--port", str(port), "--poll-seconds", "0", *options]
    if not batching:
        command.append("--disable-batching")
    url = f"http://127.0.0.1:{port}"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "wb") as output:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_file.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the server for {model_dir} did not become ready; its log ({log_file}):\n{tail}")
            time.sleep(0.2)
        yield RunningServer(url, process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
