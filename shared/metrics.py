"""Metrics every service has, named `helpdesk_<service>_<what>_<unit>`.

Created once per service name: a process runs one service, tests may import several.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from prometheus_client import Counter, Gauge, Histogram

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass(frozen=True)
class ServiceMetrics:
    events_handled: Counter
    duplicates: Counter
    rejected: Counter
    handler_duration: Histogram
    outbox_published: Counter
    outbox_backlog: Gauge
    outbox_delay: Histogram
    outbox_oldest_age: Gauge
    timers_fired: Counter
    timers_failed: Counter
    timers_dropped: Counter
    timers_armed: Gauge
    timer_oldest_overdue: Gauge
    fire_lag: Histogram
    policy_reloads: Counter
    policy_refusals: Counter
    policy_info: Gauge
    consumer_lag: Gauge
    batch_size: Histogram
    dependency_retries: Counter
    dependency_up: Gauge


@lru_cache(maxsize=None)
def service_metrics(service: str) -> ServiceMetrics:
    p = f"helpdesk_{service}"
    return ServiceMetrics(
        events_handled=Counter(f"{p}_events_handled_total", "Inbound events handled", ["topic", "outcome"]),
        duplicates=Counter(f"{p}_duplicate_events_total", "Redelivered inbound events absorbed as no-ops", ["topic"]),
        rejected=Counter(f"{p}_rejected_events_total", "Inbound records sent to the rejected topic", ["topic", "reason"]),
        handler_duration=Histogram(
            f"{p}_handler_duration_seconds", "Time to handle one inbound event (its share of its batch)", ["topic"], buckets=LATENCY_BUCKETS
        ),
        outbox_published=Counter(f"{p}_outbox_published_events_total", "Events published by the outbox relay", ["topic"]),
        outbox_backlog=Gauge(f"{p}_outbox_backlog_events", "Outbox rows waiting to be published"),
        outbox_delay=Histogram(
            f"{p}_outbox_delay_seconds", "From state change commit to publication", buckets=LATENCY_BUCKETS
        ),
        outbox_oldest_age=Gauge(
            f"{p}_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox row (0 when the outbox is empty): grows while nothing is published",
        ),
        timers_fired=Counter(f"{p}_timers_fired_total", "Durable timers fired", ["kind"]),
        timers_failed=Counter(f"{p}_timers_failed_total", "Timer firings that failed and were retried", ["kind"]),
        timers_dropped=Counter(
            f"{p}_timers_dropped_total", "Timers given up after their last failed attempt: a deadline lost", ["kind"]
        ),
        timers_armed=Gauge(f"{p}_timers_armed", "Timers armed in PostgreSQL"),
        timer_oldest_overdue=Gauge(
            f"{p}_timer_oldest_overdue_seconds",
            "How long the earliest armed timer is past its due time (0 when none is due): grows while nothing fires",
        ),
        fire_lag=Histogram(
            f"{p}_timer_fire_lag_seconds", "From a timer's due time to its firing", ["kind"], buckets=LATENCY_BUCKETS
        ),
        policy_reloads=Counter(f"{p}_policy_reloads_total", "Policy files reloaded after an edit", ["policy"]),
        policy_refusals=Counter(f"{p}_policy_refusals_total", "Policy edits refused as invalid", ["policy"]),
        policy_info=Gauge(f"{p}_policy_info", "The policy version in force (value 1)", ["policy", "version"]),
        consumer_lag=Gauge(
            f"{p}_consumer_lag_records", "Records on an assigned partition not yet handled and committed",
            ["topic", "partition", "group"],
        ),
        batch_size=Histogram(
            f"{p}_consumer_batch_records", "Inbound records handled in one transaction (one Kafka fetch)",
            buckets=BATCH_BUCKETS,
        ),
        dependency_retries=Counter(
            f"{p}_dependency_retries_total",
            "Retries of a loop's work while a dependency (postgres, kafka; other: not a dependency's fault) failed",
            ["dependency", "loop"],
        ),
        dependency_up=Gauge(
            f"{p}_dependency_up", "1 while every loop of the service reaches the dependency, 0 while one retries",
            ["dependency"],
        ),
    )
