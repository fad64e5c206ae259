"""Recovery analytics: does a complaint handled well bring the customer back (the "recovery paradox")?

Pure rules, no I/O. Two parts:

- **Facts** (`CaseFacts`, `fold`): what the output topics tell about one case, folded one event at a
  time. Every fact is *set*, never incremented, so folding an event twice, or in another order,
  gives the same facts: `first_contact_at` is the earliest human contact, `breached` is "any clock
  breached", `resolved_at` / `reopened_at` the latest of each, compensation decisions are kept by
  `decision_id` (a redelivered decision replaces itself, it cannot be counted twice) and a decision's
  status only moves forward (`pending` → `denied` / `granted`). Returns (`customer.returned`) are facts
  of the customer, not of one case: `Return`, kept apart and matched in the report.
- **The report** (`recovery_report`): from the facts of a set of cases and the customers' returns,
  the share of resolved cases whose customer came back within a window, broken down by category,
  compensation rule, SLA breached or not and time to first contact; the cost per retained customer
  per rule and currency; the repeat-complaint rate. Definitions are on `recovery_report`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, Union

from babel.numbers import get_currency_precision

# ---------- first-contact buckets ----------
# Time from the complaint (`received_at` of complaint.classified) to the first human contact
# (`case.contacted` neither automated nor by a bot/system), elapsed wall-clock time as the customer
# lived it. The boundaries are the default first-contact targets of config/sla.yaml — 1h (P2) and 4h
# (P3) — and one day (P4's one business day, as a calendar day): "within a P2 target", "within a P3
# target", "within the day", "later".
FIRST_CONTACT_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("<1h", timedelta(hours=1)),
    ("1-4h", timedelta(hours=4)),
    ("4-24h", timedelta(hours=24)),
    (">24h", None),
)
NO_CONTACT = "no contact"
NO_RULE = "none"  # the rule label of a case without a compensation rule (no decision, or none matched)
UNKNOWN_CATEGORY = "unknown"  # a case resolved before its classification was seen

DecisionStatus = Literal["none", "pending", "denied", "granted"]
# A decision's status only moves forward: pending → denied or granted (approved). `none` is
# compensation.none (no rule matched). Higher rank wins whatever order the events came in.
STATUS_RANK: Mapping[str, int] = {"none": 0, "pending": 1, "denied": 2, "granted": 3}


def in_minor_units(value: Decimal, currency: str) -> Decimal:
    """`value` written with exactly `currency`'s minor units (ISO 4217 via babel: JPY 0, USD 2, BHD
    3), rounded half-up: 20 USD → Decimal('20.00'). Raises ValueError for an unknown currency code."""
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise ValueError(f"not a currency code: {currency!r}")
    return value.quantize(Decimal(1).scaleb(-get_currency_precision(currency)), rounding=ROUND_HALF_UP)


def first_contact_bucket(elapsed: timedelta | None) -> str:
    """The FIRST_CONTACT_BUCKETS label of a time to first contact (`None`: no contact known →
    NO_CONTACT). Upper bounds are exclusive: `<1h` is strictly under an hour, exactly 1h is `1-4h`."""
    if elapsed is None:
        return NO_CONTACT
    for label, below in FIRST_CONTACT_BUCKETS:
        if below is None or elapsed < below:
            return label
    raise AssertionError("the last bucket has no bound")  # pragma: no cover


# ---------- the events, as the rules see them ----------
@dataclass(frozen=True)
class Classified:
    """complaint.classified: who the customer is, the category, when the complaint was received
    (UTC), how often they had to ask again on this case (`repeat_contacts`)."""

    case_id: str
    customer_id: str
    category: str
    received_at: datetime
    repeat_contacts: int = 0


@dataclass(frozen=True)
class Contacted:
    """case.contacted by a person (automated contacts are not a contact here, as in sla)."""

    case_id: str
    at: datetime


@dataclass(frozen=True)
class Resolved:
    """case.resolved."""

    case_id: str
    at: datetime


@dataclass(frozen=True)
class Reopened:
    """case.reopened."""

    case_id: str
    at: datetime


@dataclass(frozen=True)
class Breached:
    """sla.breached, or sla.met / sla.cancelled with `breached: true`: some clock of the case missed
    its deadline."""

    case_id: str


@dataclass(frozen=True)
class CompensationDecided:
    """Any event of helpdesk.compensation.v1: decision `decision_id` of the case with its status,
    rule, value (Decimal, in `currency`'s minor units) and when it was decided."""

    case_id: str
    decision_id: str
    status: DecisionStatus
    rule_id: str | None
    value: Decimal
    currency: str
    at: datetime


@dataclass(frozen=True)
class Return:
    """customer.returned: the customer came back at `at` (on case `case_id`, a CRM detail the
    report does not need: a return counts for every case of the customer it follows)."""

    event_id: str
    customer_id: str
    case_id: str
    at: datetime


CaseFact = Union[Classified, Contacted, Resolved, Reopened, Breached, CompensationDecided]


@dataclass(frozen=True)
class Decision:
    """One compensation decision of a case, as last known."""

    status: DecisionStatus
    rule_id: str | None
    value: Decimal
    currency: str
    at: datetime


@dataclass(frozen=True)
class CaseFacts:
    """What the read model knows of one case. Every field is set by `fold`, none is a counter.
    `decisions` maps decision_id → Decision."""

    case_id: str
    customer_id: str | None = None
    category: str | None = None
    received_at: datetime | None = None
    repeat_contacts: int = 0
    first_contact_at: datetime | None = None
    breached: bool = False
    resolved_at: datetime | None = None
    reopened_at: datetime | None = None
    decisions: Mapping[str, Decision] = field(default_factory=dict)

    @property
    def resolved(self) -> bool:
        """Resolved and not reopened since (the latest resolution is after the latest reopening)."""
        return self.resolved_at is not None and (self.reopened_at is None or self.resolved_at > self.reopened_at)

    @property
    def rule_id(self) -> str:
        """The compensation rule of the case's first decision that named one (decision time, then
        decision id, breaks ties), NO_RULE when none did."""
        named = sorted((d.at, decision_id, d.rule_id) for decision_id, d in self.decisions.items() if d.rule_id)
        return named[0][2] if named else NO_RULE

    @property
    def granted(self) -> dict[str, Decimal]:
        """Value granted to the case (decisions granted or approved), per currency."""
        out: dict[str, Decimal] = {}
        for d in self.decisions.values():
            if d.status == "granted":
                out[d.currency] = out.get(d.currency, Decimal(0)) + d.value
        return out

    @property
    def first_contact_bucket(self) -> str:
        """FIRST_CONTACT_BUCKETS label of received → first human contact (NO_CONTACT when either is
        unknown; a contact logged before the complaint's receipt counts as zero)."""
        if self.first_contact_at is None or self.received_at is None:
            return NO_CONTACT
        return first_contact_bucket(max(self.first_contact_at - self.received_at, timedelta(0)))


def _earliest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _latest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _merge_decision(old: Decision | None, new: Decision) -> Decision:
    if old is None:
        return new
    # Higher status wins; on a tie keep the one decided first (both come from the same decision row).
    if (STATUS_RANK[new.status], -new.at.timestamp()) > (STATUS_RANK[old.status], -old.at.timestamp()):
        return new
    return old


def fold(facts: CaseFacts | None, event: CaseFact) -> CaseFacts:
    """`facts` of `event.case_id` (None: nothing known yet) with `event` folded in. Idempotent and
    order-independent: fold(fold(f, e), e) == fold(f, e), and any order of the same events gives
    the same facts. Raises ValueError for an event of another case."""
    if facts is None:
        facts = CaseFacts(event.case_id)
    if facts.case_id != event.case_id:
        raise ValueError(f"event of case {event.case_id!r} folded into case {facts.case_id!r}")
    if isinstance(event, Classified):
        return replace(facts, customer_id=event.customer_id, category=event.category,
                       received_at=_earliest(facts.received_at, event.received_at),
                       repeat_contacts=max(facts.repeat_contacts, event.repeat_contacts))
    if isinstance(event, Contacted):
        return replace(facts, first_contact_at=_earliest(facts.first_contact_at, event.at))
    if isinstance(event, Resolved):
        return replace(facts, resolved_at=_latest(facts.resolved_at, event.at))
    if isinstance(event, Reopened):
        return replace(facts, reopened_at=_latest(facts.reopened_at, event.at))
    if isinstance(event, Breached):
        return replace(facts, breached=True)
    if isinstance(event, CompensationDecided):
        new = Decision(event.status, event.rule_id, event.value, event.currency, event.at)
        decisions = dict(facts.decisions)
        decisions[event.decision_id] = _merge_decision(decisions.get(event.decision_id), new)
        return replace(facts, decisions=decisions)
    raise TypeError(f"not a recovery fact: {type(event).__name__}")


# ---------- the report ----------
@dataclass(frozen=True)
class Share:
    """`returned` of `cases` resolved cases whose customer came back; `customers` distinct customers
    among the cases, `returned_customers` of them came back. `ratio` is returned ÷ cases (None for no case)."""

    cases: int = 0
    returned: int = 0
    customers: int = 0
    returned_customers: int = 0

    @property
    def ratio(self) -> float | None:
        return self.returned / self.cases if self.cases else None


@dataclass(frozen=True)
class RuleCost:
    """Cost per retained customer of one compensation rule in one currency: `granted` (value granted
    to the rule's cases in the population, returned or not) ÷ `retained` (distinct customers of those
    cases who came back); `per_retained` is None when nobody came back. Decimal, in `currency`'s
    minor units (ISO 4217, rounded half-up)."""

    rule_id: str
    currency: str
    granted: Decimal
    retained: int

    @property
    def per_retained(self) -> Decimal | None:
        if not self.retained:
            return None
        quantum = Decimal(1).scaleb(-get_currency_precision(self.currency))
        return (self.granted / self.retained).quantize(quantum, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class RecoveryReport:
    """The recovery report over one population of resolved cases (see `recovery_report`)."""

    now: datetime
    since: timedelta
    within: timedelta
    overall: Share
    awaiting: int  # resolved in the period, but their return window is still open: not counted
    by_category: dict[str, Share]
    by_rule: dict[str, Share]
    by_breach: dict[str, Share]  # "breached" / "not breached"  (every breakdown: only groups with cases)
    by_first_contact: dict[str, Share]  # FIRST_CONTACT_BUCKETS labels and NO_CONTACT, fastest first
    cost_per_retained: tuple[RuleCost, ...]  # by rule, then currency
    repeat_complaints: int  # cases whose customer complained again (a new case) within the window
    repeat_contact_cases: int  # cases on which the customer had to ask again (repeat_contacts > 0)

    @property
    def repeat_complaint_rate(self) -> float | None:
        return self.repeat_complaints / self.overall.cases if self.overall.cases else None

    @property
    def repeat_contact_rate(self) -> float | None:
        return self.repeat_contact_cases / self.overall.cases if self.overall.cases else None


def returned_within(case: CaseFacts, returns: Iterable[Return], within: timedelta) -> bool:
    """Whether the case's customer came back after its (latest) resolution and no later than
    `within` after it: resolved_at < returned_at ≤ resolved_at + within."""
    if case.resolved_at is None or case.customer_id is None:
        return False
    end = case.resolved_at + within
    return any(r.customer_id == case.customer_id and case.resolved_at < r.at <= end for r in returns)


def complained_again(case: CaseFacts, cases: Iterable[CaseFacts], within: timedelta) -> bool:
    """Whether the case's customer opened another case (complaint received) after its resolution and
    no later than `within` after it."""
    if case.resolved_at is None or case.customer_id is None:
        return False
    end = case.resolved_at + within
    return any(other.case_id != case.case_id and other.customer_id == case.customer_id
               and other.received_at is not None and case.resolved_at < other.received_at <= end
               for other in cases)


def _share(cases: list[CaseFacts], came_back: set[str]) -> Share:
    customers = {c.customer_id for c in cases}
    returned_customers = {c.customer_id for c in cases if c.case_id in came_back}
    return Share(cases=len(cases), returned=sum(c.case_id in came_back for c in cases),
                 customers=len(customers), returned_customers=len(returned_customers))


BUCKET_ORDER: tuple[str, ...] = (*(label for label, _ in FIRST_CONTACT_BUCKETS), NO_CONTACT)


def _by(cases: list[CaseFacts], came_back: set[str], key, order: tuple[str, ...] = ()) -> dict[str, Share]:
    """Shares per group, groups in `order` first, then the others sorted by name."""
    groups: dict[str, list[CaseFacts]] = {}
    for c in cases:
        groups.setdefault(key(c), []).append(c)
    rank = {label: i for i, label in enumerate(order)}
    return {k: _share(groups[k], came_back) for k in sorted(groups, key=lambda k: (rank.get(k, len(rank)), k))}


def recovery_report(cases: Iterable[CaseFacts], returns: Iterable[Return], *, now: datetime, since: timedelta,
                    within: timedelta) -> RecoveryReport:
    """The report at `now` (zone-aware) over `cases` (the facts of the cases to report on and of
    any other case of their customers) and `returns` (the customers' returns). Definitions:

    - **population**: cases resolved (and not reopened since) whose latest resolution is within
      `since` before `now` and whose return window has closed (resolved at least `within` before
      `now`), with a known customer. Cases resolved more recently are counted in `awaiting` only:
      counting them would understate the share, since their customers have had less time to return.
    - **returned**: the customer came back (`customer.returned`, on any case) after the resolution
      and at most `within` after it (`returned_within`).
    - **cost per retained customer**, per compensation rule (`CaseFacts.rule_id`) and currency: the
      value granted (granted or approved decisions) to the rule's cases in the population ÷ the
      distinct customers of those cases who returned.
    - **repeat-complaint rate**: share of the population whose customer opened another case (a new
      complaint, received) after the resolution and at most `within` after it (`complained_again`).
      Beside it, the **repeat-contact rate**: share of the population on which the customer had to
      ask again before it was resolved (complaint.classified's `repeat_contacts` > 0).

    Raises ValueError for a naive `now` or a negative window."""
    if now.tzinfo is None:
        raise ValueError("now must be zone-aware")
    if since <= timedelta(0) or within < timedelta(0):
        raise ValueError("since must be positive and within not negative")
    everything = list(cases)
    every_return = list(returns)
    population: list[CaseFacts] = []
    awaiting = 0
    for c in everything:
        if not c.resolved or c.customer_id is None or c.resolved_at is None:
            continue
        if not now - since <= c.resolved_at <= now:
            continue
        if c.resolved_at + within > now:
            awaiting += 1
            continue
        population.append(c)
    population.sort(key=lambda c: c.case_id)
    # Each case is compared with its own customer's returns and cases only: linear in the data, not
    # quadratic (a year of cases is a million of them).
    returns_of: dict[str, list[Return]] = {}
    for r in every_return:
        returns_of.setdefault(r.customer_id, []).append(r)
    cases_of: dict[str, list[CaseFacts]] = {}
    for c in everything:
        if c.customer_id is not None:
            cases_of.setdefault(c.customer_id, []).append(c)
    came_back = {c.case_id for c in population if returned_within(c, returns_of.get(c.customer_id or "", ()), within)}
    costs: dict[tuple[str, str], Decimal] = {}
    for c in population:
        for currency, value in c.granted.items():
            costs[(c.rule_id, currency)] = costs.get((c.rule_id, currency), Decimal(0)) + value
    retained: dict[str, set[str]] = {}
    for c in population:
        if c.case_id in came_back:
            retained.setdefault(c.rule_id, set()).add(c.customer_id or "")
    cost = tuple(RuleCost(rule, currency, total, len(retained.get(rule, ())))
                 for (rule, currency), total in sorted(costs.items()))
    return RecoveryReport(
        now=now, since=since, within=within, overall=_share(population, came_back), awaiting=awaiting,
        by_category=_by(population, came_back, lambda c: c.category or UNKNOWN_CATEGORY),
        by_rule=_by(population, came_back, lambda c: c.rule_id),
        by_breach=_by(population, came_back, lambda c: "breached" if c.breached else "not breached"),
        by_first_contact=_by(population, came_back, lambda c: c.first_contact_bucket, BUCKET_ORDER),
        cost_per_retained=cost,
        repeat_complaints=sum(complained_again(c, cases_of.get(c.customer_id or "", ()), within) for c in population),
        repeat_contact_cases=sum(c.repeat_contacts > 0 for c in population),
    )
