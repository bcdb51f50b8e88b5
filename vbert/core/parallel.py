"""An ordered, bounded parallel map over worker processes.

`multiprocessing.Pool.imap` reads its whole input up front; this one keeps at most `max_in_flight` items
submitted, so memory stays flat however long the input stream is, and results come back in input order, so
output is the same for any number of workers.
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


def ordered_map(
    func: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
    max_in_flight: int | None = None,
) -> Iterator[R]:
    """Yield `func(item)` for each item, in order, computed by `workers` processes (in-process when 1)."""
    if workers <= 1:
        if initializer:
            initializer(*initargs)
        yield from map(func, items)
        return
    limit = max_in_flight or 2 * workers
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer, initargs) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.apply_async(func, (item,)))
            if len(pending) >= limit:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
