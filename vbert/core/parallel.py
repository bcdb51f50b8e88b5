"""An ordered, bounded parallel map over worker processes, and the state each worker sets up once.

`multiprocessing.Pool.imap` reads its whole input up front; this one keeps at most `max_in_flight` items
submitted, so memory stays flat however long the input stream is, and results come back in input order, so
output is the same for any number of workers.

What every item needs (a tokenizer, a spelling fixer, the task's encodings) is made once per process by `setup`
and read back with `worker_state()`, in the workers as in-process (one worker):

    results = ordered_map(fix_batch, batches, workers, setup=(SpellFixer, (counts, lexicon, config)))
    def fix_batch(batch): return worker_state().fix(batch)
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers(requested: int = 0) -> int:
    """`requested`, or every core when it is 0."""
    return requested if requested > 0 else (os.cpu_count() or 1)


_STATE: dict[str, Any] = {}


def _set_up(factory: Callable[..., Any], args: tuple) -> None:
    _STATE["state"] = factory(*args)


def _set_up_worker(setup: tuple[Callable[..., Any], tuple] | None) -> None:
    """A worker process: logging as the stage's (spawned workers start without it, and their progress and results
    lines would be lost), then `setup`'s state."""
    from vbert.core.cli import setup_logging

    setup_logging()
    if setup:
        _set_up(*setup)


def worker_state() -> Any:
    """What `setup` made in this process (the worker's, or this one's for one worker)."""
    if "state" not in _STATE:
        raise RuntimeError("worker_state() outside an ordered_map with setup")
    return _STATE["state"]


def ordered_map(
    func: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    setup: tuple[Callable[..., Any], tuple] | None = None,
    max_in_flight: int | None = None,
) -> Iterator[R]:
    """Yield `func(item)` for each item, in order, computed by `workers` processes (in-process when 1); `setup`
    (factory, args) makes each process's `worker_state()` first."""
    if workers <= 1:
        if setup:
            _set_up(*setup)
        yield from map(func, items)
        return
    limit = max_in_flight or 2 * workers
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, _set_up_worker, (setup,)) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.apply_async(func, (item,)))
            if len(pending) >= limit:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
