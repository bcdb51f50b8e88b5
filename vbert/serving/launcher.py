"""The server in a child process on 127.0.0.1 (the tests, the bench): started, waited for until ready, stopped.

with running_server(["--backend", "openvino", "--model-dir", "models/ir/vbert"], log_file) as server:
    RestClient(server.url, "vbert").classify_texts([...]); GrpcClient(server.grpc_target, "vbert")
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunningServer:
    url: str
    grpc_target: str
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (all bound at once, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float, interval: float = 0.2) -> bool:
    """True once `url` answers /readyz with 200; False if `process` exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not is_ready(url):
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


@contextlib.contextmanager
def running_server(arguments: Sequence[str], log_file: Path, timeout: float = 300) -> Iterator[RunningServer]:
    """`python -m vbert.serving ARGUMENTS --port P --grpc-port G` until the block ends (SIGTERM, then a wait);
    its output goes to `log_file`. Raises RuntimeError with the log's tail if it exits or is not ready in time."""
    rest, grpc = free_ports(2)
    command = [sys.executable, "-m", "vbert.serving", *arguments, "--port", str(rest), "--grpc-port", str(grpc)]
    url = f"http://127.0.0.1:{rest}"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "wb") as output:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        if not wait_until_ready(url, process, timeout):
            tail = log_file.read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"the server ({' '.join(arguments)}) did not become ready; its log ({log_file}):\n{tail}"
            )
        yield RunningServer(url, f"127.0.0.1:{grpc}", process)
    finally:
        stop(process)


def stop(process: subprocess.Popen, timeout: float = 60) -> int:
    """SIGTERM (a graceful stop), then SIGKILL if it takes longer than `timeout`; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
