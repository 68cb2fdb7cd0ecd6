"""Prometheus metrics of one gateway instance (its own registry, so tests can run several)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Metrics"]


class _DictCounter(Collector):
    """A labelled counter kept in a plain dict and read at scrape time.

    prometheus_client's Counter takes a lock on every inc(); at tens of thousands of readings a
    second that lock is a measurable share of the per-reading cost, so the hot path adds to a
    dict on the event loop instead.
    """

    def __init__(self, name: str, doc: str, label: str) -> None:
        self.name, self.doc, self.label = name, doc, label
        self.values: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        fam = CounterMetricFamily(self.name, self.doc, labels=[self.label])
        for key, value in list(self.values.items()):
            fam.add_metric([key], value)
        yield fam


class Metrics:
    """Every metric the gateway exports at /metrics."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.readings = _DictCounter("gateway_readings", "Readings received from devices.", "device")
        r.register(self.readings)
        self.malformed = Counter(
            "gateway_malformed_payloads_total",
            "Payloads dropped as malformed or oversized.",
            ["driver", "reason"],
            registry=r,
        )
        self.incident_events = Counter(
            "gateway_incident_events_total",
            "Incident events published, by category and life step.",
            ["category", "kind"],
            registry=r,
        )
        self.open_incidents = Gauge(
            "gateway_open_incidents", "Incidents not yet resolved or closed.", ["category"], registry=r
        )
        self.outbox_depth = Gauge(
            "gateway_outbox_undelivered_events", "Events not yet delivered to every consumer.", registry=r
        )
        self.outbox_bytes = Gauge("gateway_outbox_undelivered_bytes", "Bytes of undelivered events.", registry=r)
        self.outbox_oldest_age = Gauge(
            "gateway_outbox_oldest_undelivered_age_seconds", "Age of the oldest undelivered event.", registry=r
        )
        self.outbox_capacity_hours = Gauge(
            "gateway_outbox_capacity_hours",
            "Hours of uplink outage the free outbox budget holds at the last day's intake rate (+Inf when idle).",
            registry=r,
        )
        self.outbox_dropped = Counter(
            "gateway_outbox_dropped_events_total",
            "Undelivered events dropped because the byte budget was full.",
            registry=r,
        )
        self.outbox_commits = Counter("gateway_outbox_commits_total", "Durable group commits.", registry=r)
        self.outbox_committed = Counter(
            "gateway_outbox_committed_events_total", "Events committed durably.", registry=r
        )
        self.commit_batch = Histogram(
            "gateway_outbox_commit_batch_events",
            "Events per group commit.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
            registry=r,
        )
        self.delivery_lag = Gauge(
            "gateway_delivery_lag_events",
            "Committed events a consumer has not yet delivered.",
            ["consumer"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "gateway_delivery_failures_total", "Failed delivery attempts.", ["consumer"], registry=r
        )
        self.delivered = Counter("gateway_delivered_events_total", "Events delivered.", ["consumer"], registry=r)
        self.task_state = Gauge(
            "gateway_task_state", "1 for the current state of each supervised task.", ["task", "state"], registry=r
        )
        self.task_restarts = Counter(
            "gateway_task_restarts_total", "Restarts of supervised tasks.", ["task"], registry=r
        )
