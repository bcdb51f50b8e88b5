"""Dynamic batching like TF-Serving's, fair to small requests, with deadlines.

Parameters keep TF-Serving's names (batching_parameters_file): `max_batch_size` (rows per inference),
`batch_timeout_micros` (how long a batch waits for company; 0: never, what arrives during an inference forms the
next batch), `max_enqueued_batches` (the queue holds that many batches' rows; beyond it requests get 503).

Each batch takes rows from the requests that have been served least so far (then the oldest): a one-row request
always rides in the next batch, and a large request is computed in chunks of up to `max_batch_size` rows between
the other clients' work, not ahead of it. A request's deadline covers all of it: one not started by then fails
without being computed, one in progress stops between chunks (504), and one whose client went away (cancelled) is
not computed further either, so no CPU goes to an answer nobody will read. Rows are padded to their length rounded
up to `bucket` (at most max_seq_length); with `split_by_bucket` a
batch runs as one inference per bucket, shortest first, and each request is answered as soon as its bucket is back,
so short rows are neither padded to a long neighbour's length nor kept waiting for it. `max_batch_tokens` bounds
rows x padded length per batch: a short request that arrives while max-size rows compute waits for a bounded
inference, not for `max_batch_size` of them. A row computed alone (a one-text request with nobody beside it, the
common case at low load) is not padded at all: padding a real text to its bucket cost ~6% of a MiniLM-sized
model's batch-1 call here (benchmarks/http_overhead.py), and the warm-up covers every width at one row.

One inference runs at a time, on the batcher's own inference thread, so the event loop stays free, the model is
always called from the same thread (an OpenVINO backend keeps one infer request per thread), and no other work in the
server's shared thread pool (parsing, tokenising) can delay it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from vbert.serving.errors import Code, ServingError
from vbert.serving.timing import Timings, current
from vbert.text.encoding import INPUT_NAMES

log = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class BatchingParameters:
    max_batch_size: int
    batch_timeout_micros: int
    max_enqueued_batches: int
    bucket: int
    enabled: bool
    split_by_bucket: bool
    max_batch_tokens: int = 0  # rows x padded length per inference at most (0: rows alone bound it): a batch of
    # max-size rows is cut smaller, so a short request waits behind a shorter inference

    @property
    def queue_rows(self) -> int:
        """The most rows that may wait: `max_enqueued_batches` batches."""
        return self.max_enqueued_batches * self.max_batch_size


def padded_length(lengths: list[int], bucket: int, limit: int) -> int:
    """The longest length rounded up to a multiple of `bucket`, at most `limit`."""
    return min(limit, -(-max(lengths) // bucket) * bucket)


def inference_width(parts: list[Arrays], padded: int) -> int:
    """The width to compute `parts` at: one row alone at its own width, rows together at `padded`."""
    if sum(len(part["input_ids"]) for part in parts) == 1:
        return int(parts[0]["input_ids"].shape[1])
    return padded


def stack_padded(parts: list[Arrays], length: int) -> Arrays:
    """Stack inputs (each [rows, own length]) into one [all rows, length] batch, zero-padded."""
    total = sum(len(p["input_ids"]) for p in parts)
    batch = {name: np.zeros((total, length), np.int32) for name in INPUT_NAMES}
    start = 0
    for part in parts:
        n, width = part["input_ids"].shape
        for name in INPUT_NAMES:
            batch[name][start : start + n, :width] = part[name]
        start += n
    return batch


@dataclass(eq=False)  # a job is itself: list membership and removal go by identity
class _Job:
    inputs: Arrays
    future: asyncio.Future
    timeout: float  # seconds it may wait to start
    arrived: float = field(default_factory=time.monotonic)
    served: int = 0  # rows computed so far
    outputs: list[Arrays] = field(default_factory=list)
    timings: Timings | None = field(default_factory=current)  # the request's spans (vbert.serving.timing)

    def started(self, now: float) -> None:
        """Its rows go into a batch now: the first time, its wait is its `queue` span."""
        if self.timings is not None and "queue" not in self.timings.spans:
            self.timings.add("queue", now - self.arrived)

    def computed(self, model_seconds: float, seconds: float) -> None:
        """Its rows came back after `seconds`, `model_seconds` of them in the model's calls."""
        if self.timings is not None:
            self.timings.add("model", model_seconds)
            self.timings.add("batching", seconds - model_seconds)

    @property
    def rows(self) -> int:
        return len(self.inputs["input_ids"])

    @property
    def deadline(self) -> float:
        return self.arrived + self.timeout

    @property
    def remaining(self) -> int:
        return self.rows - self.served


