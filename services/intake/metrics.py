"""Intake's own metrics (the shared ones come from shared.metrics). No customer data in labels."""
from prometheus_client import Counter, Gauge, Histogram

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
category_decisions = Counter(
    "helpdesk_intake_category_decisions_total",
    "Categories decided, by who decided: crm, keywords, model or fallback",
    ["decided_by"],
)
category_reviews = Counter(
    "helpdesk_intake_category_reviews_total",
    "Complaints classified with needs_review (divide by category_decisions for the review rate)",
)
classifier_confidence = Histogram(
    "helpdesk_intake_classifier_confidence_ratio",
    "The learned classifier's probability of its top category, per complaint (0-1)",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
)
classifier_info = Gauge("helpdesk_intake_classifier_info", "The classifier artifact in force (value 1)", ["version"])
classifier_reloads = Counter("helpdesk_intake_classifier_reloads_total", "Classifier artifacts loaded after a change")
classifier_refusals = Counter(
    "helpdesk_intake_classifier_refusals_total", "Classifier artifacts refused (missing, corrupt, trained for another table)"
)
