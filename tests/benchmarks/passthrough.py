"""The pipeline's baselines: aiokafka consume → produce on the same topics, shaped like the four
services (intake: complaints → classified; sla: classified → sla; compensation: classified →
compensation; followup: classified → followups). No database in either.

Two modes:

- `raw` (the original baseline): decodes JSON, produces one small record (about 200 bytes) per
  input in intake, sla and compensation, none in followup; no validation.
- `like-for-like` (issue #15 item 1): parses and validates every input with the services' own
  parsers (intake: `services.intake.contract.parse_complaint`; sla, compensation, followup: their
  contract's `parse_classified`), and builds its outputs with the services' own outbound models and
  builders (`classified_event`, `sla.contract.SlaEvent`, `compensation.contract.decision_event`,
  `followup.contract.scheduled_event`), encoded by `shared.outbox.encode` as the outbox relay does.
  Each role produces `--records N` records per input (N measured from what the real services
  published per complaint in the same run), so the output is the same in count and about the same
  in size. The rules themselves (classification, deadlines, the compensation decision) are not
  run: fixed results stand in for them, so the ratio to the services measures durable state and
  rules together.

Both decode and encode JSON, and commit offsets after the batch's records were acknowledged, as an
at-least-once consumer must, with the services' producer settings (shared.kafka.make_producer).

`python -m tests.benchmarks.passthrough ROLE [--like-for-like --records N]` with the services'
environment (prefix, bootstrap).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared import kafka
from shared.events import CLASSIFIED, COMPENSATION, COMPLAINTS, FOLLOWUPS, SLA
from shared.inbound import RejectedInput
from shared.outbox import encode
from shared.settings import Settings

ROLES: dict[str, tuple[str, str | None]] = {
    "intake": (COMPLAINTS, CLASSIFIED),
    "sla": (CLASSIFIED, SLA),
    "compensation": (CLASSIFIED, COMPENSATION),
    "followup": (CLASSIFIED, None),
}
# The like-for-like baseline writes what the real followup service writes on a classified event
# (if anything: `--records 0` when it publishes nothing per complaint).
LIKE_FOR_LIKE_TARGETS: dict[str, str] = {"intake": CLASSIFIED, "sla": SLA, "compensation": COMPENSATION,
                                         "followup": FOLLOWUPS}
OUTPUT_TYPE = {"intake": "complaint.classified", "sla": "sla.started", "compensation": "compensation.none"}


def transform(role: str, event: dict[str, Any]) -> dict[str, Any]:
    """The raw baseline's one output per input: five short fields, no validation."""
    return {"event_id": str(uuid.uuid4()), "type": OUTPUT_TYPE[role], "case_id": event.get("case_id"),
            "causation_id": event.get("event_id"), "occurred_at": datetime.now(timezone.utc).isoformat()}


# ---------- like-for-like: the services' own parsers and builders, fixed results for the rules ----------
Builder = Callable[[bytes | None, int], list[bytes]]


def _intake_builder() -> Builder:
    from services.intake.contract import classified_event, parse_complaint
    from services.intake.domain import Classification

    def build(raw: bytes | None, records: int) -> list[bytes]:
        complaint = parse_complaint(raw)
        # A typical classification's shape: every dimension and six reasons, as the rules write them.
        result = Classification(
            category="delivery", severity="medium", temperament="upset", loyalty="standard",
            publicity_risk="low", priority="P3",
            reasons=("keyword:late", "severity:order_value", "temperament:neutral_text", "loyalty:tenure",
                     "publicity:private_channel", "priority:matrix"),
            decided_by="keywords")
        return [encode(classified_event(complaint, result, repeat_contacts=0)) for _ in range(records)]
    return build


