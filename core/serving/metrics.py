"""Prometheus metrics of one rerank service (``GET /metrics``), on a registry of its own.

Every app gets its own :class:`prometheus_client.CollectorRegistry`, so several apps in one process
(tests, a proxy in front of an engine) never collide. Metric names:

- ``prism_requests_total{endpoint, status}``: HTTP requests by endpoint and status code.
- ``prism_request_latency_seconds{endpoint}``: request latency histogram.
- ``prism_requests_in_flight``: requests being handled.
- ``prism_documents_scored_total``: documents scored by successful rerank requests.
- ``prism_tokens_generated_total``: generated tokens, **approximated** from the results (the
  engine keeps no token counter): each generated text (``raw_output``) re-tokenized with the
  model's tokenizer; the end-of-turn token, skipped when decoding, is not counted.
- ``prism_queue_depth``: engine jobs waiting or running (``engine_loop.queue_depth``; 0 before
  the model is loaded or for a backend without an engine loop).
- ``prism_engine_forward_passes_total``, ``prism_engine_coalesced_passes_total``,
  ``prism_engine_decode_steps_total``: the engine loop's counters (coalesced passes served several
  requests at once).
- ``prism_model_loaded``: 1 once the model is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prism_core.serving._deps import require

require("prometheus_client", "server")

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

#: Latency buckets in seconds: a cached score-only call on a GPU to a long evidence generation.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class _EngineStatsCollector(Collector):
    """Reads the engine loop's counters at scrape time."""

    def __init__(self, stats: Callable[[], Any]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        stats = self._stats()
        for name, attr, doc in (
            ("prism_engine_forward_passes", "passes", "Forward passes run by the engine loop."),
            (
                "prism_engine_coalesced_passes",
                "coalesced_passes",
                "Forward passes shared by several requests.",
            ),
            ("prism_engine_decode_steps", "decode_steps", "Decode steps run by the engine loop."),
        ):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], float(getattr(stats, attr, 0)) if stats is not None else 0.0)
            yield family


class ServerMetrics:
    """The service's metrics, on a registry of their own.

    Args:
        queue_depth: Returns the engine's queue depth now.
        engine_stats: Returns the engine loop's ``LoopStats`` (or ``None`` when there is none yet).
        loaded: Returns whether the model is loaded.

    Example:
        >>> metrics = ServerMetrics(lambda: 0, lambda: None, lambda: True)
        >>> metrics.requests.labels(endpoint="/v2/rerank", status="200").inc()
        >>> b"prism_requests_total" in metrics.render()[0]
        True
    """

    def __init__(
        self,
        queue_depth: Callable[[], int],
        engine_stats: Callable[[], Any],
        loaded: Callable[[], bool],
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "prism_requests",
            "HTTP requests by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "prism_request_latency_seconds",
            "Request latency in seconds.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("prism_requests_in_flight", "Requests being handled.", registry=self.registry)
        self.documents = Counter(
            "prism_documents_scored",
            "Documents scored by successful rerank requests.",
            registry=self.registry,
        )
        self.tokens = Counter(
            "prism_tokens_generated",
            "Generated tokens (approximate: each generated text re-tokenized).",
            registry=self.registry,
        )
        queue = Gauge("prism_queue_depth", "Engine jobs waiting or running.", registry=self.registry)
        queue.set_function(lambda: float(queue_depth()))
        model_loaded = Gauge("prism_model_loaded", "1 once the model is loaded.", registry=self.registry)
        model_loaded.set_function(lambda: 1.0 if loaded() else 0.0)
        self.registry.register(_EngineStatsCollector(engine_stats))

    def render(self) -> tuple[bytes, str]:
        """The metrics in Prometheus text format, and their content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
