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

from services.registry import NAMES as SERVICES, SERVICES as ENTRIES
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "grp-check."

# Imports each service's app as `python -m services.<name>` would (no servers needed: building an app
# only loads the policies) and prints its subscribers' groups and topics, the topics it publishes, and
# its runtime's name, port and schema.
PROBE = """
import importlib, json, sys
out, publishes, runtimes = {}, {}, {}
for name in sys.argv[1:]:
    runtime = importlib.import_module(f"services.{name}.app").runtime
    out[name] = [{"group": s.group_id, "topics": sorted(s.topic_names)} for s in runtime.broker.subscribers]
    publishes[name] = sorted(p.topic for p in runtime.broker.publishers)
    runtimes[name] = {"name": runtime.name, "port": runtime.port, "schema": runtime.schema}
print(json.dumps({"groups": out, "publishes": publishes, "runtimes": runtimes}))
"""


@pytest.fixture(scope="module")
def probe() -> dict[str, dict[str, list]]:
    env = {**{k: v for k, v in os.environ.items() if k.upper() != "METRICS_PORT"}, "HELPDESK_TOPIC_PREFIX": PREFIX}
    done = subprocess.run([sys.executable, "-c", PROBE, *SERVICES], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def groups(probe) -> dict[str, list[dict]]:
    return probe["groups"]


@pytest.mark.parametrize("entry", ENTRIES, ids=SERVICES)
def test_the_registry_says_what_each_app_consumes_and_publishes(probe, entry):
    consumed = {topic.removeprefix(PREFIX) for s in probe["groups"][entry.name] for topic in s["topics"]}
    published = {topic.removeprefix(PREFIX) for topic in probe["publishes"][entry.name]}
    assert consumed == set(entry.consumes)
    assert published == set(entry.produces)
    assert probe["runtimes"][entry.name] == {"name": entry.name, "port": entry.port, "schema": entry.schema}


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
    by_group = {s["group"]: s["topics"] for s in groups["followup"]}
    assert by_group[f"{PREFIX}helpdesk-followup.inbound"] == sorted(
        f"{PREFIX}{t}" for t in ("helpdesk.complaints.classified.v1", "helpdesk.case-activity.v1"))


def test_followup_reads_the_recovery_topics_in_its_own_group(groups):
    by_group = {s["group"]: s["topics"] for s in groups["followup"]}
    assert set(by_group) == {f"{PREFIX}helpdesk-followup.inbound", f"{PREFIX}helpdesk-followup.recovery"}
    assert by_group[f"{PREFIX}helpdesk-followup.recovery"] == sorted(
        f"{PREFIX}{t}" for t in ("helpdesk.complaints.classified.v1", "helpdesk.case-activity.v1",
                                 "helpdesk.sla.v1", "helpdesk.compensation.v1"))


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