def _sla_builder() -> Builder:
    from services.sla.contract import SlaEvent, parse_classified

    clocks = ("first_contact", "resolution", "update", "promise")  # the order sla starts them

    def build(raw: bytes | None, records: int) -> list[bytes]:
        event = parse_classified(raw)
        now = datetime.now(timezone.utc)
        out = []
        for i in range(records):
            out.append(encode(SlaEvent(type="sla.started", case_id=event.case_id, causation_id=event.event_id,
                                       clock=clocks[i % len(clocks)], due_at=now + timedelta(hours=4 * (i + 1)),
                                       priority=event.priority, started_at=now)))
        return out
    return build


def _compensation_builder() -> Builder:
    from services.compensation.contract import decision_event, decision_id_for, parse_classified
    from services.compensation.domain import Decision

    def build(raw: bytes | None, records: int) -> list[bytes]:
        event = parse_classified(raw)
        decision = Decision(outcome="granted", rule_id="late-delivery-coupon", offers=[{"kind": "coupon", "percent": 10}],
                            value=Decimal("750"), currency="USD", authority="agent", reason_code="rule_matched",
                            reason_codes=("rule_matched",), explanation=(), policy_version="bench")
        now = datetime.now(timezone.utc)
        return [encode(decision_event(decision, decision_id_for(f"{event.event_id}:{i}"), event.case_id,
                                      event.customer_id, event.event_id, now)) for i in range(records)]
    return build


def _followup_builder() -> Builder:
    from services.followup.contract import FollowupScheduled, parse_classified

    def build(raw: bytes | None, records: int) -> list[bytes]:
        event = parse_classified(raw)
        due = datetime.now(timezone.utc) + timedelta(days=2)
        return [encode(FollowupScheduled(case_id=event.case_id, causation_id=event.event_id,
                                         followup_id=str(uuid.uuid4()), customer_id=event.customer_id,
                                         kind="satisfaction_survey", due_at=due, channel="email",
                                         reason="bench")) for _ in range(records)]
    return build


def like_for_like_builder(role: str) -> Builder:
    """The parse-validate-build step of one role: `build(record_value, records)` → encoded outputs;
    raises shared.inbound.RejectedInput for a record the service would reject."""
    return {"intake": _intake_builder, "sla": _sla_builder, "compensation": _compensation_builder,
            "followup": _followup_builder}[role]()


async def pass_through(role: str, like_for_like: bool = False, records: int = 1) -> None:
    settings = Settings()
    source, target = ROLES[role]
    if like_for_like:
        target = LIKE_FOR_LIKE_TARGETS[role] if records > 0 else None
        build = like_for_like_builder(role)
    consumer = AIOKafkaConsumer(
        settings.topic(source), **kafka.client_args(settings), group_id=f"{settings.group('baseline')}.{role}",
        enable_auto_commit=False, auto_offset_reset="earliest",
    )
    producer = kafka.make_producer(settings)
    await consumer.start()
    await producer.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    print("READY", flush=True)
    rejected = 0
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            futures = []
            for records_ in batches.values():
                for record in records_:
                    if like_for_like:
                        try:
                            values = build(record.value, records)
                        except RejectedInput:
                            rejected += 1
                            continue
                        if target is not None:
                            for value in values:
                                futures.append(await producer.send(settings.topic(target), value=value, key=record.key))
                        continue
                    event = json.loads(record.value)
                    if target is not None:
                        value = json.dumps(transform(role, event), separators=(",", ":")).encode()
                        futures.append(await producer.send(settings.topic(target), value=value, key=record.key))
            if futures:
                await asyncio.gather(*futures)
            if batches:
                await consumer.commit()
    finally:
        if rejected:
            print(f"REJECTED {rejected}", flush=True)
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("role", choices=sorted(ROLES))
    parser.add_argument("--like-for-like", action="store_true",
                        help="parse with the services' parsers and build outputs with their models")
    parser.add_argument("--records", type=int, default=1, help="like-for-like: records produced per input")
    args = parser.parse_args()
    asyncio.run(pass_through(args.role, args.like_for_like, args.records))


if __name__ == "__main__":
    main()
