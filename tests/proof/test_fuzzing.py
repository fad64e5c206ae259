"""Hostile records into both inbound topics, interleaved with valid traffic: no consumer crashes
or stalls, every hostile record is in the rejected topic with a reason, valid traffic flows.

`make test` sends FUZZ_RECORDS (default 600); `make chaos` sends 10,000."""
from __future__ import annotations

import os
import random
from collections import Counter, defaultdict

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events import CASE_ACTIVITY, CLASSIFIED, COMPLAINTS, REJECTED
from tests.proof.hostile import hostile_record, valid_activity, valid_complaint

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RECORDS = int(os.environ.get("FUZZ_RECORDS", "600"))
pytestmark.append(pytest.mark.timeout(max(300, RECORDS * 0.2)))


def draw_records(n: int) -> list[tuple[str, str, bytes]]:
    """n hostile (topic, how, bytes) drawn by hypothesis, half per inbound topic: one record per
    hypothesis example, so generation explores the whole strategy rather than its simplest corner."""
    drawn: list[tuple[str, str, bytes]] = []

    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(["complaint", "activity"]).flatmap(lambda kind: st.tuples(st.just(kind), hostile_record(kind))))
    def draw(item):
        kind, (how, raw) = item
        drawn.append((COMPLAINTS if kind == "complaint" else CASE_ACTIVITY, how, raw))

    draw()
    return drawn[:n]


async def test_hostile_records_are_all_rejected_and_valid_traffic_is_unaffected(ns):
    services = [ns.service(name) for name in ("intake", "sla", "followup")]
    hostile = draw_records(RECORDS)
    valid = [(COMPLAINTS, "valid", valid_complaint()) for _ in range(max(20, RECORDS // 10))]
    valid += [(CASE_ACTIVITY, "valid", valid_activity(e["case_id"])) for _, _, e in valid[: len(valid) // 2]]
    traffic = hostile + valid
    random.Random(7).shuffle(traffic)

    import json

    producer = AIOKafkaProducer(bootstrap_servers=ns.servers.kafka_bootstrap, max_request_size=4 * 1024 * 1024,
                                linger_ms=5)
    await producer.start()
    sent_hostile: dict[tuple[str, int, int], str] = {}
    valid_ids = set()
    try:
        futures = []
        noise = random.Random(11)
        for topic, how, body in traffic:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            key = body.get("case_id", "").encode() if isinstance(body, dict) else b"fuzz"
            # Headers are not part of the contract, but a CRM may send any bytes in them.
            headers = [("x-trace", b"\xff" + noise.randbytes(7))] if noise.random() < 0.1 else None
            sent = await producer.send(ns.kafka.topic(topic), value=raw, key=key, headers=headers)
            futures.append((topic, how, body, sent))
        for topic, how, body, future in futures:
            meta = await future
            if how == "valid":
                if topic == COMPLAINTS:
                    valid_ids.add(body["event_id"])
            else:
                sent_hostile[(topic, meta.partition, meta.offset)] = how
    finally:
        await producer.stop()

    complaints_hostile = sum(1 for (t, _, _) in sent_hostile if t == COMPLAINTS)
    activity_hostile = len(sent_hostile) - complaints_hostile
    # intake reports bad complaints; sla and followup each report bad activity.
    expected = complaints_hostile + 2 * activity_hostile
    try:
        rejected = await ns.kafka.wait_for(REJECTED, lambda rs: len(rs) >= expected, timeout=max(300, RECORDS * 0.12))
    except AssertionError:
        rejected = await ns.kafka.read_all(REJECTED)  # say which records are missing, below
    classified = await ns.kafka.wait_for(CLASSIFIED, lambda rs: valid_ids <= {r["causation_id"] for r in rs}, timeout=120)

    reported: dict[tuple[str, int, int], set[str]] = defaultdict(set)
    for r in rejected:
        assert r["reason"] and r["errors"], r
        reported[(r["topic"], r["partition"], r["offset"])].add(r["rejected_by"])
    missing = {k: how for k, how in sent_hostile.items()
               if not ({"intake"} if k[0] == COMPLAINTS else {"sla", "followup"}) <= reported.get(k, set())}
    assert not missing, (f"hostile records not reported: {Counter(missing.values())}; "
                         f"{sorted((k, reported.get(k, set())) for k in missing)[:10]}")
    assert set(reported) == set(sent_hostile), "only hostile records are rejected"
    assert len(rejected) == expected, "each service reports each bad record once"
    assert {r["causation_id"] for r in classified} == valid_ids
    for service in services:
        assert service.proc.poll() is None, f"{service.name} crashed:\n{service.tail()}"
    print(f"fuzzing: {len(sent_hostile)} hostile records ({dict(Counter(sent_hostile.values()))}), "
          f"{len(valid_ids)} valid complaints, {len(rejected)} rejections, 0 crashes")
