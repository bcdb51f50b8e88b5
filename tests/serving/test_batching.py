"""Dynamic batching, exactly: padding to a bucket, merging concurrent requests, fair chunks, deadlines, the queue."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from vbert.serving.batching import Batcher, BatchingParameters, padded_length, stack_padded
from vbert.serving.errors import Code, ServingError


def request(ids: list[list[int]]) -> dict[str, np.ndarray]:
    array = np.array(ids, np.int32)
    return {"input_ids": array, "input_mask": (array > 0).astype(np.int32), "segment_ids": np.zeros_like(array)}


def parameters(**changes) -> BatchingParameters:
    settings = dict(
        max_batch_size=4, batch_timeout_micros=0, max_enqueued_batches=16, bucket=16, enabled=True, split_by_bucket=True
    )
    return BatchingParameters(**{**settings, **changes})


class Recorder:
    """A stand-in model: row sums identify the rows; every inference is recorded (a real model: test_server.py)."""

    def __init__(self, seconds: float = 0.0):
        self.calls: list[tuple[int, ...]] = []
        self.threads: list[str] = []
        self.widths: list[int] = []
        self.seconds = seconds

    def __call__(self, batch):
        self.calls.append(tuple(batch["input_ids"][:, 0].tolist()))
        self.threads.append(threading.current_thread().name)
        self.widths.append(batch["input_ids"].shape[1])
        time.sleep(self.seconds)
        sums = batch["input_ids"].sum(axis=1, keepdims=True).astype(np.float32)
        return {"probabilities": sums, "logits": -sums}


def test_padded_length_rounds_up_to_the_bucket_and_never_past_the_limit():
    assert padded_length([5, 17], bucket=16, limit=128) == 32
    assert padded_length([16], bucket=16, limit=128) == 16
    assert padded_length([40], bucket=16, limit=48) == 48
    assert padded_length([3], bucket=16, limit=512) == 16  # not 512


def test_stack_padded_stacks_and_zero_pads():
    batch = stack_padded([request([[101, 7, 102]]), request([[101, 102], [101, 5]])], 4)
    assert batch["input_ids"].tolist() == [[101, 7, 102, 0], [101, 102, 0, 0], [101, 5, 0, 0]]
    assert batch["input_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0]]


@pytest.mark.parametrize(
    ("split_by_bucket", "inferences"),
    [(False, [(1, 10, 40, 5)]), (True, [(1, 10, 40), (5,)])],
    ids=["padded-to-the-longest", "one-inference-per-bucket"],
)
def test_concurrent_requests_are_merged_and_get_their_own_rows_back(split_by_bucket, inferences):
    model = Recorder()

    async def scenario():
        batcher = Batcher(model, parameters(batch_timeout_micros=200_000, split_by_bucket=split_by_bucket), 64)
        batcher.start()
        results = await asyncio.gather(
            batcher.submit(request([[1, 2]]), 5),
            batcher.submit(request([[10, 20, 30], [40, 0, 0]]), 5),
            batcher.submit(request([[5] * 17]), 5),
        )
        await batcher.stop()
        return results

    first, second, third = asyncio.run(scenario())
    # 1 + 2 + 1 rows: lengths 2, 3 and 17 pad to 16, 16 and 32 (multiples of 16)
    assert model.calls == inferences
    assert first["probabilities"].tolist() == [[3.0]]
    assert second["probabilities"].tolist() == [[60.0], [40.0]]
    assert third["logits"].tolist() == [[-85.0]]


def test_a_large_request_goes_in_chunks_and_a_small_one_rides_in_the_next_batch():
    model = Recorder(seconds=0.02)

    async def scenario():
        batcher = Batcher(model, parameters(), 64)
        batcher.start()
        large = asyncio.ensure_future(batcher.submit(request([[100 + i] for i in range(12)]), 5))
        await asyncio.sleep(0.005)  # the first chunk of the large request is computing
        small = await batcher.submit(request([[7]]), 5)
        done_when_small_came_back = large.done()
        results = await large
        await batcher.stop()
        return small, results, done_when_small_came_back

    small, large, large_was_done = asyncio.run(scenario())
    # max_batch_size 4: 12 rows in chunks of 4; the small request joins the next batch, not the end of the queue
    assert model.calls[0] == (100, 101, 102, 103)
    assert model.calls[1] == (7, 104, 105, 106)
    assert not large_was_done and small["probabilities"].tolist() == [[7.0]]
    assert large["probabilities"][:, 0].tolist() == [100.0 + i for i in range(12)]  # every row, in order


def test_work_not_started_by_its_deadline_is_refused_uncomputed():
    model = Recorder(seconds=0.2)

    async def scenario():
        batcher = Batcher(model, parameters(max_batch_size=1), 64)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(request([[1]]), 5))
        await asyncio.sleep(0.01)
        with pytest.raises(ServingError) as late:
            await batcher.submit(request([[2]]), 0.05)  # waits behind a 0.2 s inference
        await first
        await batcher.stop()
        return late.value

    error = asyncio.run(scenario())
    assert error.code is Code.DEADLINE_EXCEEDED and "deadline of 50 ms" in error.message and error.retry_after
    assert model.calls == [(1,)]  # the late request was never computed


def test_a_cancelled_request_leaves_the_queue_uncomputed():
    model = Recorder(seconds=0.1)

    async def scenario():
        batcher = Batcher(model, parameters(max_batch_size=1), 64)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(request([[1]]), 5))
        await asyncio.sleep(0.01)
        gone = asyncio.ensure_future(batcher.submit(request([[2]]), 5))
        await asyncio.sleep(0.01)
        gone.cancel()  # the client left
        await first
        await asyncio.sleep(0.15)
        await batcher.stop()

    asyncio.run(scenario())
    assert model.calls == [(1,)]


@pytest.mark.parametrize("ending", ["the client leaves", "the deadline passes"])
def test_a_large_request_stops_between_chunks_when_nobody_waits_for_it(ending):
    """Ten chunks of 50 ms: after the client leaves (or the deadline of 120 ms passes) no further chunk runs."""
    model = Recorder(seconds=0.05)

    async def scenario():
        batcher = Batcher(model, parameters(max_batch_size=1), 64)
        batcher.start()
        timeout = 5 if ending == "the client leaves" else 0.12
        large = asyncio.ensure_future(batcher.submit(request([[100 + i] for i in range(10)]), timeout))
        await asyncio.sleep(0.12)
        if ending == "the client leaves":
            large.cancel()
        with pytest.raises((asyncio.CancelledError, ServingError)) as ended:
            await large
        calls_when_ended = len(model.calls)
        await asyncio.sleep(0.3)  # six chunks' time: none may run
        await batcher.stop()
        return ended.value, calls_when_ended

    error, calls = asyncio.run(scenario())
    assert calls <= 4 and len(model.calls) == calls  # nothing computed after the end
    if ending == "the deadline passes":
        assert error.code is Code.DEADLINE_EXCEEDED and "rows computed, the rest not" in error.message


def test_a_token_budget_cuts_batches_of_long_rows_so_a_short_request_waits_less():
    """max_batch_size 4, max_batch_tokens 64: rows 32 wide go two at a time; a 16-wide row fits beside one."""
    model = Recorder(seconds=0.02)

    async def scenario():
        batcher = Batcher(model, parameters(max_batch_tokens=64), 64)
        batcher.start()
        long = asyncio.ensure_future(batcher.submit(request([[100 + i] + [1] * 31 for i in range(6)]), 5))
        await asyncio.sleep(0.005)
        short = await batcher.submit(request([[7] + [1] * 15]), 5)
        await long
        await batcher.stop()
        return short

    short = asyncio.run(scenario())
    assert model.calls[0] == (100, 101)  # 2 x 32 = 64 tokens, not 4 rows
    assert model.calls[1] == (7,) or 7 in model.calls[1]  # the short row rides in the very next inference
    assert all(len(call) <= 2 for call in model.calls) and short["probabilities"][0, 0] == 7 + 15


def test_padded_to_its_longest_row_a_batch_counts_every_row_at_that_width():
    """max_batch_tokens 64, one inference padded to the longest row: two 16-wide rows (32 tokens) cannot take a
    32-wide row beside them (3 x 32 = 96 tokens), so the 32-wide rows go two at a time after them."""
    model = Recorder()

    async def scenario():
        batcher = Batcher(
            model, parameters(max_batch_tokens=64, split_by_bucket=False, batch_timeout_micros=100_000), 64
        )
        batcher.start()
        short = batcher.submit(request([[7] + [1] * 15, [8] + [1] * 15]), 5)
        long = batcher.submit(request([[100 + i] + [1] * 31 for i in range(4)]), 5)
        await asyncio.gather(short, long)
        await batcher.stop()

    asyncio.run(scenario())
    assert model.calls == [(7, 8), (100, 101), (102, 103)]


def test_a_short_request_is_answered_before_the_long_rows_of_its_batch_are_computed():
    """One batch, two length groups: the 16-wide row's answer comes back while the 64-wide rows still compute."""
    model = Recorder(seconds=0.2)
    answered: dict[str, float] = {}

    async def timed(name: str, work):
        result = await work
        answered[name] = time.perf_counter()
        return result

    async def scenario():
        batcher = Batcher(model, parameters(batch_timeout_micros=100_000), 64)
        batcher.start()
        short, long = await asyncio.gather(
            timed("short", batcher.submit(request([[7]]), 5)),
            timed("long", batcher.submit(request([[100] + [1] * 63, [101] + [1] * 63]), 5)),
        )
        await batcher.stop()
        return short, long

    short, long = asyncio.run(scenario())
    assert model.calls == [(7,), (100, 101)]  # one batch: the 16-wide group first, then the 64-wide one
    assert answered["long"] - answered["short"] >= 0.15  # the short one did not wait for the long inference
    assert short["probabilities"].tolist() == [[7.0]] and long["probabilities"][:, 0].tolist() == [163.0, 164.0]


