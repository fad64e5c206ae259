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

# ---------- the recovery read model (services/followup/recovery.py) ----------
# Gauges over a fixed window, set once a minute by `Recovery.refresh_gauges` from the read model (the same on
# every instance: take their max): cases resolved in the last 90 days whose 30-day return window has
# closed. Labels are the category and the compensation rule id (both from the policies: a handful of
# values), never a customer or case.
recovery_events = Counter(
    "helpdesk_followup_recovery_facts_total",
    "Records folded into the recovery read model, by fact (classified, contacted, resolved, reopened, breached, "
    "compensationdecided, customer.returned)", ["fact"],
)
recovery_returned_ratio = Gauge(
    "helpdesk_followup_recovery_returned_ratio",
    "Share of resolved cases (last 90 days, 30-day window closed) whose customer came back within 30 days, "
    "by category (category=\"all\": every case)", ["category"],
)
recovery_returned_ratio_by_rule = Gauge(
    "helpdesk_followup_recovery_returned_by_rule_ratio",
    "Share of resolved cases (last 90 days, 30-day window closed) whose customer came back within 30 days, "
    "by compensation rule (rule_id=\"none\": no rule)", ["rule_id"],
)
recovery_cases = Gauge(
    "helpdesk_followup_recovery_cases",
    "Resolved cases in the recovery gauges' population (last 90 days, 30-day window closed), by category",
    ["category"],
)
recovery_cost_per_retained = Gauge(
    "helpdesk_followup_recovery_cost_per_retained",
    "Value granted to a rule's cases ÷ distinct customers of them who came back within 30 days, in the currency's "
    "units (last 90 days, 30-day window closed)", ["rule_id", "currency"],
)
recovery_repeat_complaint_ratio = Gauge(
    "helpdesk_followup_recovery_repeat_complaint_ratio",
    "Share of resolved cases (last 90 days, 30-day window closed) whose customer opened another case within 30 days",
)


def set_recovery(report) -> None:
    """Sets the recovery gauges from a `RecoveryReport` (services/followup/domain/recovery.py); label
    values no longer in the report are removed, a ratio without cases is not exported."""
    for gauge in (recovery_returned_ratio, recovery_returned_ratio_by_rule, recovery_cases, recovery_cost_per_retained):
        gauge.clear()
    recovery_cases.labels("all").set(report.overall.cases)
    if report.overall.ratio is not None:
        recovery_returned_ratio.labels("all").set(report.overall.ratio)
    for category, share in report.by_category.items():
        recovery_cases.labels(category).set(share.cases)
        if share.ratio is not None:
            recovery_returned_ratio.labels(category).set(share.ratio)
    for rule_id, share in report.by_rule.items():
        if share.ratio is not None:
            recovery_returned_ratio_by_rule.labels(rule_id).set(share.ratio)
    for cost in report.cost_per_retained:
        if cost.per_retained is not None:
            recovery_cost_per_retained.labels(cost.rule_id, cost.currency).set(float(cost.per_retained))
    rate = report.repeat_complaint_rate
    recovery_repeat_complaint_ratio.set(rate if rate is not None else 0)
