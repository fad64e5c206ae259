"""In memory, the followup service's tables (services/followup/store.py): `cases`, `followups`,
`pending_activity` and `survey_responses`, with the same functions the service layer calls, so
`Followups(..., store=fake)` runs whole batches without PostgreSQL. tests/followup/test_store_fake.py
runs the same calls on both and requires the same answers.

    store = MemoryFollowupStore()
    followups = Followups(StubRuntime("followup"), policy, store)
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from services.followup import store as real_store
from services.followup.domain import (
    CategoryCase, Contact, CustomerCase, CustomerFacts, PendingFollowup, PlannedFollowup, SkippedFollowup,
)
from shared.events import ComplaintClassified, SurveyAnswered


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class MemoryFollowupStore:
    """The four tables as dicts of row dicts keyed by their primary key (`cases` by case_id,
    `followups` by followup_id, `pending` by event_id, `responses` by event_id), columns named as
    in the migrations. Every method takes `conn` first and ignores it (a `MemoryBatch`'s conn is
    None). `clock` stands for PostgreSQL's `now()` (closed_at, updated_at); rows come back as dicts
    where the real store returns asyncpg Records."""

    SCHEMA = real_store.SCHEMA
    CASE_LOCKS = real_store.CASE_LOCKS  # the same namespaces: MemoryWorld.busy names them
    CUSTOMER_LOCKS = real_store.CUSTOMER_LOCKS

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self.clock = clock
        self.cases: dict[str, dict[str, Any]] = {}
        self.followups: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, dict[str, Any]] = {}
        self.responses: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()  # how many times each function ran

    # ---------- cases ----------
    async def upsert_case(self, conn: Any, event: ComplaintClassified) -> dict[str, Any] | None:
        """Inserts the case, or updates its classification (received_at only moves forward; status
        and resolved_at stay); returns the row as it was before, None for a new case."""
        self.calls["upsert_case"] += 1
        before = await self.case_for_update(conn, event.case_id)
        self._upsert(event)
        return before

    def _upsert(self, event: ComplaintClassified) -> None:
        """The row change of one upsert (shared by upsert_case and upsert_cases)."""
        row = self.cases.get(event.case_id)
        received_at = event.received_at or event.occurred_at
        fields = {
            "customer_id": event.customer_id, "category": event.category, "temperament": event.temperament,
            "loyalty": event.loyalty, "timezone": event.customer_timezone or "UTC", "updated_at": self.clock(),
        }
        if row is None:
            self.cases[event.case_id] = {"case_id": event.case_id, **fields, "received_at": received_at,
                                         "status": "open", "resolved_at": None}
        else:
            row.update(fields, received_at=max(row["received_at"], received_at))

    async def upsert_cases(self, conn: Any, events: Sequence[ComplaintClassified]) -> None:
        """`upsert_case` for each, in order (what the real one statement amounts to)."""
        self.calls["upsert_cases"] += 1
        for event in events:
            self._upsert(event)

    async def cases_for_update(self, conn: Any, case_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """{case_id: a copy of its row} of the known cases among `case_ids`."""
        self.calls["cases_for_update"] += 1
        return {c: dict(self.cases[c]) for c in sorted(set(case_ids)) if c in self.cases}

    async def case_for_update(self, conn: Any, case_id: str) -> dict[str, Any] | None:
        """A copy of the case's row, None if unknown."""
        self.calls["case_for_update"] += 1
        row = self.cases.get(case_id)
        return None if row is None else dict(row)

    async def set_case_status(self, conn: Any, case_id: str, status: str, resolved_at: datetime | None = None) -> None:
        """Sets the status; `resolved_at` only when given (coalesce). An unknown case: nothing."""
        self.calls["set_case_status"] += 1
        row = self.cases.get(case_id)
        if row is not None:
            row.update(status=status, resolved_at=resolved_at if resolved_at is not None else row["resolved_at"],
                       updated_at=self.clock())

    async def category_candidates(self, conn: Any, category: str, since: datetime, exclude_customer: str,
                                  limit: int = 1000) -> list[CategoryCase]:
        """Cases of `category` received at or after `since`, of other customers, latest first, at most `limit`."""
        self.calls["category_candidates"] += 1
        rows = [r for r in self.cases.values()
                if r["category"] == category and r["received_at"] >= since and r["customer_id"] != exclude_customer]
        rows.sort(key=lambda r: r["received_at"], reverse=True)
        return [CategoryCase(r["customer_id"], r["case_id"], r["category"], r["received_at"]) for r in rows[:limit]]

    # ---------- activity that arrived before the classification ----------
    async def hold_activity(self, conn: Any, event_id: str, case_id: str, type_: str, occurred_at: datetime,
                            improvement: bool) -> None:
        """Keeps the activity (ON CONFLICT DO NOTHING: a redelivery keeps the first)."""
        self.calls["hold_activity"] += 1
        self.pending.setdefault(event_id, {"event_id": event_id, "case_id": case_id, "type": type_,
                                           "occurred_at": occurred_at, "improvement": improvement})

    async def take_held_activity(self, conn: Any, case_id: str) -> list[dict[str, Any]]:
        """Deletes and returns the case's held activity (in no particular order, as DELETE RETURNING)."""
        self.calls["take_held_activity"] += 1
        taken = [r for r in self.pending.values() if r["case_id"] == case_id]
        for row in taken:
            del self.pending[row["event_id"]]
        return taken

    async def take_held_activities(self, conn: Any, case_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """`take_held_activity` for each case: {case_id: its held rows} of the cases with any."""
        self.calls["take_held_activities"] += 1
        out: dict[str, list[dict[str, Any]]] = {}
        for case_id in sorted(set(case_ids)):
            taken = [r for r in self.pending.values() if r["case_id"] == case_id]
            for row in taken:
                del self.pending[row["event_id"]]
            if taken:
                out[case_id] = taken
        return out

    # ---------- what the rules need to know of a customer ----------
    async def customer_facts(self, conn: Any, customer_id: str, *, timezone: str, loyalty: str,
                             exclude_case: str | None = None, exclude_followup: str | None = None) -> CustomerFacts:
        self.calls["customer_facts"] += 1
        facts = await self.customers_facts(conn, {customer_id: (timezone, loyalty)},
                                           exclude_case=exclude_case, exclude_followup=exclude_followup)
        return facts[customer_id]

    async def customers_facts(self, conn: Any, profiles: Mapping[str, tuple[str, str]], *,
                              exclude_case: str | None = None, exclude_followup: str | None = None,
                              ) -> dict[str, CustomerFacts]:
        """Per customer: follow-ups scheduled or sent (at = closed_at, else due_at) but
        `exclude_followup`, other cases but `exclude_case`, survey answers in time order: as
        store.customers_facts."""
        self.calls["customers_facts"] += 1
        return {cid: self._facts(cid, zone, loyalty, exclude_case, exclude_followup)
                for cid, (zone, loyalty) in profiles.items()}

    def _facts(self, customer_id: str, timezone: str, loyalty: str, exclude_case: str | None,
               exclude_followup: str | None) -> CustomerFacts:
        contacts = [f for f in self.followups.values()
                    if f["customer_id"] == customer_id and f["status"] in ("scheduled", "due")
                    and f["followup_id"] != exclude_followup]
        cases = [c for c in self.cases.values() if c["customer_id"] == customer_id and c["case_id"] != exclude_case]
        answered = sorted(r["answered_at"] for r in self.responses.values() if r["customer_id"] == customer_id)
        return CustomerFacts(
            customer_id=customer_id, timezone=timezone, loyalty=loyalty,
            contacts=tuple(Contact(f["kind"], f["closed_at"] or f["due_at"], f["case_id"], pending=f["status"] == "scheduled")
                           for f in contacts),
            survey_responses=tuple(answered),
            cases=tuple(CustomerCase(c["case_id"], c["status"] == "open", c["temperament"] == "irate") for c in cases),
        )

    # ---------- survey answers ----------
    async def record_survey_response(self, conn: Any, event: SurveyAnswered) -> bool:
        """Keeps the answer; False if this event was recorded already."""
        self.calls["record_survey_response"] += 1
        if event.event_id in self.responses:
            return False
        self.responses[event.event_id] = {
            "event_id": event.event_id, "customer_id": event.customer_id, "case_id": event.case_id,
            "followup_id": event.followup_id, "answered_at": event.occurred_at, "score": event.score,
        }
        return True

    # ---------- follow-ups ----------
    def _insert(self, followup_id: str, **row: Any) -> bool:
        if followup_id in self.followups:
            return False
        self.followups[followup_id] = {"followup_id": followup_id, "closed_at": None, **row}
        return True

    async def record_planned(self, conn: Any, rows: Sequence[tuple[str, PlannedFollowup]], causation_id: str) -> list[str]:
        """Inserts each as `scheduled`; returns the ids that were new, in the given order."""
        self.calls["record_planned"] += 1
        return [fid for fid, p in rows if self._insert(
            fid, case_id=p.case_id, customer_id=p.customer_id, kind=p.kind, channel=p.channel, due_at=p.due_at,
            status="scheduled", reason=p.reason, causation_id=causation_id,
        )]

    async def record_skipped(self, conn: Any, rows: Sequence[tuple[str, SkippedFollowup]], causation_id: str) -> list[str]:
        """Inserts each as `skipped` (closed now, due_at = when it would have been due); returns the new ids."""
        self.calls["record_skipped"] += 1
        return [fid for fid, s in rows if self._insert(
            fid, case_id=s.case_id, customer_id=s.customer_id, kind=s.kind, channel=s.channel,
            due_at=s.would_have_been_due, status="skipped", reason=s.reason, causation_id=causation_id,
            closed_at=self.clock(),
        )]

    @staticmethod
    def _pending(row: dict[str, Any]) -> PendingFollowup:
        return PendingFollowup(row["followup_id"], row["kind"], row["case_id"], row["customer_id"], row["due_at"], row["channel"])

    def _scheduled(self, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return sorted((f for f in self.followups.values() if f["status"] == "scheduled" and keep(f)),
                      key=lambda f: f["due_at"])

    async def scheduled_of_customer(self, conn: Any, customer_id: str) -> list[PendingFollowup]:
        self.calls["scheduled_of_customer"] += 1
        return [self._pending(f) for f in self._scheduled(lambda f: f["customer_id"] == customer_id)]

    async def scheduled_of_case(self, conn: Any, case_id: str) -> list[PendingFollowup]:
        self.calls["scheduled_of_case"] += 1
        return [self._pending(f) for f in self._scheduled(lambda f: f["case_id"] == case_id)]

    async def scheduled_by_ids(self, conn: Any, ids: Iterable[str]) -> list[tuple[PendingFollowup, str]]:
        """The still-scheduled ones among `ids`, earliest due first, each with its causation id."""
        self.calls["scheduled_by_ids"] += 1
        wanted = set(ids)
        return [(self._pending(f), f["causation_id"]) for f in self._scheduled(lambda f: f["followup_id"] in wanted)]

    async def customer_profiles(self, conn: Any, customer_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """(timezone, loyalty) of each customer from their latest case (by received_at); unknown ones left out."""
        self.calls["customer_profiles"] += 1
        wanted, latest = set(customer_ids), {}
        for row in self.cases.values():
            kept = latest.get(row["customer_id"])
            if row["customer_id"] in wanted and (kept is None or row["received_at"] > kept["received_at"]):
                latest[row["customer_id"]] = row
        return {cid: (r["timezone"], r["loyalty"]) for cid, r in latest.items()}

    async def close_followups(self, conn: Any, ids: Sequence[str], status: str, reason: str) -> None:
        """Closes those of `ids` still scheduled (others stay as they are)."""
        self.calls["close_followups"] += 1
        for fid in ids:
            row = self.followups.get(fid)
            if row is not None and row["status"] == "scheduled":
                row.update(status=status, reason=reason, closed_at=self.clock())

    async def move_due(self, conn: Any, followup_id: str, due_at: datetime, reason: str) -> None:
        self.calls["move_due"] += 1
        row = self.followups.get(followup_id)
        if row is not None:
            row.update(due_at=due_at, reason=reason)

    async def customers_in_retention(self, conn: Any) -> int:
        """Customers with a retention check-in still scheduled."""
        self.calls["customers_in_retention"] += 1
        return len({f["customer_id"] for f in self.followups.values()
                    if f["kind"] == "retention_checkin" and f["status"] == "scheduled"})

    async def customers_of_cases(self, conn: Any, case_ids: Iterable[str]) -> list[str]:
        """The distinct customers of the known cases among `case_ids` (in no particular order)."""
        self.calls["customers_of_cases"] += 1
        return sorted({self.cases[c]["customer_id"] for c in set(case_ids) if c in self.cases})

    async def customers_of_followups(self, conn: Any, followup_ids: Iterable[str]) -> dict[str, str]:
        """followup_id -> customer_id of the known ones among `followup_ids`, whatever their status."""
        self.calls["customers_of_followups"] += 1
        return {fid: self.followups[fid]["customer_id"] for fid in followup_ids if fid in self.followups}

    # ---------- for tests ----------
    def statuses(self, case_id: str | None = None) -> dict[str, str]:
        """{followup_id: status} of one case's follow-ups (or of every one)."""
        return {fid: f["status"] for fid, f in self.followups.items() if case_id is None or f["case_id"] == case_id}

    def of(self, **match: Any) -> list[dict[str, Any]]:
        """The follow-up rows whose columns equal `match` (e.g. kind=..., status=...), earliest due first."""
        return sorted((f for f in self.followups.values() if all(f[k] == v for k, v in match.items())),
                      key=lambda f: f["due_at"])
