"""Measuring pieces for the bench stage (the paper's Table 3): timing statistics, CPU utilisation, model FLOPs and
this machine's matrix-multiply ceiling, so that achieved GFLOP/s can be read against what the CPU can do.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vbert.model.bert import BertConfig


def bert_classifier_flops(config: BertConfig, seq_len: int, num_labels: int) -> int:
    """Forward-pass FLOPs of one sequence (a multiply-add counts 2), matrix products only, as is usual:
    per layer Q, K, V and output projections (4 x 2*s*h*h), attention scores and context (2 x 2*s*s*h), and the
    feed-forward block (2 x 2*s*h*i); then the pooler (2*h*h) and the classifier (2*h*labels)."""
    s, h, i = seq_len, config.hidden_size, config.intermediate_size
    per_layer = 4 * 2 * s * h * h + 2 * 2 * s * s * h + 2 * 2 * s * h * i
    return config.num_hidden_layers * per_layer + 2 * h * h + 2 * h * num_labels


def matmul_gflops(multiply, size: int, repeats: int) -> float:
    """The best rate of `multiply()`, one [size, size] x [size, size] product, after a warm-up (thread pool, page
    faults), in GFLOP/s."""
    multiply()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        multiply()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def matmul_ceiling_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The best float32 matrix-multiply rate numpy's BLAS reaches here (GFLOP/s)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    return matmul_gflops(lambda: a @ b, size, repeats)


def openvino_matmul_gflops(precision: str, size: int = 2048, repeats: int = 5) -> float:
    """The best rate of one [size, size] x [size, size] MatMul (constant weights, as in BERT) that OpenVINO's CPU
    plugin reaches when computing in `precision` (`f32` or `bf16`), GFLOP/s."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([size, size], np.float32)
    weights = ops.constant(rng.standard_normal((size, size), dtype=np.float32))
    model = ov.Model([ops.matmul(x, weights, False, False)], [x])
    compiled = ov.Core().compile_model(
        model, "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    )
    data = rng.standard_normal((size, size), dtype=np.float32)
    return matmul_gflops(lambda: compiled(data), size, repeats)


def ceilings_gflops() -> dict[str, float]:
    """This run's compute ceilings (GFLOP/s): `fp32` numpy's BLAS (the ceiling the targets use for fp32, as in the
    issue), `fp32_openvino` OpenVINO's own f32 MatMul for reference, and `bf16` OpenVINO's bf16 MatMul (where the
    CPU has no bf16 units OpenVINO computes it in f32, so it is never taken below the fp32 ceiling)."""
    fp32 = matmul_ceiling_gflops()
    fp32_openvino = openvino_matmul_gflops("f32")
    bf16 = max(fp32, fp32_openvino, openvino_matmul_gflops("bf16"))
    return {"fp32": round(fp32, 1), "fp32_openvino": round(fp32_openvino, 1), "bf16": round(bf16, 1)}


def cpu_seconds(before, after) -> tuple[float, float]:
    """(busy, total) CPU seconds of all CPUs between two `psutil.cpu_times()` readings. The kernel counts in ticks
    (10 ms), so sum many short intervals before dividing."""
    total = sum(after) - sum(before)  # Linux counts guest time inside user time as well
    total -= sum(getattr(after, f, 0.0) - getattr(before, f, 0.0) for f in ("guest", "guest_nice"))
    idle = (after.idle + getattr(after, "iowait", 0.0)) - (before.idle + getattr(before, "iowait", 0.0))
    return max(0.0, total - idle), max(0.0, total)


def resident_bytes(pid: int) -> int:
    """Resident memory of a process (bytes)."""
    import psutil

    return psutil.Process(pid).memory_info().rss


@dataclass(frozen=True)
class TimingSummary:
    """The columns of the paper's Table 3 for one cell (seconds per request)."""

    requests: int
    min: float
    max: float
    trimmed_mean: float  # without the fastest and the slowest request (when there are more than two)
    variance: float
    per_sample: float  # trimmed mean / request batch size

    def as_dict(self) -> dict:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def percentile_ms(seconds: list[float], q: float) -> float:
    return round(1000 * float(np.percentile(seconds, q)), 3) if seconds else 0.0


def summarise(seconds: list[float], batch_size: int) -> TimingSummary:
    if not seconds:
        raise ValueError("no timings to summarise")
    ordered = sorted(seconds)
    kept = ordered[1:-1] if len(ordered) > 2 else ordered
    mean = float(np.mean(kept))
    return TimingSummary(
        requests=len(seconds),
        min=ordered[0],
        max=ordered[-1],
        trimmed_mean=mean,
        variance=float(np.var(seconds)),
        per_sample=mean / batch_size,
    )


class CpuSampler:
    """Mean and peak utilisation of all CPUs (percent of the whole machine) while the `with` block runs,
    sampled every `interval` seconds: the paper's Figures 12 and 13, measured rather than assumed."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        psutil.cpu_percent(None)
        while not self._stop.wait(self.interval):
            self.samples.append(psutil.cpu_percent(None))

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples)) if self.samples else 0.0

    @property
    def peak(self) -> float:
        return float(max(self.samples)) if self.samples else 0.0


def machine(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """What a number was measured on: the CPU model, the cores this process may use, memory, the vector ISA."""
    info = cpuinfo.read_text() if cpuinfo.exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu": model,
        "cpus": len(os.sched_getaffinity(0)),
        "memory_gb": round(memory / 2**30, 1),
        "isa": [f for f in wanted if f in flags],
    }
