"""Prometheus metrics of the streaming service, on a registry of their own (one per app instance)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from assistant.store.writer import StoreHealth

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.04, 0.06, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """Chunks, chunk-to-event latency, flags by label, alerts, connected calls and clients, batches."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._children: dict[tuple[int, str], Any] = {}
        r = self.registry
        self.chunks = Counter(
            "assistant_chunks", "transcript chunks received", ["kind"], registry=r
        )  # kind: final, partial, duplicate, buffered, rejected
        self.latency = Histogram(
            "assistant_chunk_to_event_seconds",
            "time from a final chunk's arrival to its last event (processed)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_event_latency = Histogram(
            "assistant_chunk_to_flag_seconds",
            "time from a final chunk's arrival to its flag or suggestion event",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.flags = Counter("assistant_flags", "red flags raised, by label", ["label"], registry=r)
        self.alerts = Counter(
            "assistant_alerts", "supervisor alerts, by reason and kind", ["reason", "kind"], registry=r
        )
        self.alert_acks = Counter("assistant_alert_acks", "alerts acknowledged by supervisors", registry=r)
        self.events = Counter("assistant_events", "call events published, by type", ["type"], registry=r)
        self.errors = Counter(
            "assistant_stream_errors", "error events sent to sources, by reason", ["reason"], registry=r
        )
        self.gaps = Counter("assistant_gaps", "sequence gaps skipped", ["reason"], registry=r)
        self.connected_calls = Gauge("assistant_connected_calls", "calls with a source connected", registry=r)
        self.live_calls = Gauge("assistant_live_calls", "calls in memory that have not ended", registry=r)
        self.clients = Gauge(
            "assistant_connected_clients", "connected sockets by kind", ["socket"], registry=r
        )
        # model: "redflags" (the classifier) or "queries" (the advisor's query encoder).
        self.batch_size = Histogram(
            "assistant_batch_size",
            "items per model batch",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "assistant_batch_seconds",
            "model pass time per batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_wait = Histogram(
            "assistant_batch_wait_seconds",
            "how long a batch's oldest item queued before its model pass began (high: the model thread is the "
            "bottleneck or is starved of CPU)",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_backlog = Gauge("assistant_store_backlog", "store writes queued", registry=r)
        # Overload (docs/protocol.md "Overload"): kind "suggestions" or "steps"; red flags are never shed.
        self.shed = Counter("assistant_shed", "work skipped under overload, by kind", ["kind"], registry=r)
        self.degraded = Gauge(
            "assistant_degraded",
            "1 while a feature is behind (red_flags, suggestions, steps)",
            ["feature"],
            registry=r,
        )
        self.batch_cpu = Counter(
            "assistant_batch_cpu_seconds",
            "CPU time of the model threads' passes (thread time; with chunks_total: CPU per chunk)",
            ["model"],
            registry=r,
        )

    def watch_store(self, health: Callable[[], StoreHealth]) -> None:
        """Export the store writer's health: ``assistant_store_healthy`` (0 during an outage: alert on it),
        operations written / dropped / rejected, and failed write attempts."""
        self.registry.register(_StoreCollector(health))

    def count(self, counter: Counter, label: str) -> None:
        """``counter.labels(label).inc()`` with the child looked up once: ``labels()`` costs ~10 us of
        Python per call, and the hot path counts every chunk and every event."""
        key = (id(counter), label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(label)
        child.inc()


class _StoreCollector(Collector):
    def __init__(self, health: Callable[[], StoreHealth]) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        h = self.health()
        yield GaugeMetricFamily(
            "assistant_store_healthy",
            "1 while the store takes writes, 0 while writes are held",
            value=int(h.healthy),
        )
        ops = CounterMetricFamily(
            "assistant_store_ops",
            "store operations by outcome: written, dropped (lost: bad rows or a full buffer), rejected (bad rows)",
            labels=["outcome"],
        )
        ops.add_metric(["written"], h.written)
        ops.add_metric(["dropped"], h.dropped)
        ops.add_metric(["rejected"], h.rejected)
        yield ops
        yield CounterMetricFamily(
            "assistant_store_write_failures", "failed store write attempts", value=h.failures
        )
