"""Measuring pieces for the bench stage (the paper's Table 3): timing statistics, CPU utilisation, model FLOPs and
this machine's matrix-multiply ceiling, so that achieved GFLOP/s can be read against what the CPU can do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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


_NUMPY_MATMUL = """
import time
import numpy as np
size, repeats = {size}, {repeats}
rng = np.random.default_rng(0)
a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
a @ b
best = float("inf")
for _ in range(repeats):
    start = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - start)
print(2 * size**3 / best / 1e9)
"""


def numpy_best_kernel_gflops(size: int = 2048, repeats: int = 5) -> float:
    """numpy's float32 matrix-multiply rate with the BLAS kernels it picks for this CPU: measured in a subprocess
    without `OPENBLAS_CORETYPE` (set to Haswell here, which holds OpenBLAS to its AVX2 kernels)."""
    env = {name: value for name, value in os.environ.items() if name != "OPENBLAS_CORETYPE"}
    code = _NUMPY_MATMUL.format(size=size, repeats=repeats)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def tensorflow_matmul_gflops(precision: str, size: int = 2048, repeats: int = 5) -> float:
    """The best rate of one [size, size] x [size, size] tf.matmul (oneDNN) in `precision` (fp32 or bf16)."""
    import tensorflow as tf

    dtype = {"fp32": tf.float32, "bf16": tf.bfloat16}[precision]
    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.standard_normal((size, size), dtype=np.float32), dtype=dtype) for _ in range(2))
    multiply = tf.function(lambda: tf.matmul(a, b))
    return matmul_gflops(lambda: multiply().numpy(), size, repeats)


def compile_int8_matmul(size: int):
    """A [size, size] x [size, size] MatMul compiled by OpenVINO's CPU plugin to run in int8 (u8 activations, i8
    weights: FakeQuantize on both, as NNCF writes them; VNNI where the CPU has it), and non-negative input data."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([size, size], np.float32)
    low, high = ops.constant(np.float32(0)), ops.constant(np.float32(8))
    weights = rng.standard_normal((size, size), dtype=np.float32)
    bound = float(np.abs(weights).max())
    w_low, w_high = ops.constant(np.float32(-bound)), ops.constant(np.float32(bound))
    product = ops.matmul(
        ops.fake_quantize(x, low, high, low, high, 256),
        ops.fake_quantize(ops.constant(weights), w_low, w_high, w_low, w_high, 255),
        False,
        False,
    )
    compiled = ov.Core().compile_model(ov.Model([product], [x]), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    return compiled, np.abs(rng.standard_normal((size, size), dtype=np.float32))


def openvino_int8_matmul_gops(size: int = 2048, repeats: int = 5) -> float:
    """The best rate of OpenVINO's int8 MatMul (`compile_int8_matmul`), GOP/s."""
    compiled, data = compile_int8_matmul(size)
    return matmul_gflops(lambda: compiled(data), size, repeats)


def ceilings_gflops(size: int = 2048, repeats: int = 5) -> dict[str, dict[str, float]]:
    """This run's matrix-multiply rates per precision and kernel (GFLOP/s; GOP/s for int8): fp32 from numpy with
    the environment's BLAS kernels (`numpy_env`) and with the best ones (`numpy`), OpenVINO and TensorFlow (oneDNN);
    bf16 from OpenVINO and TensorFlow; int8 from OpenVINO. The ceiling of a precision is its fastest kernel."""
    return {
        "fp32": {
            "numpy_env": round(matmul_ceiling_gflops(size, repeats), 1),
            "numpy": round(numpy_best_kernel_gflops(size, repeats), 1),
            "openvino": round(openvino_matmul_gflops("f32", size, repeats), 1),
            "tensorflow": round(tensorflow_matmul_gflops("fp32", size, repeats), 1),
        },
        "bf16": {
            "openvino": round(openvino_matmul_gflops("bf16", size, repeats), 1),
            "tensorflow": round(tensorflow_matmul_gflops("bf16", size, repeats), 1),
        },
        "int8": {"openvino": round(openvino_int8_matmul_gops(size, repeats), 1)},
    }


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


class Sampling:
    """A thread that runs `_run` while the `with` block runs; `_run` returns once `_stop` is set."""

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class CpuSampler(Sampling):
    """Mean and peak utilisation of all CPUs (percent of the whole machine) while the `with` block runs,
    sampled every `interval` seconds: the paper's Figures 12 and 13, measured rather than assumed."""

    def __init__(self, interval: float = 0.1):
        self.samples: list[float] = []
        super().__init__(interval)

    def _run(self) -> None:
        import psutil

        psutil.cpu_percent(None)
        while not self._stop.wait(self.interval):
            self.samples.append(psutil.cpu_percent(None))

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
