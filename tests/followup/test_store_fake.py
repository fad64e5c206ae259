"""The in-memory store (tests/fakes/followup_store.py) answers as services/followup/store.py does on
PostgreSQL: one sequence of calls, the service layer's most used, run on both, every answer compared.
This keeps the fake honest; tests/followup/test_service.py relies on it."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from services.followup import store
from services.followup.domain import CustomerFacts, PlannedFollowup, SkippedFollowup
from tests.builders import activity_model, classified_event
from tests.support.memory import migrated_transaction
from tests.fakes.followup_store import MemoryFollowupStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
CASE_COLUMNS = ("case_id", "customer_id", "category", "temperament", "loyalty", "timezone", "received_at",
                "status", "resolved_at")


def case_row(row: Any) -> dict[str, Any] | None:
    return None if row is None else {c: row[c] for c in CASE_COLUMNS}


def held_row(row: Any) -> tuple:
    return (row["event_id"], row["case_id"], row["type"], row["occurred_at"], row["improvement"])


def facts(f: CustomerFacts) -> CustomerFacts:
    """Contacts and cases in one order (the SQL gives none)."""
    return replace(f, contacts=tuple(sorted(f.contacts, key=lambda c: (c.kind, c.at, c.case_id))),
                   cases=tuple(sorted(f.cases, key=lambda c: c.case_id)))


async def sequence(s: Any, conn: Any) -> list[Any]:
    """The calls, each answer (normalised where the SQL promises no order) appended to the result."""
    out: list[Any] = []
    a = classified_event(case_id="CRM-A", customer_id="C-1", category="cat-x", temperament="irate",
                         received_at=T0 - timedelta(hours=2), customer_timezone="Europe/Berlin")
    out.append(case_row(await s.upsert_case(conn, a)))
    out.append(case_row(await s.upsert_case(conn, a.model_copy(update={
        "received_at": T0 - timedelta(hours=3), "loyalty": "vip"}))))  # received_at keeps the later one
    out.append(case_row(await s.case_for_update(conn, "CRM-A")))
    out.append(case_row(await s.case_for_update(conn, "CRM-nope")))
    await s.set_case_status(conn, "CRM-A", "resolved", T0)
    await s.set_case_status(conn, "CRM-A", "open")  # resolved_at stays
    out.append(case_row(await s.case_for_update(conn, "CRM-A")))
    for case_id, customer, category, received in (("CRM-B", "C-2", "cat-x", T0 - timedelta(hours=1)),
                                                  ("CRM-C", "C-2", "cat-x", T0 - timedelta(minutes=30)),
                                                  ("CRM-D", "C-1", "cat-y", T0 - timedelta(minutes=10)),
                                                  ("CRM-E", "C-3", "cat-x", T0 - timedelta(days=3))):
        await s.upsert_case(conn, classified_event(case_id=case_id, customer_id=customer, category=category,
                                                   received_at=received, loyalty="loyal"))
    out.append(await s.category_candidates(conn, "cat-x", T0 - timedelta(days=1), "C-1"))
    out.append(await s.category_candidates(conn, "cat-x", T0 - timedelta(days=5), "C-9", limit=2))
    out.append(sorted(await s.customers_of_cases(conn, ["CRM-A", "CRM-B", "CRM-C", "CRM-nope"])))
    out.append(await s.customer_profiles(conn, ["C-1", "C-2", "C-nope"]))

    await s.hold_activity(conn, "E-1", "CRM-Z", "case.resolved", T0, True)
    await s.hold_activity(conn, "E-1", "CRM-Z", "case.reopened", T0, False)  # a redelivery keeps the first
    await s.hold_activity(conn, "E-2", "CRM-Z", "case.reopened", T0 + timedelta(seconds=1), False)
    out.append(sorted(held_row(r) for r in await s.take_held_activity(conn, "CRM-Z")))
    out.append(await s.take_held_activity(conn, "CRM-Z"))

    planned = [
        ("F-1", PlannedFollowup("thank_you_note", "CRM-A", "C-1", T0 + timedelta(days=1), "mail", "the day after")),
        ("F-2", PlannedFollowup("retention_checkin", "CRM-A", "C-1", T0 + timedelta(days=7), "email", "+7d")),
        ("F-3", PlannedFollowup("satisfaction_survey", "CRM-A", "C-1", T0 + timedelta(days=3), "email", "+3d")),
        ("F-4", PlannedFollowup("retention_checkin", "CRM-B", "C-2", T0 + timedelta(days=7), "email", "+7d")),
    ]
    out.append(await s.record_planned(conn, planned, "E-R"))
    out.append(await s.record_planned(conn, planned[:2] + [("F-5", replace(planned[0][1], case_id="CRM-D"))], "E-R"))
    skipped = [("F-6", SkippedFollowup("satisfaction_survey", "CRM-D", "C-1", T0 + timedelta(days=4), "email", "open_case"))]
    out.append(await s.record_skipped(conn, skipped, "E-S"))
    out.append(await s.record_skipped(conn, skipped, "E-S"))
    out.append(await s.scheduled_of_case(conn, "CRM-A"))
    out.append(await s.scheduled_of_customer(conn, "C-1"))
    out.append(await s.customers_in_retention(conn))
    out.append(await s.customers_of_followups(conn, ["F-1", "F-4", "F-6", "F-nope"]))

    await s.close_followups(conn, ["F-1", "F-6"], "due", "")  # F-6 is skipped already: stays so
    await s.close_followups(conn, ["F-4"], "cancelled", "customer_returned")
    await s.move_due(conn, "F-3", T0 + timedelta(days=5), "deferred when due: min_gap")
    out.append(await s.scheduled_by_ids(conn, ["F-1", "F-3", "F-4", "F-2", "F-nope"]))
    out.append(await s.scheduled_of_customer(conn, "C-2"))
    out.append(await s.customers_in_retention(conn))

    answered = activity_model("survey.answered", "CRM-A", T0 + timedelta(hours=1), customer_id="C-1", score=7)
    out.append(await s.record_survey_response(conn, answered))
    out.append(await s.record_survey_response(conn, answered))
    out.append(await s.record_survey_response(conn, activity_model(
        "survey.answered", "CRM-D", T0 - timedelta(hours=1), customer_id="C-1")))
    out.append(facts(await s.customer_facts(conn, "C-1", timezone="Europe/Berlin", loyalty="vip")))
    out.append(facts(await s.customer_facts(conn, "C-1", timezone="UTC", loyalty="standard",
                                            exclude_case="CRM-A", exclude_followup="F-3")))
    out.append(facts(await s.customer_facts(conn, "C-nope", timezone="UTC", loyalty="standard")))
    several = await s.customers_facts(conn, {"C-1": ("UTC", "standard"), "C-2": ("Asia/Tokyo", "loyal"),
                                             "C-nope": ("UTC", "standard")})
    out.append({cid: facts(f) for cid, f in several.items()})
    out.append(await s.customers_facts(conn, {}))
    # a batch's classifications at once (issue #15): a known case, a new one twice (the later
    # received_at kept), read back locked; held activity of several cases taken at once
    await s.hold_activity(conn, "H-1", "CRM-N", "case.resolved", T0, False)
    await s.hold_activity(conn, "H-2", "CRM-N", "case.reopened", T0 + timedelta(minutes=1), False)
    await s.hold_activity(conn, "H-3", "CRM-M", "case.resolved", T0, True)
    taken = await s.take_held_activities(conn, ["CRM-N", "CRM-M", "CRM-none"])
    out.append({case_id: sorted(held_row(r) for r in rows) for case_id, rows in sorted(taken.items())})
    out.append(await s.take_held_activities(conn, ["CRM-N"]))
    await s.upsert_cases(conn, [
        classified_event(case_id="CRM-N", customer_id="C-5", category="cat-y", received_at=T0 + timedelta(hours=1)),
        classified_event(case_id="CRM-B", customer_id="C-2", category="cat-z", received_at=T0 - timedelta(days=9)),
        classified_event(case_id="CRM-N", customer_id="C-6", category="cat-x", received_at=T0, loyalty="vip"),
    ])
    await s.upsert_cases(conn, [])
    read = await s.cases_for_update(conn, ["CRM-N", "CRM-B", "CRM-none", "CRM-N"])
    out.append({case_id: case_row(row) for case_id, row in read.items()})
    note = PlannedFollowup("thank_you_note", "CRM-8", "C-8", T0 + timedelta(days=1), "email", "the day after")
    out.append(await s.record_planned(conn, [("F-8", note), ("F-8", replace(note, channel="mail")), ("F-1", note)], "E-8"))
    out.append(await s.record_skipped(conn, [("F-9", skipped[0][1]), ("F-9", skipped[0][1])], "E-9"))
    out.append(await s.record_planned(conn, [], "E-0") + await s.record_skipped(conn, [], "E-0"))
    out.append(await s.scheduled_of_customer(conn, "C-8"))
    return out


async def test_the_fake_store_answers_as_postgresql_does(ns):
    async with migrated_transaction(ns.database_url, store) as conn:
        transaction_time = await conn.fetchval("SELECT now()")  # now() in the SQL: closed_at, updated_at
        real = await sequence(store, conn)
    fake = await sequence(MemoryFollowupStore(clock=lambda: transaction_time), None)
    assert len(real) == len(fake)
    for step, (got, expected) in enumerate(zip(fake, real)):
        assert got == expected, f"answer {step} differs: fake {got!r}, real {expected!r}"
    # and the answers are the ones meant, not two equal mistakes
    assert real[0] is None and real[3] is None
    assert (real[2]["received_at"], real[2]["loyalty"]) == (T0 - timedelta(hours=2), "vip")
    assert (real[4]["status"], real[4]["resolved_at"]) == ("open", T0)
    assert [c.case_id for c in real[5]] == ["CRM-C", "CRM-B"]  # latest first, C-1's own and old ones left out
    assert real[11] == ["F-1", "F-2", "F-3", "F-4"] and real[12] == ["F-5"]  # a replay inserts nothing
    assert [p.followup_id for p, _ in real[19]] == ["F-3", "F-2"]  # still scheduled, earliest due first
    assert real[-4:-1] == [["F-8"], ["F-9"], []]
    held, none_left, batch_cases = real[-7:-4]
    assert (list(held), [len(rows) for rows in held.values()], none_left) == (["CRM-M", "CRM-N"], [1, 2], {})
    assert list(batch_cases) == ["CRM-B", "CRM-N"]
    assert (batch_cases["CRM-N"]["customer_id"], batch_cases["CRM-N"]["category"], batch_cases["CRM-N"]["loyalty"],
            batch_cases["CRM-N"]["received_at"]) == ("C-6", "cat-x", "vip", T0 + timedelta(hours=1)), \
        "the last classification, the latest received_at"
    assert (batch_cases["CRM-B"]["category"], batch_cases["CRM-B"]["received_at"]) == ("cat-z", T0 - timedelta(hours=1))
    assert [(p.followup_id, p.channel) for p in real[-1]] == [("F-8", "email")], "the first row of an id is kept"
