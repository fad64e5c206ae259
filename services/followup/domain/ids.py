"""How follow-ups are numbered: ids derived from the event that planned them, so a redelivery of that
event plans the same ids and the store's primary key turns the replay into a no-op."""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from services.followup.domain.model import PlannedFollowup, SkippedFollowup

_NAMESPACE = uuid.UUID("5b0f6d1e-8d0a-4c55-9a53-0c2f1f7c9e10")


def followup_id_for(causation_id: str, customer_id: str, kind: str, sequence: int = 0) -> str:
    """The same event planning the same follow-up gives the same id, so a redelivery cannot double it."""
    return str(uuid.uuid5(_NAMESPACE, f"{causation_id}|{customer_id}|{kind}|{sequence}"))


def _due(item: PlannedFollowup | SkippedFollowup) -> datetime:
    return item.due_at if isinstance(item, PlannedFollowup) else item.would_have_been_due


def number_followups(
    causation_id: str, planned: Sequence[PlannedFollowup], skipped: Sequence[SkippedFollowup],
) -> tuple[list[tuple[str, PlannedFollowup]], list[tuple[str, SkippedFollowup]]]:
    """The id of each follow-up one event planned or skipped, as (id, follow-up) pairs in the given order.

    Follow-ups of one customer and kind, planned and skipped alike, are numbered 0, 1, 2… in due
    order (`followup_id_for`), so the ids do not depend on the order the plan lists them in.
    """
    sequence: Counter[tuple[str, str]] = Counter()
    ids: dict[int, str] = {}
    for item in sorted([*planned, *skipped], key=lambda i: (i.customer_id, i.kind, _due(i))):
        ids[id(item)] = followup_id_for(causation_id, item.customer_id, item.kind, sequence[(item.customer_id, item.kind)])
        sequence[(item.customer_id, item.kind)] += 1
    return [(ids[id(p)], p) for p in planned], [(ids[id(s)], s) for s in skipped]


TIMER_KIND = "followup_due"
"""The kind of every followup timer (shared/timers.py); its payload is {"followup_id": ...}."""


def timer_key(followup_id: str) -> str:
    """The durable timer of one follow-up: `followup:<followup_id>` (one per follow-up, so arming
    it again when it is deferred moves it)."""
    return f"followup:{followup_id}"
