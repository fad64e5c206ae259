"""docs/runbook.md and the alert rules agree: every alert links its runbook section, every section
it links exists, and every alert the README names by name is a rule of alerts.yml."""
from __future__ import annotations

import re

import pytest

from tests.deploy.files import ALERTS, ROOT, load_yaml

RUNBOOK = ROOT / "docs" / "runbook.md"
README = ROOT / "README.md"
SEVERITIES = {"page", "warning", "info"}
# How alert names are spelled: CamelCase with one of the prefixes of alerts.yml.
ALERT_NAME = re.compile(r"\b(?:Helpdesk|Sla|Intake|Compensation|Followup)[A-Z][A-Za-z0-9]+\b")


def alerts() -> list[dict]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {github_anchor(h) for h in headings}


def runbook_sections() -> list[str]:
    return re.findall(r"^##\s+(\S+)\s*$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE)


def test_the_github_anchor_rule():
    assert github_anchor("HelpdeskTimerDropped") == "helpdesktimerdropped"
    assert github_anchor("What to do: now (really)") == "what-to-do-now-really"


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_links_an_existing_runbook_section(rule):
    url = rule.get("annotations", {}).get("runbook_url")
    assert url, f"{rule['alert']} has no runbook_url annotation"
    path, _, anchor = url.partition("#")
    assert path == "docs/runbook.md", f"{rule['alert']}: runbook_url {url!r} is not a section of docs/runbook.md"
    assert anchor in runbook_anchors(), f"{rule['alert']}: docs/runbook.md has no section #{anchor}"
    assert anchor == rule["alert"].lower(), "the section is named after the alert"


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_has_a_severity_a_summary_and_a_description(rule):
    assert rule.get("labels", {}).get("severity") in SEVERITIES, rule["alert"]
    assert rule["annotations"].get("summary") and rule["annotations"].get("description"), rule["alert"]


def test_every_runbook_section_is_an_alert_and_each_alert_has_one_section():
    names = [rule["alert"] for rule in alerts()]
    sections = runbook_sections()
    assert sorted(sections) == sorted(set(sections)), "a section appears twice"
    assert set(sections) == set(names), (
        f"sections without an alert: {sorted(set(sections) - set(names))}; "
        f"alerts without a section: {sorted(set(names) - set(sections))}"
    )


def test_a_runbook_url_to_a_missing_section_would_be_caught():
    assert "helpdesknosuchalert" not in runbook_anchors()


def test_every_alert_the_readme_names_exists():
    names = {rule["alert"] for rule in alerts()}
    named = set(ALERT_NAME.findall(README.read_text(encoding="utf-8")))
    assert named, "the README names the alerts"
    assert not named - names, f"the README names alerts alerts.yml does not have: {sorted(named - names)}"


@pytest.mark.parametrize("name", ["CompensationPendingApprovalsPilingUp", "CompensationApprovalsRefused",
                                  "CompensationBudgetNearZero", "FollowupSurveysSkippedSurge",
                                  "HelpdeskEventsRejected"])
def test_the_alerts_the_readme_describes_for_compensation_and_followup_exist(name):
    """The five the README described before they were written (issue #17)."""
    assert name in {rule["alert"] for rule in alerts()}
    assert name in README.read_text(encoding="utf-8")
