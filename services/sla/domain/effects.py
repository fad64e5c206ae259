"""What an SLA decision asks the outside world to do: small values the store and outbox carry out.

The domain never publishes or writes; it returns these, in order, and the handler applies them in
one transaction (emits go through the outbox, timers through the shared timer engine).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

TimerKind = Literal["warning", "breach", "escalation"]


@dataclass(frozen=True)
class Emit:
    """Publish one event on `helpdesk.sla.v1`; `fields` are the contract fields beyond the envelope."""

    type: str  # sla.started | sla.warning | sla.breached | sla.escalated | sla.met | sla.cancelled | sla.retargeted
    case_id: str
    causation_id: str | None
    occurred_at: datetime
    fields: dict[str, Any] = field(default_factory=dict)


def clock_timer_key(case_id: str, clock_key: str) -> str:
    """The key of a clock's one durable timer in `sla.timers`: `quote(case_id):quote(clock_key)`.
    Case and promise ids are free-form: quoted (a colon becomes `%3A`), two clocks never share a key."""
    return f"{quote(case_id, safe='')}:{quote(clock_key, safe='')}"


@dataclass(frozen=True)
class TimerDue:
    """What a clock's timer is armed for; it comes back to `on_timer` when it fires.

    A clock has one timer (issue 15), keyed by the clock alone (`key`); its payload (`to_data`)
    says which event it is armed for: `kind` and `n` (with `threshold` for a warning, `notify` for
    an escalation), and the clock's `arming` when it was armed. Before issue 15 a clock armed one
    timer per warning, breach and escalation level, keyed `case:clock:arming:kind:n`; their
    payloads have the same fields and are read the same way (`from_data`)."""

    case_id: str
    clock_key: str
    arming: int  # a timer from an older arming of its clock is stale and does nothing
    kind: TimerKind
    n: int  # warning index, or escalation level (1, 2, ...); 0 for the breach
    threshold: float | None = None
    notify: str | None = None

    @property
    def key(self) -> str:
        """The clock's timer key (`clock_timer_key`): the same for every event and arming of the clock."""
        return clock_timer_key(self.case_id, self.clock_key)

    def to_data(self) -> dict[str, Any]:
        """The timer's payload (JSON-ready): case_id, clock_key, arming, kind, n, and threshold or notify when set."""
        data = {"case_id": self.case_id, "clock_key": self.clock_key, "arming": self.arming, "kind": self.kind, "n": self.n}
        if self.threshold is not None:
            data["threshold"] = self.threshold
        if self.notify is not None:
            data["notify"] = self.notify
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> TimerDue:
        """A payload written by `to_data` (now or before issue 15). Raises KeyError (a field
        missing), TypeError or ValueError (arming or n not a number)."""
        return cls(
            case_id=data["case_id"], clock_key=data["clock_key"], arming=int(data["arming"]),
            kind=data["kind"], n=int(data["n"]), threshold=data.get("threshold"), notify=data.get("notify"),
        )


@dataclass(frozen=True)
class ArmTimer:
    """Arm (or move) the clock's durable timer to fire at `due_at` (at once if that is already
    past) for the event `timer` names; arming its key again replaces what it was armed for."""

    due_at: datetime
    timer: TimerDue

    @property
    def key(self) -> str:
        return self.timer.key


@dataclass(frozen=True)
class CancelTimers:
    """Cancel these timers (by key) if they have not fired yet."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class KeepForLater:
    """The case is not classified yet: keep this activity and replay it when the classification comes."""

    event_id: str


@dataclass(frozen=True)
class AutomatedContact:
    """An automated contact (auto-acknowledgement, bot, system) met no clock: count it apart."""

    activity_type: str  # case.contacted | case.promise_kept
    by: str | None  # bot | system | agent (automated: true) | None (not said)


Effect = Emit | ArmTimer | CancelTimers | KeepForLater | AutomatedContact
