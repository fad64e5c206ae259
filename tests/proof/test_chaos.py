"""Chaos: steady CRM load while services are killed with -9 and restarted, with a second
instance of each timer service; after the load stops and the system drains, the four invariants
hold (tests/proof/invariants.py).

`make test` runs a short schedule; `make chaos` a longer one (CHAOS_SECONDS, CHAOS_RATE)."""
from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from services.simulator import CrmSimulator, Mix
from tests.proof import invariants

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("CHAOS_SECONDS", "40"))
RATE = float(os.environ.get("CHAOS_RATE", "8"))
pytestmark.append(pytest.mark.timeout(SECONDS * 6 + 400))


def fast_policies(target: Path) -> None:
    for f in (ROOT / "config").glob("*.yaml"):
        shutil.copy(f, target / f.name)
    shutil.copy(ROOT / "tests/sla/sla_fast.yaml", target / "sla.yaml")
    shutil.copy(ROOT / "tests/followup/followup_fast.yaml", target / "followup.yaml")


async def test_killing_services_under_load_loses_nothing_and_duplicates_nothing(ns, tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    fast_policies(config)
    ns.config_dir = config
    names = ("intake", "sla", "compensation", "followup")
    primary = {name: ns.service(name) for name in names}
    spare = {name: ns.service(name) for name in names}  # partitions and timers shared by two instances

    sim = CrmSimulator(ns.servers.kafka_bootstrap, ns.prefix, seed=11, mix=Mix(max_delay=8.0))
    load = asyncio.create_task(sim.run(RATE, SECONDS))
    faults = 0
    step = SECONDS / (len(names) + 2)
    for name in names:  # kill -9 each service in turn, mid-load, and bring it back
        await asyncio.sleep(step)
        primary[name].kill()
        faults += 1
        await asyncio.sleep(1.0)
        primary[name].start(wait=False)
    await asyncio.sleep(step / 2)
    for name in ("intake", "sla"):  # a second instance dies for good: the survivor takes its work
        spare[name].kill()
        faults += 1
    spare["followup"].pause()  # frozen past the consumer session timeout (10 s), then back
    await asyncio.sleep(12)
    spare["followup"].resume()
    faults += 1
    counts = await load
    published = set(sim.complaint_ids)

    topics = await invariants.drain_and_read(ns.kafka, ns.database_url, published,
                                             classify_timeout=max(180, SECONDS * 2), settle_timeout=max(150, SECONDS * 3))
    violations = invariants.check(published, topics) + await invariants.check_resolutions(ns.database_url, sim.resolved_cases)
    duplicates = {name: len(r) - len({x["event_id"] for x in r}) for name, r in topics.items()}
    print(f"\nchaos: {sum(counts.values())} events published, {faults} faults injected, "
          f"{sum(duplicates.values())} duplicate records in the output topics (same event_id), "
          f"{len(violations)} invariant violations")
    assert not violations, violations[:10]
    # effectively once (KAFKA_TRANSACTIONS, shared/outbox_tx.py): no event id twice on any output topic
    assert not any(duplicates.values()), f"duplicate event ids per output topic: {duplicates}"
    assert topics["followups"] and any(r["type"] == "sla.breached" for r in topics["sla"]), "the scenario exercised timers"