def test_a_full_queue_refuses_at_once_with_retry_after():
    async def scenario():
        batcher = Batcher(Recorder(), parameters(max_batch_size=2, max_enqueued_batches=1), 64)
        with pytest.raises(ServingError) as full:
            await batcher.submit(request([[1], [2], [3]]), 5)
        return full.value

    error = asyncio.run(scenario())
    assert error.code is Code.UNAVAILABLE and error.retry_after >= 1
    assert "0 rows queued, 3 more would exceed the queue's 2 (max_enqueued_batches x max_batch_size)" in error.message


def test_batching_off_runs_each_request_whole_and_alone():
    model = Recorder(seconds=0.01)

    async def scenario():
        batcher = Batcher(model, parameters(enabled=False, max_batch_size=2), 64)
        await asyncio.gather(*(batcher.submit(request([[i], [i + 1], [i + 2]]), 5) for i in (10, 20)))

    asyncio.run(scenario())
    assert sorted(model.calls) == [(10, 11, 12), (20, 21, 22)]  # whole, not chunked, never merged


@pytest.mark.parametrize("enabled", [True, False], ids=["batching", "batching-off"])
def test_inference_runs_on_one_thread_of_its_own_while_the_shared_pool_is_full(enabled):
    model = Recorder()

    async def scenario():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=2))
        release = threading.Event()
        blockers = [asyncio.ensure_future(asyncio.to_thread(release.wait)) for _ in range(2)]
        await asyncio.sleep(0.05)  # every shared thread is busy now (say, tokenising long texts)
        batcher = Batcher(model, parameters(enabled=enabled), 64)
        batcher.start()
        try:
            for i in range(3):
                await asyncio.wait_for(batcher.submit(request([[i + 1]]), 5), 5)
            await asyncio.wait_for(asyncio.gather(*(batcher.submit(request([[i]]), 5) for i in (7, 8))), 5)
        finally:
            release.set()
            await asyncio.gather(*blockers)
            await batcher.stop()

    asyncio.run(scenario())
    assert len(model.threads) >= 4 and len(set(model.threads)) == 1
    assert model.threads[0].startswith("vbert-inference") and model.threads[0] != threading.current_thread().name


@pytest.mark.parametrize("enabled", [True, False], ids=["batching", "batching-off"])
def test_a_row_computed_alone_is_not_padded_and_rows_together_are_padded_to_their_bucket(enabled):
    model = Recorder()

    async def scenario():
        batcher = Batcher(model, parameters(enabled=enabled), 64)
        batcher.start()
        alone = await batcher.submit(request([[4, 5, 6]]), 5)
        pair = await batcher.submit(request([[4, 5, 6], [7, 0, 0]]), 5)
        await batcher.stop()
        return alone, pair

    alone, pair = asyncio.run(scenario())
    assert model.widths == [3, 16]  # one row at its own 3 pieces; two rows padded to the 16-piece bucket
    assert alone["probabilities"].tolist() == [[15.0]] and pair["probabilities"].tolist() == [[15.0], [7.0]]
