"""The sla service's own metrics (the shared ones, incl. timer fire lag, come from shared.metrics).

Labels are clock kinds, priorities, thresholds and levels only: never case or customer ids.
"""
from __future__ import annotations

from datetime import datetime, timezone

from prometheus_client import Counter, Gauge, Histogram

from services.sla.domain.calendar import NoWorkingTime, target_as_business_time
from services.sla.domain import AutomatedContact, Emit
from services.sla.policy import AlwaysOpen, SlaPolicy
from shared.metrics import service_metrics

SERVICE = "sla"
common = service_metrics(SERVICE)
CLOCKS = ("first_contact", "update", "promise", "resolution")

# Seconds of working time: from a few seconds (test policies) to days.
CONTACT_BUCKETS = (1, 2, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 432000)

started = Counter("helpdesk_sla_clocks_started_total", "Clocks started", ["clock", "priority"])
warnings = Counter("helpdesk_sla_warnings_total", "Warnings sent: a clock used this share of its target", ["clock", "priority", "threshold"])
breaches = Counter("helpdesk_sla_breaches_total", "Clocks that passed their deadline", ["clock", "priority"])
escalations = Counter("helpdesk_sla_escalations_total", "Escalations after a breach", ["clock", "priority", "level"])
met = Counter("helpdesk_sla_clocks_met_total", "Clocks met, within or after their target", ["clock", "priority", "outcome"])
cancelled = Counter("helpdesk_sla_clocks_cancelled_total", "Clocks ended unmet because the case was resolved", ["clock", "priority"])
retargeted = Counter(
    "helpdesk_sla_clocks_retargeted_total", "Open clocks moved to a higher priority's target by a repeat complaint",
    ["clock", "old_priority", "priority"],
)
automated_contacts = Counter(
    "helpdesk_sla_automated_contacts_total",
    "Automated contacts (auto-acknowledgements, bots): counted apart, they meet no clock", ["type", "by"],
)
first_contact = Histogram(
    "helpdesk_sla_first_contact_seconds", "Working time from complaint to first contact", ["priority"],
    buckets=CONTACT_BUCKETS,
)
open_clocks = Gauge("helpdesk_sla_open_clocks", "Clocks not yet met or cancelled", ["clock", "priority", "state"])
at_risk = Gauge(
    "helpdesk_sla_clocks_at_risk", "Running clocks past a warning threshold, not yet breached", ["clock", "priority", "threshold"]
)
pending_activity = Gauge("helpdesk_sla_pending_activity_events", "Activity kept until its case's classification arrives")
round_the_clock_fallbacks = Counter(
    "helpdesk_sla_round_the_clock_fallbacks_total",
    "Decisions taken round the clock (24x7) because a calendar had no working time within ten years",
)
target_seconds = Gauge("helpdesk_sla_target_seconds", "Target of each clock in the policy in force (working time)", ["clock", "priority"])


def start_at_zero(priorities: tuple[str, ...] = ("P1", "P2", "P3", "P4")) -> None:
    """Creates every clock x priority series at 0, so that rate() and increase() see the first breach."""
    for clock in CLOCKS:
        for priority in priorities:
            started.labels(clock, priority)
            breaches.labels(clock, priority)
            cancelled.labels(clock, priority)
            met.labels(clock, priority, "within")
            met.labels(clock, priority, "after")
    for priority in priorities:
        first_contact.labels(priority)
    for activity in ("case.contacted", "case.promise_kept"):
        for by in ("bot", "system", "agent", "unspecified"):
            automated_contacts.labels(activity, by)


def count_emitted(events: list[Emit]) -> None:
    for event in events:
        clock, priority = event.fields["clock"], event.fields["priority"]
        if event.type == "sla.started":
            started.labels(clock, priority).inc()
        elif event.type == "sla.warning":
            warnings.labels(clock, priority, str(event.fields["threshold"])).inc()
        elif event.type == "sla.breached":
            breaches.labels(clock, priority).inc()
        elif event.type == "sla.escalated":
            escalations.labels(clock, priority, str(event.fields["level"])).inc()
        elif event.type == "sla.cancelled":
            cancelled.labels(clock, priority).inc()
        elif event.type == "sla.retargeted":
            retargeted.labels(clock, event.fields["old_priority"], priority).inc()
        elif event.type == "sla.met":
            met.labels(clock, priority, "after" if event.fields["breached"] else "within").inc()
            if clock == "first_contact":
                first_contact.labels(priority).observe(event.fields["elapsed_seconds"])


def count_automated(contacts: list[AutomatedContact]) -> None:
    for contact in contacts:
        automated_contacts.labels(contact.activity_type, contact.by or "unspecified").inc()


def publish_targets(policy: SlaPolicy, now: datetime | None = None) -> None:
    """Targets as seconds of working time, for alerts comparing against them.

    A target in business days is measured from `now`; it varies a little with short days. On a
    calendar with no working day within ten years (holidays covering years) it is measured round the
    clock, as the service then counts it (`Sla.decide`).
    """
    now = now or datetime.now(timezone.utc)
    for priority, targets in policy.targets.items():
        calendar = policy.calendar_named(policy.calendar_name(priority))
        for clock in ("first_contact", "update", "resolution"):
            try:
                target = target_as_business_time(now, getattr(targets, clock), calendar)
            except NoWorkingTime:
                target = target_as_business_time(now, getattr(targets, clock), AlwaysOpen())
            target_seconds.labels(clock, priority).set(target.total_seconds())


def set_gauges(open_rows, risk_rows, pending: int) -> None:
    open_clocks.clear()
    for row in open_rows:
        open_clocks.labels(row["kind"], row["priority"], row["state"]).set(row["n"])
    at_risk.clear()
    for row in risk_rows:
        at_risk.labels(row["kind"], row["priority"], str(row["threshold"])).set(row["n"])
    pending_activity.set(pending)
