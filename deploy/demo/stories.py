"""The demo's CRM stories: complaints as a CRM would publish them, and what agents do next.

Times are seconds from the start of the demo; the demo policies (deploy/demo/config) use seconds
where production uses hours, so a day of service recovery plays in about a minute.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any


@dataclass
class Step:
    at: float  # seconds from the demo's start
    topic: str  # "complaints" | "activity" | "approval"
    event: dict[str, Any] | bytes
    note: str  # what the timeline says about it
    case_id: str | None = None
    wait_for_pending: bool = False  # approval steps need the decision id of the pending approval


@dataclass
class Story:
    case_id: str
    title: str
    steps: list[Step] = field(default_factory=list)


def _id() -> str:
    return str(uuid.uuid4())


class Script:
    def __init__(self, start: datetime, run: str) -> None:
        self.start, self.run = start, run
        self.stories: list[Story] = []

    def at(self, seconds: float) -> str:
        return (self.start + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

    def story(self, case_id: str, title: str) -> Story:
        story = Story(f"{case_id}-{self.run}", title)
        self.stories.append(story)
        return story

    def complaint(self, story: Story, at: float, note: str, *, channel: str, customer: dict[str, Any],
                  subject: str, description: str, order: dict[str, Any] | None = None, public: bool = False,
                  event_id: str | None = None) -> dict[str, Any]:
        event = {
            "event_id": event_id or _id(), "type": "complaint.received", "occurred_at": self.at(at),
            "source": "crm-east", "case_id": story.case_id, "channel": channel, "public": public,
            "customer": {**customer, "id": f"{customer['id']}-{self.run}"},
            "subject": subject, "description": description,
        }
        if order:
            event["order"] = order
        story.steps.append(Step(at, "complaints", event, note, story.case_id))
        return event

    def activity(self, story: Story, at: float, kind: str, note: str, **fields: Any) -> None:
        event = {"event_id": _id(), "type": kind, "occurred_at": self.at(at), "source": "crm-east",
                 "case_id": story.case_id, **fields}
        story.steps.append(Step(at, "activity", event, note, story.case_id))

    def approval(self, story: Story, at: float, decision: str, role: str, approver_id: str, note: str) -> None:
        event = {"event_id": _id(), "type": f"compensation.{decision}", "occurred_at": self.at(at),
                 "source": "crm-east", "case_id": story.case_id, "decision_id": None,
                 "approver": {"role": role, "id": approver_id}}
        story.steps.append(Step(at, "approval", event, note, story.case_id, wait_for_pending=True))


def build(start: datetime, run: str) -> Script:
    s = Script(start, run)

    ac = s.story("CRM-10442", "Loyal customer: contractor installed the AC unit she said she did not want")
    s.complaint(ac, 0.0, "complaint by phone", channel="phone",
                customer={"id": "C-881", "name": "Sue Miller", "email": "sue@example.com", "tier": "loyal",
                          "tenure_days": 1460, "lifetime_value": 5400.0, "referrals": 3, "timezone": "America/New_York"},
                order={"id": "O-55", "amount": 7800.0, "currency": "USD"},
                subject="Wrong AC unit installed",
                description="Your contractor installed the AC unit I told him I did not want. I have been a customer for years.")
    s.activity(ac, 2.0, "case.contacted", "agent called her back")
    s.activity(ac, 3.0, "case.promise_made", "agent promised a call-back with the installer's date", promise_id="P-ac-1",
               due_at=s.at(11.0), description="call back with the installer's visit date")
    s.approval(ac, 6.0, "approved", "manager", "M-7", "a manager tried to approve it (above a manager's limit)")
    s.approval(ac, 7.0, "approved", "director", "D-1", "the director approved the new unit at our cost")
    s.activity(ac, 9.0, "case.promise_kept", "agent called back with the date", promise_id="P-ac-1")
    s.activity(ac, 24.0, "case.resolved", "right unit installed at our cost", resolution="replaced the unit",
               root_cause="installer did not confirm the model", improvement="installers now confirm the model with the customer before work starts")

    confused = s.story("CRM-10443", "Customer confused by the ordering system")
    s.complaint(confused, 0.4, "complaint on the web form", channel="web",
                customer={"id": "C-882", "name": "Raj Patel", "email": "raj@example.com", "tenure_days": 200},
                order={"id": "O-56", "amount": 120.0, "currency": "USD"},
                subject="Ordering is confusing",
                description="I could not figure out how to order, the checkout process is confusing and I ordered the wrong size twice.")
    s.activity(confused, 3.0, "case.contacted", "agent walked him through the order")
    s.activity(confused, 14.0, "case.resolved", "order placed with the agent's help", resolution="order placed",
               improvement="checkout now shows the size chart before payment")

    trial = s.story("CRM-10444", "Customer asking for a service the company does not offer")
    s.complaint(trial, 0.8, "complaint by email", channel="email",
                customer={"id": "C-883", "name": "Mia Chen", "email": "mia@example.com"},
                subject="No weekend delivery?",
                description="Why do you not offer weekend delivery? I need that service and you don't provide it.")
    s.activity(trial, 4.0, "case.contacted", "agent explained and offered an alternative")
    s.activity(trial, 16.0, "case.resolved", "customer chose the express option", resolution="alternative accepted")

    coffee = s.story("CRM-10445", "A coffee that was not right")
    coffee_event = s.complaint(coffee, 1.2, "complaint at the counter", channel="in_person",
                               customer={"id": "C-884", "name": "Tom Berg", "email": "tom@example.com"},
                               order={"id": "O-57", "amount": 4.5, "currency": "USD"},
                               subject="Coffee not right", description="My latte was cold and tasted burnt.")
    s.activity(coffee, 1.8, "case.contacted", "barista apologised at once")
    s.activity(coffee, 5.0, "case.resolved", "fresh latte made", resolution="replaced the drink")
    s.activity(coffee, 33.0, "customer.returned", "he came back for another coffee", customer_id=f"C-884-{run}")

    shoes = s.story("CRM-10446", "Expensive shoes: heel came off after two weeks, receipt thrown away")
    s.complaint(shoes, 1.6, "complaint by letter", channel="letter",
                customer={"id": "C-885", "name": "Ana Lopez", "email": "ana@example.com", "tier": "standard"},
                order={"id": "O-58", "amount": 320.0, "currency": "USD"},
                subject="Heel came off", description="The heel came off my new shoes two weeks after I bought them. I threw the receipt away.")
    s.approval(shoes, 6.0, "approved", "supervisor", "S-3", "supervisor approved the replacement pair")
    s.complaint(shoes, 13.0, "she wrote again: nobody had answered", channel="email",
                customer={"id": "C-885", "name": "Ana Lopez", "email": "ana@example.com", "tier": "standard"},
                order={"id": "O-58", "amount": 320.0, "currency": "USD"},
                subject="Still no answer about my shoes", description="Nobody answered my letter about the broken heel.")
    s.activity(shoes, 20.0, "case.contacted", "agent finally called her (late)")
    s.activity(shoes, 28.0, "case.resolved", "replacement pair sent, no receipt needed", resolution="replacement sent")

    suitcase = s.story("CRM-10447", "Airline passenger: new suitcase arrived wrecked, posted publicly")
    s.complaint(suitcase, 2.0, "public post on social media", channel="social", public=True,
                customer={"id": "C-886", "name": "Dave Carroll", "email": "dave@example.com", "tier": "vip",
                          "timezone": "America/Halifax"},
                order={"id": "O-59", "amount": 450.0, "currency": "USD"},
                subject="You broke my suitcase", description="My brand new suitcase arrived wrecked and crushed! Baggage handlers threw it. Everyone should know!")
    s.activity(suitcase, 3.0, "case.contacted", "social team replied within minutes")
    s.activity(suitcase, 4.0, "case.promise_made", "agent promised a call-back in 6 seconds (demo time)",
               promise_id="P-bag-1", due_at=s.at(10.0), description="call back about the claim")
    s.activity(suitcase, 26.0, "case.resolved", "suitcase replaced, apology posted",
               resolution="replaced suitcase", improvement="fragile-tag handling added to baggage training")

    irate = s.story("CRM-10448", "Irate customer threatening to sue over a double charge")
    s.complaint(irate, 2.4, "chat message", channel="chat",
                customer={"id": "C-887", "name": "Lee Park", "email": "lee@example.com", "tenure_days": 30},
                order={"id": "O-60", "amount": 89.0, "currency": "USD"},
                subject="CHARGED TWICE", description="YOU CHARGED MY CARD TWICE!!! THIS IS OUTRAGEOUS, I WILL SUE YOU AND CANCEL MY ACCOUNT!!!")
    s.activity(irate, 3.5, "case.contacted", "agent answered in chat")
    s.activity(irate, 6.0, "case.paused", "waiting for the bank statement from the customer")
    s.activity(irate, 12.0, "case.resumed", "statement received")
    s.activity(irate, 18.0, "case.resolved", "double charge refunded", resolution="refund issued")

    late = s.story("CRM-10449", "Delivery three weeks late")
    s.complaint(late, 2.8, "complaint by phone", channel="phone",
                customer={"id": "C-888", "name": "Kim Olsen", "email": "kim@example.com", "tenure_days": 900,
                          "lifetime_value": 2500.0, "timezone": "Europe/Oslo"},
                order={"id": "O-61", "amount": 640.0, "currency": "EUR"},
                subject="Order is late", description="My sofa was due three weeks ago and the delivery is still delayed.")
    s.activity(late, 5.0, "case.contacted", "agent called with a new delivery date")
    s.activity(late, 22.0, "case.resolved", "sofa delivered", resolution="delivered")

    rude = s.story("CRM-10450", "Rude staff at the store")
    s.complaint(rude, 3.2, "complaint by email", channel="email",
                customer={"id": "C-889", "name": "Eva Novak", "email": "eva@example.com"},
                subject="Rude employee", description="The staff member at the returns desk was rude and dismissive.")
    s.activity(rude, 6.0, "case.contacted", "store manager called her")

    # The same customer's second case, resolved while the first is still open: no survey for it
    # (followup.skipped, reason open_case), so the CRM knows she will not be asked.
    second = s.story("CRM-10451", "The same customer again: wrong size delivered, while her first case is open")
    s.complaint(second, 5.5, "complaint by email", channel="email",
                customer={"id": "C-889", "name": "Eva Novak", "email": "eva@example.com"},
                order={"id": "O-62", "amount": 30.0, "currency": "USD"},
                subject="Wrong size", description="The jacket you delivered is the wrong size.")
    s.activity(second, 7.0, "case.contacted", "agent arranged an exchange")
    s.activity(second, 10.0, "case.resolved", "right size delivered", resolution="exchanged")

    # The CRM sends the coffee complaint twice (at-least-once delivery upstream): a no-op.
    coffee.steps.append(Step(3.6, "complaints", dict(coffee_event), "the same complaint delivered again (duplicate)", coffee.case_id))

    garbage = s.story("GARBAGE", "A garbage record from a misconfigured CRM connector")
    garbage.steps.append(Step(4.0, "complaints", b"\x00\x01 not json at all {", "garbage bytes", garbage.case_id))
    return s


def start_time() -> datetime:
    return datetime.now(timezone.utc)