@dataclass
class _TokenBudget:
    """Rows x padded length of one batch, at most `limit` (0: no limit). Padded to its longest row (`per_group`
    false), a wider row makes every row of the batch cost its width; in length groups each row costs its own."""

    limit: int
    per_group: bool
    rows: int = 0
    tokens: int = 0  # rows x their own width, summed
    widest: int = 0

    def rows_that_fit(self, width: int) -> int:
        if not self.limit:
            return sys.maxsize
        if self.per_group:
            return max(self.limit - self.tokens, 0) // width
        return max(self.limit // max(self.widest, width) - self.rows, 0)

    def spend(self, rows: int, width: int) -> None:
        self.tokens += rows * width
        self.rows += rows
        self.widest = max(self.widest, width)

    @property
    def spent(self) -> bool:
        """Not one more row fits, however narrow."""
        return self.rows_that_fit(1) == 0


class Batcher:
    """Queue requests; one worker forms batches (fairly) and runs `predict` on each."""

    def __init__(
        self,
        predict: Callable[[Arrays], Arrays],
        parameters: BatchingParameters,
        max_seq_length: int,
        on_batch: Callable[[int, int, float], None] | None = None,
    ):
        self.predict = predict
        self.parameters = parameters
        self.max_seq_length = max_seq_length
        self.on_batch = on_batch or (lambda rows, length, seconds: None)
        self.jobs: list[_Job] = []
        self.arrived = asyncio.Event()
        self.worker: asyncio.Task | None = None
        self.busy = False
        self.lock = asyncio.Lock()  # batching off: one request at a time
        self.rows_per_second = 0.0  # recent throughput, for Retry-After
        self.inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vbert-inference")

    @property
    def queued_rows(self) -> int:
        return sum(job.remaining for job in self.jobs)

    def start(self) -> None:
        if self.parameters.enabled and self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, drain_seconds: float = 30.0) -> None:
        """Finish what is queued or running (up to `drain_seconds`), then end the worker."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_seconds
        while (self.jobs or self.busy) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self.worker is not None:
            self.worker.cancel()
            self.worker = None
        self.inference.shutdown(wait=False)

    def retry_after(self) -> float:
        """Seconds until the queue has likely drained (at least 1)."""
        return max(1.0, math.ceil(self.queued_rows / self.rows_per_second)) if self.rows_per_second else 1.0

    async def submit(self, inputs: Arrays, timeout: float) -> Arrays:
        """The model's outputs for `inputs` ([rows, seq]; seq at most max_seq_length), started within `timeout`
        seconds or refused."""
        rows = len(inputs["input_ids"])
        if self.queued_rows + rows > self.parameters.queue_rows:
            raise ServingError(
                Code.UNAVAILABLE,
                f"server busy: {self.queued_rows} rows queued, {rows} more would exceed the queue's "
                f"{self.parameters.queue_rows} (max_enqueued_batches x max_batch_size); retry later",
                self.retry_after(),
            )
        if not self.parameters.enabled:
            return await self._alone(inputs, timeout)
        job = _Job(inputs, asyncio.get_running_loop().create_future(), timeout)
        self.jobs.append(job)
        self.arrived.set()
        try:
            return await job.future
        except asyncio.CancelledError:  # the caller went away: what is not computed yet never will be
            if job in self.jobs:
                self.jobs.remove(job)
            raise

    async def _alone(self, inputs: Arrays, timeout: float) -> Arrays:
        """Batching off: the whole request in one inference, one request at a time."""
        job = _Job(inputs, asyncio.get_running_loop().create_future(), timeout)
        self.jobs.append(job)  # counted as queued while it waits
        try:
            await asyncio.wait_for(self.lock.acquire(), timeout)
        except TimeoutError:
            raise self._expired(timeout) from None
        finally:
            self.jobs.remove(job)
        try:
            self.busy = True
            job.started(time.monotonic())
            started = time.perf_counter()
            width = padded_length([int(inputs["input_ids"].shape[1])], self.parameters.bucket, self.max_seq_length)
            (outputs,), model_seconds = await self._on_inference_thread([inputs], width)
            job.computed(model_seconds, time.perf_counter() - started)
            return outputs
        finally:
            self.busy = False
            self.lock.release()

    async def _on_inference_thread(self, parts: list[Arrays], length: int) -> tuple[list[Arrays], float]:
        """`_infer(parts, length)` on the batcher's one inference thread."""
        return await asyncio.get_running_loop().run_in_executor(self.inference, self._infer, parts, length)

    @staticmethod
    def _expired(timeout: float, job: _Job | None = None) -> ServingError:
        if job is not None and job.served:
            return ServingError(
                Code.DEADLINE_EXCEEDED,
                f"the request did not finish within its deadline of {timeout * 1000:.0f} ms ({job.served} of "
                f"{job.rows} rows computed, the rest not): send fewer rows per request, or raise --request-timeout-ms",
                1.0,
            )
        return ServingError(
            Code.DEADLINE_EXCEEDED,
            f"the request could not start within its deadline of {timeout * 1000:.0f} ms: the server is overloaded; "
            "retry later",
            1.0,
        )

    def _groups(self, parts: list[Arrays]) -> dict[int, list[int]]:
        """Padded length -> the parts padded to it (all to the longest unless `split_by_bucket`)."""
        lengths = [int(p["input_ids"].shape[1]) for p in parts]
        if not self.parameters.split_by_bucket:
            return {padded_length(lengths, self.parameters.bucket, self.max_seq_length): list(range(len(parts)))}
        groups: dict[int, list[int]] = {}
        for index, length in enumerate(lengths):
            groups.setdefault(padded_length([length], self.parameters.bucket, self.max_seq_length), []).append(index)
        return dict(sorted(groups.items()))

    def _infer(self, parts: list[Arrays], length: int) -> tuple[list[Arrays], float]:
        """Each part's outputs, in order, from one inference on them padded to `length` (a lone row: not padded),
        and its seconds."""
        length = inference_width(parts, length)
        batch = stack_padded(parts, length)
        started = time.perf_counter()
        outputs = self.predict(batch)
        seconds = time.perf_counter() - started
        rows = len(batch["input_ids"])
        self.on_batch(rows, length, seconds)
        rate = rows / max(seconds, 1e-6)
        self.rows_per_second = rate if not self.rows_per_second else 0.8 * self.rows_per_second + 0.2 * rate
        results, start = [], 0
        for part in parts:
            end = start + len(part["input_ids"])
            results.append({k: v[start:end] for k, v in outputs.items()})
            start = end
        return results, seconds

    def _next_batch(self) -> list[tuple[_Job, int, int]]:
        """(job, first row, end row) slices of up to max_batch_size rows, least-served requests first; requests
        past their deadline (started or not) are failed here, their remaining rows not computed."""
        now = time.monotonic()
        for job in [j for j in self.jobs if now > j.deadline]:
            self._finish(job, self._expired(job.timeout, job))
        room, batch = self.parameters.max_batch_size, []
        budget = _TokenBudget(self.parameters.max_batch_tokens, self.parameters.split_by_bucket)
        for job in sorted(self.jobs, key=lambda j: (j.served, j.arrived)):
            width = padded_length([int(job.inputs["input_ids"].shape[1])], self.parameters.bucket, self.max_seq_length)
            take = min(job.remaining, room, budget.rows_that_fit(width))
            if not take and not batch:
                take = 1  # the first row goes even if over the budget
            if take:
                batch.append((job, job.served, job.served + take))
                budget.spend(take, width)
                room -= take
            if not room or budget.spent:
                break
        return batch

    async def _wait_for_company(self) -> None:
        """Up to batch_timeout_micros after the oldest request, while the next batch is not full."""
        if not self.parameters.batch_timeout_micros or not self.jobs:
            return
        until = min(j.arrived for j in self.jobs) + self.parameters.batch_timeout_micros / 1e6
        while self.queued_rows < self.parameters.max_batch_size and time.monotonic() < until:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), until - time.monotonic())
            except TimeoutError:
                break

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a bug here must not leave every queued request waiting forever
                log.exception("batching failed")
                for job in list(self.jobs):
                    self._finish(job, ServingError(Code.INTERNAL, f"batching failed: {error}"))

    async def _step(self) -> None:
        """Form one batch, run it, hand out the rows."""
        if not self.jobs:
            self.arrived.clear()
            await self.arrived.wait()
        await self._wait_for_company()
        batch = self._next_batch()
        if batch:
            await self._compute(batch)

    async def _compute(self, batch: list[tuple[_Job, int, int]]) -> None:
        """Run the batch one length group at a time, shortest first, and answer each request as soon as its rows
        are back: a short request never waits for the long rows computed after it in the same batch."""
        parts = [{k: v[start:end] for k, v in job.inputs.items()} for job, start, end in batch]
        self.busy = True
        now = time.monotonic()
        for job, _, _ in batch:
            job.started(now)
        started = time.perf_counter()
        try:
            for length, indices in self._groups(parts).items():
                members = [batch[i] for i in indices]
                try:
                    results, model_seconds = await self._on_inference_thread([parts[i] for i in indices], length)
                except Exception as error:  # the model failed: every request in the group hears why
                    for job, _, _ in members:
                        self._finish(job, error)
                    continue
                self._hand_out(members, results, model_seconds, time.perf_counter() - started)
        finally:
            self.busy = False

    def _hand_out(
        self, members: list[tuple[_Job, int, int]], results: list[Arrays], model_seconds: float, seconds: float
    ) -> None:
        """Give each job its rows' outputs; a job with all its rows back is answered."""
        for (job, _, end), outputs in zip(members, results, strict=True):
            job.computed(model_seconds, seconds)
            job.outputs.append(outputs)
            job.served = end
            if job.remaining == 0:
                self._finish(job)

    def _finish(self, job: _Job, error: Exception | None = None) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result({k: np.concatenate([o[k] for o in job.outputs]) for k in job.outputs[0]})
