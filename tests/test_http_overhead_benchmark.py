"""benchmarks/http_overhead.py's floors, with the real parts: a bare uvicorn app in a subprocess and a thread."""

from __future__ import annotations

import importlib.util

import pytest

from tests.helpers import REPO


@pytest.fixture()
def http_overhead(monkeypatch):
    spec = importlib.util.spec_from_file_location("http_overhead_benchmark", REPO / "benchmarks/http_overhead.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "settle", lambda: None)  # no idle gaps: the test checks the plumbing, not the times
    return module


def test_floors_time_a_bare_server_and_a_thread_hand_off(http_overhead):
    floors = http_overhead.floors(["a short text", "another one", "x" * 5000])
    assert set(floors) == {"bare_uvicorn_round_trip", "thread_hand_off_round_trip"}
    assert 0 < floors["thread_hand_off_round_trip"] < floors["bare_uvicorn_round_trip"] < 1000


def test_the_median_difference_is_per_request(http_overhead):
    # per request: +1, -8, +13 ms, median +1 ms; the difference of the medians would read 22 - 20 = 2 ms
    assert http_overhead.median_difference_ms([0.011, 0.022, 0.033], [0.010, 0.030, 0.020]) == 1.0
