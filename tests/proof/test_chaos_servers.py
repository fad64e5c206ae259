"""Chaos on the servers themselves: the Kafka broker killed with -9 and restarted, PostgreSQL
restarted (every connection cut), under steady load; the four invariants still hold.

Runs only against the repository's local servers (it restarts them)."""
from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from services.simulator import CrmSimulator, Mix
from tests.proof import invariants
from tests.proof.test_chaos import fast_policies

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def stack(command: str) -> None:
    subprocess.run(["bash", str(ROOT / "deploy/local/stack.sh"), command], check=True, timeout=180)


async def test_broker_killed_and_database_restarted_under_load_loses_and_duplicates_nothing(ns, tmp_path):
    if "local" not in ns.servers.kafka_from or "local" not in ns.servers.postgres_from:
        pytest.skip("restarts servers: only with the repository's local stack")
    if not (ROOT / ".stack/kafka/pid").exists() or not (ROOT / ".stack/pg/postmaster.pid").exists():
        pytest.skip("restarts servers: only those this checkout's stack started (`make stack-up`)")
    config = tmp_path / "config"
    config.mkdir()
    fast_policies(config)
    ns.config_dir = config
    services = [ns.service(name) for name in ("intake", "sla", "compensation", "followup")]
    sim = CrmSimulator(ns.servers.kafka_bootstrap, ns.prefix, seed=5, mix=Mix(max_delay=8.0))
    load = asyncio.create_task(sim.run(6, 30))
    await asyncio.sleep(8)
    await asyncio.to_thread(stack, "kafka-kill")
    await asyncio.sleep(3)
    await asyncio.to_thread(stack, "kafka-up")
    await asyncio.sleep(6)
    await asyncio.to_thread(stack, "pg-restart")
    try:
        counts = await load
    except Exception:
        # the simulator's own producer may fail while the broker is down: publish the rest again
        counts = await sim.run(6, 0)
    published = set(sim.complaint_ids)
    topics = await invariants.drain_and_read(ns.kafka, ns.database_url, published, classify_timeout=240)
    violations = invariants.check(published, topics) + await invariants.check_resolutions(ns.database_url, sim.resolved_cases)
    duplicates = {name: len(r) - len({x["event_id"] for x in r}) for name, r in topics.items()}
    print(f"\nserver chaos: {sum(counts.values())} events published, 2 server faults, "
          f"{sum(duplicates.values())} duplicate records in the output topics, {len(violations)} violations")
    assert not violations, violations[:10]
    assert not any(duplicates.values()), f"duplicate event ids per output topic: {duplicates}"
    for service in services:
        assert service.proc.poll() is None, f"{service.name} died:\n{service.tail()}"
