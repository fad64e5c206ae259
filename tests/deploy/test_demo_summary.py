"""The demo's summary and timeline add up: fed events and metric samples, check the text they print."""
from __future__ import annotations

from decimal import Decimal

from deploy.demo.summary import EventFacts, Figures, Sample, disagreements, metric_samples, money, render
from deploy.demo.timeline import describe, describe_all, shown_reasons
from services.intake.domain import assess_severity
from services.intake.policy import ClassificationPolicy
from shared.policy import load_policy
from tests.deploy.files import ROOT


def granted(case: str, value: float, currency: str, kind: str = "compensation.granted") -> dict:
    return {"type": kind, "case_id": case, "decision_id": f"d-{case}", "value": value, "currency": currency,
            "authority": "agent", "offers": [], "rule_id": "r"}


def rejected(by: str, topic: str, offset: int, reason: str = "not_json") -> dict:
    return {"type": "complaint.rejected", "rejected_by": by, "topic": topic, "partition": 0, "offset": offset,
            "reason": reason, "errors": []}


def pending(case: str, authority: str, **extra) -> dict:
    return {"type": "compensation.pending_approval", "case_id": case, "decision_id": f"d-{case}", "value": 572.5,
            "currency": "USD", "authority": authority, "offers": [], "rule_id": "r", **extra}


RECORDS = [
    {"type": "complaint.classified", "case_id": "CRM-1-ab"},
    {"type": "complaint.classified", "case_id": "CRM-2-ab"},
    granted("CRM-1-ab", 95.0, "USD"),
    granted("CRM-2-ab", 40.0, "EUR"),
    granted("CRM-3-ab", 40.0, "USD", kind="compensation.approved"),
    pending("CRM-4-ab", "manager"),
    pending("CRM-4-ab", "director", escalated=True, escalation_level=1),
    rejected("intake", "helpdesk.complaints.v1", 7),
    rejected("compensation", "helpdesk.compensation-approvals.v1", 3, "approver_not_authorised"),
    rejected("sla", "helpdesk.case-activity.v1", 11, "invalid_fields"),  # one bad activity record,
    rejected("followup", "helpdesk.case-activity.v1", 11, "invalid_fields"),  # reported by both readers
    {"type": "followup.due", "case_id": "CRM-1-ab"},
    {"type": "followup.due", "case_id": "CRM-2-ab"},
    {"type": "followup.skipped", "case_id": "CRM-2-ab", "kind": "satisfaction_survey", "reason": "open_case"},
]


def metrics_matching_records() -> list[Sample]:
    return [
        Sample("helpdesk_intake_complaints_classified_total", {"category": "billing"}, 1.0),
        Sample("helpdesk_intake_complaints_classified_total", {"category": "delay"}, 1.0),
        Sample("helpdesk_compensation_value_granted_total", {"currency": "USD"}, 135.0),
        Sample("helpdesk_compensation_value_granted_total", {"currency": "EUR"}, 40.0),
        Sample("helpdesk_compensation_approval_escalations_total", {"to_role": "director"}, 1.0),
        Sample("helpdesk_intake_rejected_events_total", {"topic": "helpdesk.complaints.v1", "reason": "not_json"}, 1.0),
        Sample("helpdesk_compensation_approvals_refused_total", {"reason": "approver_not_authorised"}, 1.0),
        Sample("helpdesk_sla_rejected_events_total", {"topic": "helpdesk.case-activity.v1", "reason": "invalid_fields"}, 1.0),
        Sample("helpdesk_followup_rejected_events_total", {"topic": "helpdesk.case-activity.v1", "reason": "invalid_fields"}, 1.0),
        Sample("helpdesk_followup_due_total", {"kind": "thank_you_note", "channel": "email"}, 2.0),
        Sample("helpdesk_followup_skipped_total", {"kind": "satisfaction_survey", "reason": "open_case"}, 1.0),
        Sample("helpdesk_followup_customers_returned_after_recovery_total", {}, 0.0),
    ]


def line(text: list[str], label: str) -> str:
    [found] = [t for t in text if t.strip().startswith(label)]
    return found


def test_money_is_summed_per_currency_and_never_across_currencies():
    text = render(Figures.from_samples(metrics_matching_records()), EventFacts.from_records(RECORDS))
    assert line(text, "compensation granted").split(None, 2)[2] == "EUR 40.00, USD 135.00"
    assert "175" not in line(text, "compensation granted")
    assert money({"JPY": Decimal("1850"), "BHD": Decimal("1.8515")}) == "BHD 1.852, JPY 1,850"


