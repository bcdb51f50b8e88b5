"""Many clients for a fixed time against a server: throughput, latency percentiles, errors, CPU, memory."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from vbert.bench.measure import CpuSampler, percentile_ms


@dataclass(frozen=True)
class LoadResult:
    clients: int
    seconds: float
    requests: int
    errors: int
    sequences_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_percent: float
    first_error: str = ""

    def as_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def run_load(
    send: Callable[[list[str]], object], texts: list[str], clients: int, seconds: float, texts_per_request: int = 1
) -> LoadResult:
    """`clients` threads send requests of `texts_per_request` texts (taken in turn from `texts`) back to back for
    `seconds`; a request that raises counts as an error (the first one is kept)."""
    doubled = texts * 2
    windows = itertools.cycle([doubled[i : i + texts_per_request] for i in range(0, len(texts), texts_per_request)])
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    def client() -> None:
        while time.perf_counter() < deadline:
            with lock:
                batch = next(windows)
            began = time.perf_counter()
            try:
                send(batch)
            except Exception as error:  # counted and reported, never hidden
                with lock:
                    errors.append(f"{type(error).__name__}: {error}")
                continue
            with lock:
                latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    with CpuSampler() as cpu:
        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elapsed = time.perf_counter() - started
    return LoadResult(
        clients=clients,
        seconds=elapsed,
        requests=len(latencies),
        errors=len(errors),
        sequences_per_second=len(latencies) * texts_per_request / elapsed,
        p50_ms=percentile_ms(latencies, 50),
        p95_ms=percentile_ms(latencies, 95),
        p99_ms=percentile_ms(latencies, 99),
        cpu_percent=cpu.mean,
        first_error=errors[0] if errors else "",
    )
