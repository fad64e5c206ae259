"""Every consumer group of every service is `<HELPDESK_TOPIC_PREFIX>helpdesk-<service>.<name>`: the
pattern the README's ACL guidance ("Security") and its "Consumer groups" section rely on."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "sla", "compensation", "followup")
PREFIX = "grp-check."

# Imports each service's app as `python -m services.<name>` would (no servers needed: building an app
# only loads the policies) and prints its subscribers' groups and topics.
PROBE = """
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    broker = importlib.import_module(f"services.{name}.app").runtime.broker
    out[name] = [{"group": s.group_id, "topics": sorted(s.topic_names)} for s in broker.subscribers]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def groups() -> dict[str, list[dict]]:
    env = {**os.environ, "HELPDESK_TOPIC_PREFIX": PREFIX}
    done = subprocess.run([sys.executable, "-c", PROBE, *SERVICES], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("service", SERVICES)
def test_every_consumer_group_of_a_service_follows_the_documented_pattern(groups, service):
    subscribers = groups[service]
    assert subscribers, f"{service} declares no consumer"
    pattern = re.compile(rf"{re.escape(PREFIX)}helpdesk-{service}\.[A-Za-z0-9._-]+")
    for subscriber in subscribers:
        assert pattern.fullmatch(subscriber["group"] or ""), (
            f"{service} consumes {subscriber['topics']} in group {subscriber['group']!r}, "
            f"outside {PREFIX}helpdesk-{service}.*")


def test_no_two_consumers_share_a_group(groups):
    every = [s["group"] for subscribers in groups.values() for s in subscribers]
    assert len(every) == len(set(every)), every


def test_followup_reads_both_of_its_topics_in_its_inbound_group(groups):
    (subscriber,) = groups["followup"]
    assert subscriber["group"] == f"{PREFIX}helpdesk-followup.inbound"
    assert subscriber["topics"] == sorted(f"{PREFIX}{t}" for t in ("helpdesk.complaints.classified.v1",
                                                                   "helpdesk.case-activity.v1"))


def test_consumer_group_names_need_a_name_after_the_stem():
    settings = Settings(helpdesk_topic_prefix="p.")
    assert settings.consumer_group("sla", "helpdesk.sla.v1") == "p.helpdesk-sla.helpdesk.sla.v1"
    assert settings.group("sla") == "p.helpdesk-sla"
    with pytest.raises(ValueError):
        settings.consumer_group("sla", "")


def test_the_readme_lists_every_services_consumer_groups(groups):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Consumer groups", 1)[1].split("\n### ", 1)[0]
    documented = {}
    for row in re.findall(r"^\| (intake|sla|compensation|followup) \| (.+) \|$", section, flags=re.M):
        documented[row[0]] = sorted(re.findall(r"`(helpdesk-[^`]+)`", row[1]))
    actual = {service: sorted(s["group"].removeprefix(PREFIX) for s in subscribers)
              for service, subscribers in groups.items()}
    assert documented == actual
