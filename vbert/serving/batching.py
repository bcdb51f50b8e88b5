"""Dynamic batching like TF-Serving's: concurrent requests merged into one inference.

Parameters keep TF-Serving's names (batching_parameters_file): `max_batch_size` (rows per inference),
`batch_timeout_micros` (how long the first request of a batch waits for company), `max_enqueued_batches` (queue
bound, in batches; beyond it requests are refused). Rows are padded to their length rounded up to a multiple of
`bucket` (never beyond the model's max_seq_length), not to 512; with `split_by_bucket` a merged batch runs as one
inference per bucket, so that short texts are not padded to the length of a long one that came with them (on a
CPU, cost grows with padded tokens, and batching beyond a few rows gains little). One inference runs at a time, in
a worker thread, so the event loop keeps accepting requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vbert.model.export import INPUT_NAMES


@dataclass(frozen=True)
class BatchingParameters:
    max_batch_size: int = 32
    batch_timeout_micros: int = 0  # 0: never wait; what arrives during an inference forms the next batch
    max_enqueued_batches: int = 16
    bucket: int = 16
    enabled: bool = True
    split_by_bucket: bool = True


class QueueFull(Exception):
    """More rows are waiting than `max_enqueued_batches` batches hold."""


def padded_length(lengths: list[int], bucket: int, limit: int) -> int:
    """The longest length rounded up to a multiple of `bucket`, at most `limit`."""
    longest = max(lengths)
    return min(limit, -(-longest // bucket) * bucket)


def pad_rows(rows: list[dict[str, np.ndarray]], length: int) -> dict[str, np.ndarray]:
    """Stack requests (each [rows, own length]) into one [all rows, length] batch, zero-padded."""
    total = sum(len(r["input_ids"]) for r in rows)
    batch = {name: np.zeros((total, length), np.int32) for name in INPUT_NAMES}
    start = 0
    for r in rows:
        n, width = r["input_ids"].shape
        for name in INPUT_NAMES:
            batch[name][start : start + n, :width] = r[name]
        start += n
    return batch


@dataclass
class _Pending:
    inputs: dict[str, np.ndarray]
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def rows(self) -> int:
        return len(self.inputs["input_ids"])


class Batcher:
    """Queue requests; a single worker merges them into batches and runs `predict` on each."""

    def __init__(
        self,
        predict: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
        parameters: BatchingParameters,
        max_seq_length: int,
        on_batch: Callable[[int, int, float], None] | None = None,
    ):
        self.predict = predict
        self.parameters = parameters
        self.max_seq_length = max_seq_length
        self.on_batch = on_batch or (lambda rows, length, seconds: None)
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.queued_rows = 0
        self.worker: asyncio.Task | None = None
        self.carried: _Pending | None = None
        self.busy = False
        self.lock = asyncio.Lock()

    def start(self) -> None:
        if self.parameters.enabled and self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, drain_seconds: float = 30.0) -> None:
        """Finish what is queued or running (up to `drain_seconds`), then end the worker."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_seconds
        while (self.queued_rows or self.carried or self.busy) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self.worker is not None:
            self.worker.cancel()
            self.worker = None

    async def submit(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's outputs for `inputs` ([rows, seq]; seq at most max_seq_length)."""
        if not self.parameters.enabled:
            async with self.lock:  # one inference at a time, no merging
                return (await self._infer([inputs]))[0]
        rows = len(inputs["input_ids"])
        capacity = self.parameters.max_enqueued_batches * self.parameters.max_batch_size
        if self.queued_rows + rows > capacity:
            raise QueueFull(f"{self.queued_rows} rows queued, the limit is {capacity}")
        pending = _Pending(inputs, asyncio.get_running_loop().create_future())
        self.queued_rows += rows
        await self.queue.put(pending)
        return await pending.future

    async def _infer(self, requests: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Each request's outputs, in order."""
        return await asyncio.to_thread(self._infer_now, requests)

    def _groups(self, requests: list[dict[str, np.ndarray]]) -> dict[int, list[int]]:
        """Padded length -> the requests padded to it (all to the longest unless `split_by_bucket`)."""
        lengths = [int(r["input_ids"].shape[1]) for r in requests]
        if not self.parameters.split_by_bucket:
            return {padded_length(lengths, self.parameters.bucket, self.max_seq_length): list(range(len(requests)))}
        groups: dict[int, list[int]] = {}
        for index, length in enumerate(lengths):
            groups.setdefault(padded_length([length], self.parameters.bucket, self.max_seq_length), []).append(index)
        return dict(sorted(groups.items()))

    def _infer_now(self, requests: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        results: list[dict[str, np.ndarray]] = [{} for _ in requests]
        for length, indices in self._groups(requests).items():
            batch = pad_rows([requests[i] for i in indices], length)
            started = time.perf_counter()
            outputs = self.predict(batch)
            self.on_batch(len(batch["input_ids"]), length, time.perf_counter() - started)
            start = 0
            for i in indices:
                rows = len(requests[i]["input_ids"])
                results[i] = {k: v[start : start + rows] for k, v in outputs.items()}
                start += rows
        return results

    async def _collect(self) -> list[_Pending]:
        """The next batch: the request carried over (or the next queued), then whatever arrives before the
        first one's timeout, up to `max_batch_size` rows; a request that would overflow opens the next batch."""
        first, self.carried = self.carried or await self.queue.get(), None
        group, rows = [first], first.rows
        deadline = first.enqueued + self.parameters.batch_timeout_micros / 1e6
        while rows < self.parameters.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                if remaining <= 0:
                    following = self.queue.get_nowait()
                else:
                    following = await asyncio.wait_for(self.queue.get(), remaining)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if rows + following.rows > self.parameters.max_batch_size:
                self.carried = following
                break
            group.append(following)
            rows += following.rows
        return group

    async def _run(self) -> None:
        while True:
            group = await self._collect()
            self.busy = True
            self.queued_rows -= sum(p.rows for p in group)
            try:
                results = await self._infer([p.inputs for p in group])
            except Exception as error:  # the model failed: every request of the batch hears why
                for p in group:
                    if not p.future.done():
                        p.future.set_exception(error)
                continue
            finally:
                self.busy = False
            for p, outputs in zip(group, results, strict=True):
                if not p.future.done():
                    p.future.set_result(outputs)
