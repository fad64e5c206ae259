"""Compensation's own metrics (the shared ones come from shared.metrics). No customer data in labels:
rule ids come from the policy file, sources are CRM system names."""
from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import service_metrics

SERVICE = "compensation"
common = service_metrics(SERVICE)

decisions = Counter(
    "helpdesk_compensation_decisions_total", "Compensation decisions, by outcome, rule and reason",
    ["outcome", "rule", "reason"],
)
value_granted = Counter(
    "helpdesk_compensation_value_granted_total",
    "Estimated cost of compensation granted (automatically or approved), in units of the currency",
    ["currency"],
)
pending_approvals = Gauge("helpdesk_compensation_pending_approvals", "Compensations waiting for an approver")
approval_latency = Histogram(
    "helpdesk_compensation_approval_latency_seconds", "From decision to an approver's answer", ["answer"],
    buckets=(60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86400, 3 * 86400, 7 * 86400),
)
approvals_refused = Counter(
    "helpdesk_compensation_approvals_refused_total",
    "Approval answers refused (approver's role too low or unknown, decision unknown or already settled)",
    ["reason"],
)
escalations = Counter(
    "helpdesk_compensation_approval_escalations_total", "Stale pending approvals handed to the next role", ["to_role"]
)
budget_remaining = Gauge(
    "helpdesk_compensation_budget_remaining", "Monthly compensation budget left, per CRM source and currency",
    ["source", "currency"],
)
