"""Classification of a complaint: pure rules applied from the ClassificationPolicy, no I/O.

Each dimension has its own module and function returning its value and the reasons for it:
`category` (who decides it), `severity`, `temperament`, `loyalty`, `publicity` and `priority`;
`keywords` matches policy keywords in the text, and `classification` puts them together. Reasons
are written for the agent who picks up the case; they name matched policy keywords and numbers,
never the customer's name, email or words beyond a matched keyword.
"""
from services.intake.domain.category import (
    CategoryDecision, DecidedBy, Prediction, classify_category, decide_category, decided_without_model,
    keyword_hits, mapped_crm_category,
)
from services.intake.domain.classification import Classification, classify
from services.intake.domain.keywords import Finding, complaint_text, matched_keywords
from services.intake.domain.loyalty import assess_loyalty
from services.intake.domain.priority import assign_priority
from services.intake.domain.publicity import assess_publicity_risk
from services.intake.domain.severity import assess_severity
from services.intake.domain.temperament import MAX_SENTENCES, SENTENCE_END, assess_temperament, negativity

__all__ = [
    "MAX_SENTENCES", "SENTENCE_END", "CategoryDecision", "Classification", "DecidedBy", "Finding", "Prediction",
    "assess_loyalty", "assess_publicity_risk", "assess_severity", "assess_temperament", "assign_priority",
    "classify", "classify_category", "complaint_text", "decide_category", "decided_without_model", "keyword_hits",
    "mapped_crm_category", "matched_keywords", "negativity",
]