def test_counts_agree_with_the_events_and_rejections_say_records_and_reports_apart():
    figures, events = Figures.from_samples(metrics_matching_records()), EventFacts.from_records(RECORDS)
    assert disagreements(figures, events) == []
    text = render(figures, events)
    assert line(text, "records rejected (distinct records)").split()[-1] == "3"
    assert line(text, "rejections reported (complaint.rejected)").endswith(
        "4: intake 1, sla 1, compensation 1, followup 1")
    assert "complaint.rejected 4" in text[-1]  # the events line counts the same four events
    assert line(text, "follow-ups due").split()[-1] == "2" and "followup.due 2" in text[-1]
    assert line(text, "follow-ups skipped (followup.skipped)").split()[-1] == "1" and "followup.skipped 1" in text[-1]
    assert "[yellow]" not in "\n".join(text)


def test_a_figure_the_events_contradict_is_marked_not_silently_different():
    samples = [s for s in metrics_matching_records() if s.name != "helpdesk_compensation_approvals_refused_total"]
    samples.append(Sample("helpdesk_followup_due_total", {"kind": "retention_checkin", "channel": "email"}, 1.0))
    figures, events = Figures.from_samples(samples), EventFacts.from_records(RECORDS)
    assert disagreements(figures, events) == ["rejections", "follow-ups due"]
    text = render(figures, events)
    assert "3 [yellow](but the events say 2)" in line(text, "follow-ups due")
    assert "but the events say intake 1, sla 1, compensation 1, followup 1" in line(text, "rejections reported")


def test_escalated_approval_is_labelled_an_escalation_naming_both_roles():
    approvals = [r for r in RECORDS if r["type"].startswith("compensation.")]
    lines = dict((r.get("authority"), text) for r, text in describe_all(approvals, 0.0)
                 if r["type"] == "compensation.pending_approval")
    assert lines["manager"].startswith("[magenta]offer needs approval[/] by manager")
    assert "approval escalated[/] from manager to director (level 1, nobody answered in time)" in lines["director"]
    assert "offer needs approval" not in lines["director"]
    text = render(Figures.from_samples(metrics_matching_records()), EventFacts.from_records(RECORDS))
    assert line(text, "approvals escalated to a higher role").endswith("1: CRM-4 manager → director")


def test_the_legal_threat_and_the_threat_to_leave_are_always_shown():
    policy = load_policy(ROOT / "config" / "classification.yaml", ClassificationPolicy)
    text = "YOU CHARGED MY CARD TWICE!!! THIS IS OUTRAGEOUS, I WILL SUE YOU AND CANCEL MY ACCOUNT!!!".lower()
    _severity, severity_reasons = assess_severity(text, "billing", None, 0, policy.severity)
    reasons = ["category billing: model 0.98 billing", *severity_reasons, "temperament irate: shouting",
               "priority P1 for high severity"]
    assert len(reasons) > 4  # more than the timeline shows
    shown = shown_reasons(reasons)
    assert "customer threatens legal action: 'sue you'" in shown
    assert "customer threatens to leave: 'cancel my account'" in shown
    assert shown.startswith("category billing") and shown.endswith(f"(+{len(reasons) - 3} more)")
    classified = {"type": "complaint.classified", "category": "billing", "severity": "high", "temperament": "irate",
                  "loyalty": "new", "publicity_risk": "low", "priority": "P1", "reasons": reasons}
    assert "customer threatens legal action" in describe(classified, 0.0)
    assert shown_reasons(["a", "b", "c"]) == "a; b; c"


def test_followup_skipped_reads_as_a_skip_with_its_reason():
    skipped = {"type": "followup.skipped", "kind": "satisfaction_survey", "reason": "open_case", "skipped_when": "planning"}
    assert describe(skipped, 0.0) == "[cyan]follow-up skipped[/] satisfaction survey (not planned: open_case)"


def test_metrics_text_of_a_service_is_read_like_prometheus_answers():
    exposition = (
        "# HELP helpdesk_compensation_value_granted_total Value granted\n"
        "# TYPE helpdesk_compensation_value_granted_total counter\n"
        'helpdesk_compensation_value_granted_total{currency="USD"} 135.0\n'
        'helpdesk_compensation_value_granted_total{currency="EUR"} 40.0\n'
        "# HELP python_gc_objects_collected_total gc\n# TYPE python_gc_objects_collected_total counter\n"
        'python_gc_objects_collected_total{generation="0"} 5.0\n'
    )
    samples = metric_samples(exposition)
    assert {s.name for s in samples} == {"helpdesk_compensation_value_granted_total"}
    assert Figures.from_samples(samples).granted_by_currency == {"USD": Decimal("135.00"), "EUR": Decimal("40.00")}
