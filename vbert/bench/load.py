"""Many clients for a fixed time against a server: throughput, latency percentiles, errors, CPU, memory; and the
mixed-size run (short requests beside max-size ones, /healthz probed throughout) that shows head-of-line blocking.
"""

from __future__ import annotations

import itertools
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from vbert.bench.measure import CpuSampler, Sampling, percentile_ms


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
    busy: int = 0  # well-formed "busy, retry after" answers (503 with Retry-After): not errors

    def as_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


MAX_SIZE_TEXT_CHARS = 14_500  # 256 of them make a 3.7 MB request, the size issue #11 measured


def max_size_texts(texts: list[str], count: int, chars: int = MAX_SIZE_TEXT_CHARS) -> list[str]:
    """`count` texts of `chars` characters, each joined from consecutive texts of `texts`."""
    out, start = [], 0
    for _ in range(count):
        parts, size = [], 0
        while size < chars:
            parts.append(texts[start % len(texts)])
            size += len(parts[-1]) + 1
            start += 1
        out.append(" ".join(parts)[:chars])
    return out


def _is_busy(error: Exception) -> bool:
    return bool(getattr(error, "is_well_formed_busy", False))


def run_load(
    send: Callable[[list[str]], object], texts: list[str], clients: int, seconds: float, texts_per_request: int = 1
) -> LoadResult:
    """`clients` threads send requests of `texts_per_request` texts (taken in turn from `texts`) back to back for
    `seconds`; a request that raises counts as an error (the first one is kept), except a well-formed 503."""
    doubled = texts * 2
    windows = itertools.cycle([doubled[i : i + texts_per_request] for i in range(0, len(texts), texts_per_request)])
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    busy = [0]
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
                    if _is_busy(error):
                        busy[0] += 1
                    else:
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
        busy=busy[0],
    )


class HealthProbe(Sampling):
    """GET `url` every `interval` seconds in a thread (as a kubelet's probe would, more often), keeping latencies;
    a probe that fails or takes longer than `timeout` counts as a failure."""

    def __init__(self, url: str, interval: float = 0.05, timeout: float = 5.0):
        self.url, self.timeout = url, timeout
        self.latencies: list[float] = []
        self.failures = 0
        super().__init__(interval)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=self.timeout) as response:
                    response.read()
                self.latencies.append(time.perf_counter() - began)
            except OSError:
                self.failures += 1
            self._stop.wait(self.interval)

    def summary(self) -> dict:
        return {
            "probes": len(self.latencies),
            "failures": self.failures,
            "p99_ms": round(percentile_ms(self.latencies, 99), 1),
            "max_ms": round(1000 * max(self.latencies, default=0.0), 1),
        }


def run_mixed_load(
    short: Callable[[list[str]], object],
    short_texts: list[str],
    large: Callable[[list[str]], object],
    large_texts: list[str],
    health_url: str,
    seconds: float,
    *,
    short_clients: int = 16,
    large_clients: int = 2,
    large_rows: int = 256,
) -> dict:
    """Short requests (one text each) alone, then beside `large_clients` clients sending `large_rows` long texts
    per request, /healthz probed throughout: the short requests' p99 with and without the large ones, their ratio,
    the errors (well-formed 503s apart) and the slowest health answer."""
    alone = run_load(short, short_texts, short_clients, seconds)
    with HealthProbe(health_url) as probe, ThreadPoolExecutor(2) as pool:
        big = pool.submit(run_load, large, large_texts, large_clients, seconds, large_rows)
        mixed = pool.submit(run_load, short, short_texts, short_clients, seconds)
        big_result, mixed_result = big.result(), mixed.result()
    return {
        "seconds": seconds,
        "short_alone": alone.as_dict(),
        "short_beside_large": mixed_result.as_dict(),
        "large": big_result.as_dict(),
        "short_p99_ratio": round(mixed_result.p99_ms / alone.p99_ms, 2) if alone.p99_ms else None,
        "errors": alone.errors + mixed_result.errors + big_result.errors,
        "busy_503": alone.busy + mixed_result.busy + big_result.busy,
        "healthz": probe.summary(),
    }
