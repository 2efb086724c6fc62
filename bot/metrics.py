"""Prometheus metrics, one registry per app (so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "corecircle_messages_total", "Messages handled", ["channel", "direction"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "corecircle_duplicate_messages_total", "Retries answered from the first result",
            ["channel"], registry=self.registry,
        )
        self.replies = Counter(
            "corecircle_replies_total", "Bot replies by audience", ["audience"],
            registry=self.registry,
        )
        self.tickets = Counter(
            "corecircle_tickets_opened_total", "Escalation tickets opened", ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "corecircle_pipeline_seconds", "Time to handle one inbound message", ["channel"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.lock_degraded = Counter(
            "corecircle_conversation_lock_degraded_total",
            "Messages handled without the cross-worker conversation lock, by how: process "
            "(state store down: ordered within the worker only) or skipped (busy past the wait)",
            ["how"], registry=self.registry,
        )
        self.errors = Counter(
            "corecircle_pipeline_errors_total",
            "Messages whose handling failed and were handed to a human",
            registry=self.registry,
        )

        # -- the escalation scan (bot/scheduler.py) ----------------------------------------------
        self.scheduler_last_tick = Gauge(
            "corecircle_scheduler_last_tick_seconds",
            "Unix time of the last successful SLA/follow-up scan (0: none yet)",
            registry=self.registry,
        )
        self.scheduler_errors = Counter(
            "corecircle_scheduler_tick_errors_total",
            "Scans that raised (logged; the next tick runs as usual)",
            registry=self.registry,
        )
        self.followups = Counter(
            "corecircle_followups_total",
            "Due follow-ups handled by the scan, by outcome (sent, kept, failed, stale, fenced)",
            ["outcome"], registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
