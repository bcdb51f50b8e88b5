"""The server's Prometheus series (its own registry, so several servers can live in one process), by model."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vbert_requests",
            "Requests by model, endpoint and status",
            ["model", "endpoint", "code"],
            registry=self.registry,
        )
        self.disconnects = Counter(
            "vbert_client_disconnects",
            "Requests whose client left before the answer (not server errors)",
            ["endpoint"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vbert_request_seconds",
            "Request latency",
            ["model", "endpoint"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.batch_size = Histogram(
            "vbert_batch_size",
            "Rows per model inference",
            ["model"],
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self.batch_length = Histogram(
            "vbert_batch_sequence_length",
            "Padded length per inference",
            ["model"],
            registry=self.registry,
            buckets=(16, 32, 64, 128, 256, 512),
        )
        self.inference = Histogram(
            "vbert_inference_seconds", "Model time per inference", ["model"], registry=self.registry
        )
        self.queue_depth = Gauge("vbert_queue_rows", "Rows waiting for a batch", ["model"], registry=self.registry)
        self.truncated = Counter(
            "vbert_truncated_rows", "Rows cut to max_seq_length", ["model"], registry=self.registry
        )

    def on_batch(self, model: str) -> Callable[[int, int, float], None]:
        """What a model's batcher calls after each inference (rows, padded length, seconds)."""

        def observe(rows: int, length: int, seconds: float) -> None:
            self.batch_size.labels(model).observe(rows)
            self.batch_length.labels(model).observe(length)
            self.inference.labels(model).observe(seconds)

        return observe
