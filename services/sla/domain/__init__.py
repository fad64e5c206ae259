"""SLA rules, pure: no I/O. `case` moves a case's clocks, `clock` one clock, `effects` what to do,
`calendar` the business-time arithmetic behind every deadline."""
from services.sla.domain.case import CaseSla, Outcome, on_activity, on_classified, on_timer
from services.sla.domain.clock import Clock, ClockKind, ClockState, clock_key
from services.sla.domain.effects import ArmTimer, AutomatedContact, CancelTimers, Effect, Emit, KeepForLater, TimerDue

__all__ = [
    "ArmTimer", "AutomatedContact", "CancelTimers", "CaseSla", "Clock", "ClockKind", "ClockState", "Effect", "Emit",
    "KeepForLater", "Outcome", "TimerDue", "clock_key", "on_activity", "on_classified", "on_timer",
]
