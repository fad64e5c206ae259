"""Intake's own metrics (the shared ones come from shared.metrics). No customer data in labels."""
from prometheus_client import Counter

from shared.metrics import service_metrics

SERVICE = "intake"
common = service_metrics(SERVICE)

complaints_classified = Counter(
    "helpdesk_intake_complaints_classified_total",
    "Complaints classified, by category, priority and channel",
    ["category", "priority", "channel"],
)
repeat_contacts = Counter(
    "helpdesk_intake_repeat_contacts_total", "Complaints on a case that already had one: the customer had to ask again"
)
