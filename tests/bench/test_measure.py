"""The bench stage's measuring pieces, exactly where they can be: FLOPs by hand, statistics, CPU sampling."""

from __future__ import annotations

import time
from collections import namedtuple

import numpy as np
import psutil
import pytest

from vbert.bench.measure import (
    CpuSampler,
    ceilings_gflops,
    compile_int8_matmul,
    cpu_seconds,
    matmul_ceiling_gflops,
    openvino_matmul_gflops,
    percentile_ms,
    summarise,
)


def test_summary_trims_the_fastest_and_slowest():
    summary = summarise([0.5, 0.1, 0.3, 0.2, 0.4], batch_size=10)
    assert (summary.requests, summary.min, summary.max) == (5, 0.1, 0.5)
    assert summary.trimmed_mean == pytest.approx(0.3)
    assert summary.variance == pytest.approx(np.var([0.1, 0.2, 0.3, 0.4, 0.5]))
    assert summary.per_sample == pytest.approx(0.03)
    assert summarise([0.2, 0.4], 1).trimmed_mean == pytest.approx(0.3)  # two requests: nothing trimmed


def test_cpu_sampler_sees_a_busy_loop():
    # One busy thread keeps at least one CPU of the machine's busy, whatever else runs beside it.
    with CpuSampler(interval=0.05) as busy:
        deadline = time.perf_counter() + 0.5
        while time.perf_counter() < deadline:
            pass
    share_of_one_cpu = 100 / psutil.cpu_count()
    assert len(busy.samples) >= 5 and busy.mean >= 0.9 * share_of_one_cpu
    assert 0 <= busy.peak <= 100


def test_matmul_ceiling_is_a_positive_rate():
    assert matmul_ceiling_gflops(size=256, repeats=2) > 0.1


def test_openvino_matmul_rates_and_the_ceilings():
    assert openvino_matmul_gflops("f32", size=256, repeats=2) > 0.1
    ceilings = ceilings_gflops(size=256, repeats=2)
    assert {p: set(k) for p, k in ceilings.items()} == {
        "fp32": {"numpy_env", "numpy", "openvino", "tensorflow"},
        "bf16": {"openvino", "tensorflow"},
        "int8": {"openvino"},
    }
    assert all(rate > 0.1 for kernels in ceilings.values() for rate in kernels.values())


def test_the_int8_matmul_runs_in_int8():
    """OpenVINO runs the FakeQuantize-wrapped MatMul as an integer FullyConnected (u8 activations), not in f32."""
    compiled, data = compile_int8_matmul(128)
    products = [
        op.get_rt_info()["runtimePrecision"].astype(str)
        for op in compiled.get_runtime_model().get_ordered_ops()
        if op.get_rt_info()["layerType"].astype(str) in ("FullyConnected", "MatMul")
    ]
    assert products == ["u8"]
    assert np.asarray(compiled(data)[0]).shape == (128, 128)


CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")


def test_cpu_seconds_counts_idle_and_iowait_as_not_busy_and_guest_once():
    before = CpuTimes(10, 0, 5, 100, 1, 0, 0, 0, 2, 0)
    after = CpuTimes(13, 0, 6, 103, 2, 0, 0, 0, 3, 0)  # +3 user (of which +1 guest), +1 system, +3 idle, +1 iowait
    assert cpu_seconds(before, after) == (4.0, 8.0)


def test_percentiles_in_milliseconds():
    assert percentile_ms([0.001, 0.002, 0.003, 0.004, 0.005], 50) == 3.0
    assert percentile_ms([], 99) == 0.0
