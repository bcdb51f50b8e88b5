"""The ordered parallel map: results in input order, and worker processes that log as the stage does."""

import logging

from vbert.core.parallel import ordered_map, worker_state


def tagged(item: int) -> str:
    logging.getLogger("vbert.test").info("worker line for item %d", item)
    return f"{worker_state()}-{item}"


def test_results_come_in_input_order_and_each_worker_s_log_lines_reach_stderr(capfd):
    results = list(ordered_map(tagged, range(6), 2, setup=(str, ("state",))))
    assert results == [f"state-{item}" for item in range(6)]
    logged = capfd.readouterr().err
    # spawned workers start without logging: before, these lines (a training run's progress) were dropped
    assert all(f"INFO vbert.test: worker line for item {item}" in logged for item in range(6)), logged


def test_one_worker_runs_in_process_with_its_state():
    assert list(ordered_map(tagged, [1, 2], 1, setup=(str, ("here",)))) == ["here-1", "here-2"]
