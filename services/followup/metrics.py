"""Followup's own metrics (the shared ones come from shared.metrics). No customer data in labels."""
from prometheus_client import Counter, Gauge

from shared.metrics import service_metrics

SERVICE = "followup"
common = service_metrics(SERVICE)

scheduled = Counter(
    "helpdesk_followup_scheduled_total", "Follow-ups scheduled, by kind and channel", ["kind", "channel"]
)
due = Counter(
    "helpdesk_followup_due_total", "Follow-ups that fell due and were handed to the CRM, by kind and channel",
    ["kind", "channel"],
)
cancelled = Counter(
    "helpdesk_followup_cancelled_total",
    "Scheduled follow-ups cancelled (customer returned, case reopened, or a rule objected when due)",
    ["kind", "channel", "reason"],
)
surveys_skipped = Counter(
    "helpdesk_followup_surveys_skipped_total",
    "Satisfaction surveys not sent: survey fatigue window, open or irate case, frequency rules", ["reason"],
)
skipped = Counter(
    "helpdesk_followup_skipped_total",
    "Follow-ups of any kind not sent because a rule objected, when planned or when due: one followup.skipped event each",
    ["kind", "reason"],
)
deferred = Counter(
    "helpdesk_followup_deferred_total", "Follow-ups moved later by a frequency rule or quiet hours", ["kind", "rule"]
)
customers_in_retention = Gauge(
    "helpdesk_followup_customers_in_retention", "Customers with at least one retention check-in still scheduled"
)
entered_retention = Counter(
    "helpdesk_followup_customers_entered_retention_total",
    "Customers whose first pending retention check-in was scheduled after a resolved complaint",
)
returned_after_recovery = Counter(
    "helpdesk_followup_customers_returned_after_recovery_total",
    "Customers who came back (customer.returned) while in retention after a complaint: the number that matters",
)

survey_responses = Counter(
    "helpdesk_followup_survey_responses_total",
    "Survey answers received (survey.answered); ÷ surveys due = response rate",
)


def count_skip(kind: str, reason: str) -> None:
    """Counts one skipped follow-up (one `followup.skipped` event); surveys also by reason alone."""
    skipped.labels(kind, reason).inc()
    if kind == "satisfaction_survey":
        surveys_skipped.labels(reason).inc()
