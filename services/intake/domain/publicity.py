"""Publicity risk: high for a public complaint or one on a channel the policy names."""
from __future__ import annotations

from services.intake.domain.facts import ComplaintFacts as Complaint
from services.intake.domain.keywords import Finding
from services.intake.policy import PublicityRules


def assess_publicity_risk(complaint: Complaint, rules: PublicityRules) -> Finding:
    """High when the complaint was posted publicly (if the policy says so) or came in on a listed channel."""
    reasons = []
    if rules.high_when_public and complaint.public:
        reasons.append("posted publicly")
    if complaint.channel in rules.high_channels:
        reasons.append(f"came in on {complaint.channel}")
    return ("high", ["publicity risk high: " + ", ".join(reasons)]) if reasons else ("low", [])
