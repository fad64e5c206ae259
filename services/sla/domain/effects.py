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


@dataclass(frozen=True)
class TimerDue:
    """What a timer knows about itself; it comes back to `on_timer` when it fires."""

    case_id: str
    clock_key: str
    arming: int  # a timer from an older arming of its clock is stale and does nothing
    kind: TimerKind
    n: int  # warning index, or escalation level (1, 2, ...); 0 for the breach
    threshold: float | None = None
    notify: str | None = None

    @property
    def key(self) -> str:
        # Case and promise ids are free-form: quote them so that two clocks can never share a key.
        return f"{quote(self.case_id, safe='')}:{quote(self.clock_key, safe='')}:{self.arming}:{self.kind}:{self.n}"

    def to_data(self) -> dict[str, Any]:
        data = {"case_id": self.case_id, "clock_key": self.clock_key, "arming": self.arming, "kind": self.kind, "n": self.n}
        if self.threshold is not None:
            data["threshold"] = self.threshold
        if self.notify is not None:
            data["notify"] = self.notify
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> TimerDue:
        return cls(
            case_id=data["case_id"], clock_key=data["clock_key"], arming=int(data["arming"]),
            kind=data["kind"], n=int(data["n"]), threshold=data.get("threshold"), notify=data.get("notify"),
        )


@dataclass(frozen=True)
class ArmTimer:
    """Arm a durable timer that fires at `due_at` (at once if that is already past)."""

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
