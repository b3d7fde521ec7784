"""The service's Prometheus metrics, in their own registry (so two apps in one test process
never share counters)."""

from __future__ import annotations


class Metrics:
    """Counters and histograms of requests, refusals, predictions and micro-batches."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("classifier_requests", "HTTP requests by path and status", ["path", "status"], registry=self.registry)
        self.errors = Counter("classifier_errors", "Refused or failed requests by kind", ["kind"], registry=self.registry)
        self.latency = Histogram(
            "classifier_request_latency_seconds",
            "Request latency",
            ["path"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.predictions = Counter(
            "classifier_predictions", "Predictions by model, role and label", ["model", "role", "label"], registry=self.registry
        )
        self.abstained = Counter(
            "classifier_abstained", "Predictions below the confidence threshold", ["model", "role"], registry=self.registry
        )
        self.batch_size = Histogram(
            "classifier_batch_size",
            "Texts per micro-batch",
            ["model", "role"],
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self.shadow_dropped = Counter(
            "classifier_shadow_dropped", "Shadow inputs dropped because its queue was full", registry=self.registry
        )
        self.queue_depth = Gauge("classifier_queue_depth", "Requests waiting for the model", ["role"], registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
