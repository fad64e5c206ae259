"""A complaint's whole classification: every dimension, and the reasons for each."""
from __future__ import annotations

from dataclasses import dataclass

from services.intake.domain.facts import ComplaintFacts as Complaint
from services.intake.domain.category import DecidedBy, Prediction, decide_category
from services.intake.domain.keywords import complaint_text
from services.intake.domain.loyalty import assess_loyalty
from services.intake.domain.priority import assign_priority
from services.intake.domain.publicity import assess_publicity_risk
from services.intake.domain.severity import assess_severity
from services.intake.domain.temperament import assess_temperament
from services.intake.policy import ClassificationPolicy
from shared.events import Loyalty, Priority, PublicityRisk, Severity, Temperament


@dataclass(frozen=True)
class Classification:
    """Every dimension of one complaint, the reasons for them, and how the category was decided."""

    category: str
    severity: Severity
    temperament: Temperament
    loyalty: Loyalty
    publicity_risk: PublicityRisk
    priority: Priority
    reasons: tuple[str, ...]
    decided_by: DecidedBy = "keywords"
    needs_review: bool = False
    confidence: float | None = None


def classify(complaint: Complaint, policy: ClassificationPolicy, repeat_contacts: int,
             prediction: Prediction | None = None) -> Classification:
    """`repeat_contacts`: how many earlier complaints this case already had (0 for a new case);
    `prediction`: the learned classifier's opinion of the complaint's text, None for keywords only."""
    text = complaint_text(complaint)
    decision = decide_category(text, policy, prediction, complaint.crm_category)
    category = decision.category
    severity, severity_reasons = assess_severity(text, category, complaint.order, repeat_contacts, policy.severity)
    temperament, temperament_reasons = assess_temperament(text, policy.temperament)
    loyalty, loyalty_reasons = assess_loyalty(complaint.customer, policy.loyalty)
    publicity, publicity_reasons = assess_publicity_risk(complaint, policy.publicity)
    priority, priority_reasons = assign_priority(severity, temperament, loyalty, publicity, policy.priority, category,
                                                 complaint.public)
    reasons = decision.reasons + severity_reasons + temperament_reasons + loyalty_reasons + publicity_reasons + priority_reasons
    return Classification(category, severity, temperament, loyalty, publicity, priority, tuple(reasons),
                          decision.decided_by, decision.needs_review, decision.confidence)
