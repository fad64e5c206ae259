"""Names, emails and free text never appear in logs or metric labels, with the demo's traffic."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest

from deploy.demo import stories
from shared.events import CASE_ACTIVITY, CLASSIFIED, COMPENSATION_APPROVALS, COMPLAINTS, FOLLOWUPS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]
POLICY_WORDS = {w for f in (ROOT / "config").glob("*.yaml") for w in f.read_text().replace("_", " ").split()}
TOPICS = {"complaints": COMPLAINTS, "activity": CASE_ACTIVITY, "approval": COMPENSATION_APPROVALS}


async def test_demo_traffic_leaves_no_customer_names_emails_or_words_in_logs_or_metrics(ns):
    ns.extra_env["LOG_LEVEL"] = "DEBUG"  # the most talkative the services get
    services = [ns.service(name) for name in ("intake", "sla", "compensation", "followup")]
    script = stories.build(datetime.now(timezone.utc), "pii")
    private: set[str] = set()
    for story in script.stories:
        for step in sorted(story.steps, key=lambda s: s.at):
            event = step.event
            if isinstance(event, dict) and event.get("type") == "complaint.received":
                private |= {event["customer"]["name"], event["customer"].get("email", "")}
                # words of the customer's text, less those the policies use as vocabulary (category names…)
                private |= {w.strip(".,!") for w in event["description"].split() if len(w) > 8} - POLICY_WORDS
            if step.topic == "approval":
                continue  # approvals need the decision id; not needed for this check
            await ns.kafka.publish(TOPICS[step.topic], event if isinstance(event, dict) else event, key=step.case_id)
    complaints = sum(1 for s in script.stories for st in s.steps if isinstance(st.event, dict) and st.event.get("type") == "complaint.received")
    await ns.kafka.wait_for(CLASSIFIED, lambda rs: len({r["causation_id"] for r in rs}) >= complaints - 1, timeout=90)
    await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(rs) > 0, timeout=90)
    await asyncio.sleep(6)  # gauges and lag refresh at least once
    texts = {f"{s.name} /metrics": s.metrics() for s in services}
    for s in services:
        s.stop()
        texts[f"{s.name} log"] = s.log_path.read_text(errors="replace")
    private.discard("")
    assert len(private) > 15
    leaks = {(where, secret) for where, text in texts.items() for secret in private if secret in text}
    assert not leaks, f"customer data leaked: {sorted(leaks)[:10]}"
    assert all(len(t) > 100 for t in texts.values()), "logs and metrics were really produced"
