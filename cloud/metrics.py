"""Prometheus metrics for ingest: rate, rejections by reason, hub backlogs, store latency.

Each app gets its own registry, so several apps (tests, workers) never collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.stored = Counter("ohmni_readings_stored", "Readings newly stored", registry=self.registry)
        self.duplicates = Counter("ohmni_readings_duplicate", "Readings already stored (retries)",
                                  registry=self.registry)
        self.rejected = Counter("ohmni_readings_rejected", "Readings refused, by reason", ["reason"],
                                registry=self.registry)
        self.batches = Counter("ohmni_batches", "Batches received, by outcome", ["outcome"], registry=self.registry)
        self.bodies_too_large = Counter("ohmni_bodies_too_large", "Request bodies refused as over their limit: a hub's "
                                        "batch, or any other call (not by path: a client chooses the path)", ["route"],
                                        registry=self.registry)
        self.events = Counter("ohmni_meter_events", "Meter replacements and register rollovers seen", ["event"],
                              registry=self.registry)
        self.backlog = Gauge("ohmni_hub_backlog_readings", "Readings waiting in a hub's outbox, as it last said",
                             ["hub"], registry=self.registry)
        self.store_seconds = Histogram("ohmni_store_seconds", "Time to store one batch", registry=self.registry,
                                       buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    def render(self) -> bytes:
        return generate_latest(self.registry)
