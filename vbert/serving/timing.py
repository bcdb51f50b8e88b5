"""Where a request's time goes: named spans, sent back as the `Server-Timing` header (W3C Server Timing, which
browsers' developer tools and `curl -v` show) and written to the access log.

    read      the body arriving (and gunzipped)
    parse     JSON to Python, in a worker thread (the hand-off included)
    encode    tokenising texts, or checking token ids, in a worker thread
    queue     waiting for the batcher to start the request's first rows
    model     the model's calls on the batches that held the request's rows (a batch shared with others counts
              whole for each of them)
    batching  the rest of those batches' round trips: padding, the hand-off to the inference thread and back
    respond   the answer to JSON, in a worker thread
    total     from the request's first byte to its answer's headers

The spans of one request are kept in a context variable that the HTTP middleware sets, so the serving core adds to
them without passing them around; outside a request (gRPC, tests) they are simply not kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_CURRENT: ContextVar[Timings | None] = ContextVar("vbert_request_timings", default=None)


class Timings:
    """Seconds per span name, from a start time."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.spans: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.spans[name] = self.spans.get(name, 0.0) + seconds

    def milliseconds(self) -> dict[str, float]:
        """Every span and the total so far, in milliseconds (two decimals)."""
        total = time.perf_counter() - self.started
        return {name: round(seconds * 1000, 2) for name, seconds in {**self.spans, "total": total}.items()}

    def header(self) -> str:
        """The Server-Timing header's value: `read;dur=0.05, parse;dur=0.21, ..., total;dur=12.3`."""
        return ", ".join(f"{name};dur={ms:.2f}" for name, ms in self.milliseconds().items())


def parse_header(value: str) -> dict[str, float]:
    """A Server-Timing header's spans as {name: milliseconds}, in its order (what `Timings.header` writes)."""
    spans = (part.strip().split(";dur=") for part in value.split(",") if part.strip())
    return {name: float(ms) for name, ms in spans}


def begin() -> Timings:
    """Keep the spans of the request this task serves."""
    timings = Timings()
    _CURRENT.set(timings)
    return timings


def current() -> Timings | None:
    """The spans of the request being served here, if any."""
    return _CURRENT.get()


@contextmanager
def span(name: str) -> Iterator[None]:
    """Add the time of the `with` block to the current request's span `name`."""
    timings = _CURRENT.get()
    started = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings.add(name, time.perf_counter() - started)
