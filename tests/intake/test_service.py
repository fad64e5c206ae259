"""Intake's service layer (services/intake/service.py) on the in-memory store and outbox: no
PostgreSQL, no Kafka. Complaints go through `Intake.prepare` and `Intake.on_complaint` as the Inbox
runs them (tests/support/memory.py); the learned classifier is a tiny fake that records what it
was asked, so these tests say when the model runs and that its batch opinions are used."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import asyncpg
import pytest

from services.intake.domain import Prediction, complaint_text
from services.intake.policy import ClassificationPolicy
from services.intake.service import Intake
from shared.events import CLASSIFIED
from shared.policy import PolicyError
from tests.builders import complaint
from tests.fakes.intake_store import MemoryIntakeStore
from tests.support.memory import FixedPolicy, MemoryWorld, StubRuntime

PREFIX = "t1."
TOPIC = PREFIX + CLASSIFIED
SEVERITIES = ["low", "medium", "high", "critical"]


@dataclass
class FakeModel:
    """A learned classifier that answers `category` with `confidence` for every text and records
    each call's texts."""

    categories: tuple[str, ...]
    category: str = "staff_behaviour"
    confidence: float = 0.8123456
    calls: list[list[str]] = field(default_factory=list)

    def predict(self, texts):
        self.calls.append(list(texts))
        return [Prediction(self.category, self.confidence, "other", 0.05) for _ in texts]


class FakeClassifierHolder:
    """What Intake asks of a ClassifierHolder: `current()` with `.version` and `.policy`."""

    def __init__(self, model: FakeModel) -> None:
        self.model = model

    def current(self):
        return SimpleNamespace(version="model-v1", policy=self.model)


@pytest.fixture
def keywords_only(shipped_policy: ClassificationPolicy) -> FixedPolicy:
    """The shipped policy without its `model` section: the keywords decide."""
    return FixedPolicy(shipped_policy.model_copy(update={"model": None}))


@pytest.fixture
def store() -> MemoryIntakeStore:
    return MemoryIntakeStore()


@pytest.fixture
def world() -> MemoryWorld:
    return MemoryWorld()


def intake_with(policy: FixedPolicy, store: MemoryIntakeStore, **options) -> Intake:
    return Intake(StubRuntime("intake", PREFIX), policy, store=store, **options)


def learned(shipped_policy: ClassificationPolicy, store: MemoryIntakeStore, **model) -> tuple[Intake, FakeModel]:
    fake = FakeModel(tuple(shipped_policy.category_names), **model)
    return intake_with(FixedPolicy(shipped_policy), store, classifier=FakeClassifierHolder(fake)), fake


def published(world: MemoryWorld) -> dict[str, dict]:
    """The published complaint.classified events by causation id (each on the classified topic)."""
    assert {topic for topic, _key, _payload in world.published} <= {TOPIC}
    return {payload["causation_id"]: payload for _topic, _key, payload in world.published}


async def test_a_complaint_is_classified_recorded_and_published_as_complaint_classified(keywords_only, store, world):
    intake = intake_with(keywords_only, store)
    c = complaint(
        event_id="e-1", case_id="CRM-1", channel="social", public=True,
        customer={"id": "C-77", "name": "Dan Carter", "email": "dan@example.com", "tier": "loyal",
                  "timezone": "Europe/Berlin"},
        order={"id": "O-9", "amount": 450.0, "currency": "EUR"},
        subject="My brand new suitcase arrived wrecked",
        description="The airline destroyed my new suitcase, the handle is torn off and the shell is cracked.",
    )
    assert await world.run(intake.prepare, intake.on_complaint, [c]) == ["classified"]

    [(topic, key, event)] = world.published
    assert (topic, key) == (TOPIC, "CRM-1")
    assert event["type"] == "complaint.classified"
    assert (event["case_id"], event["causation_id"], event["customer_id"], event["source"]) == \
        ("CRM-1", "e-1", "C-77", "crm-east")
    assert (event["category"], event["category_decided_by"], event["needs_review"]) == ("damaged_in_transit", "keywords", False)
    assert (event["publicity_risk"], event["loyalty"], event["channel"], event["public"]) == ("high", "loyal", "social", True)
    assert event["priority"] in {"P1", "P2"}
    assert event["order"] == {"id": "O-9", "amount": 450.0, "currency": "EUR"}
    assert (event["customer_timezone"], event["repeat_contacts"]) == ("Europe/Berlin", 0)
    assert event["received_at"].startswith("2026-11-23T10:00:00")
    assert "category_confidence" not in event, "no model ran: no confidence (None fields are left out)"
    assert event["reasons"][0].startswith("category damaged_in_transit: mentions ")
    text = str(event)
    assert "Dan Carter" not in text and "dan@example.com" not in text and "handle is torn" not in text

    case = store.cases["CRM-1"]
    assert (case["complaints"], case["category"], case["customer_id"], case["priority"]) == \
        (1, "damaged_in_transit", "C-77", event["priority"])
    recorded = store.complaints["e-1"]
    assert (recorded["case_id"], recorded["repeat_contacts"], recorded["policy_version"]) == ("CRM-1", 0, "policy-v1")
    assert recorded["classification"]["category"] == "damaged_in_transit"
    assert recorded["classification"]["reasons"] == event["reasons"]


async def test_a_second_complaint_on_the_same_case_is_a_repeat_contact_with_higher_severity(keywords_only, store, world):
    intake = intake_with(keywords_only, store)
    first = complaint(event_id="e-1", case_id="CRM-1", subject="Late delivery", description="My order is late.")
    again = complaint(event_id="e-2", case_id="CRM-1", subject="Late delivery", description="My order is still late.",
                      occurred_at="2026-11-24T09:00:00Z")
    await world.run(intake.prepare, intake.on_complaint, [first])
    assert await store.earlier_complaints(None, "CRM-1") == 1
    await world.run(intake.prepare, intake.on_complaint, [again])

    by_cause = published(world)
    assert [by_cause[e]["repeat_contacts"] for e in ("e-1", "e-2")] == [0, 1]
    assert SEVERITIES.index(by_cause["e-2"]["severity"]) > SEVERITIES.index(by_cause["e-1"]["severity"])
    case = store.cases["CRM-1"]
    assert case["complaints"] == 2
    assert case["severity"] == by_cause["e-2"]["severity"], "the case carries the latest classification"
    assert (case["first_received_at"], case["last_received_at"]) == (first.occurred_at, again.occurred_at)
    assert [store.complaints[e]["repeat_contacts"] for e in ("e-1", "e-2")] == [0, 1]


async def test_a_batch_with_two_complaints_of_one_case_locks_it_once_and_counts_them_in_order(keywords_only, store, world):
    intake = intake_with(keywords_only, store)
    events = [
        complaint(event_id="e-1", case_id="CRM-B", subject="Late delivery", description="My order is late."),
        complaint(event_id="e-2", case_id="CRM-A", subject="Rude staff", description="The employee was rude."),
        complaint(event_id="e-3", case_id="CRM-B", subject="Late delivery", description="My order is still late."),
    ]
    batch = world.batch()
    batch.state = await intake.prepare(batch, events)
    assert batch.locked == {"intake:case": ["CRM-A", "CRM-B"]}, "each case once, in sorted order"
    assert [await intake.on_complaint(batch, e) for e in events] == ["classified"] * 3
    assert world.published == [], "nothing is published before the batch commits"
    await batch.commit()

    assert [(key, p["causation_id"], p["repeat_contacts"]) for _t, key, p in world.published] == [
        ("CRM-B", "e-1", 0), ("CRM-A", "e-2", 0), ("CRM-B", "e-3", 1)]
    assert {k: v["complaints"] for k, v in store.cases.items()} == {"CRM-B": 2, "CRM-A": 1}
    assert published(world)["e-2"]["category"] == "staff_behaviour"


async def test_the_learned_classifier_is_asked_once_per_batch_and_its_opinions_are_used(shipped_policy, store, world):
    intake, model = learned(shipped_policy, store)
    in_words = complaint(event_id="e-1", case_id="CRM-1", channel="in_person", subject="",
                         description="The man at the till rolled his eyes and told me to read the sign")
    strong = complaint(event_id="e-2", case_id="CRM-2", subject="Billing", description="I was overcharged and billed twice")
    also_words = complaint(event_id="e-3", case_id="CRM-3", subject="", description="nothing to go on here at all")
    await world.run(intake.prepare, intake.on_complaint, [in_words, strong, also_words])

    assert model.calls == [[complaint_text(in_words), complaint_text(also_words)]], \
        "one call for the batch, without the complaint strong keywords decide"
    by_cause = published(world)
    person = by_cause["e-1"]
    assert (person["category"], person["category_decided_by"], person["needs_review"]) == ("staff_behaviour", "model", False)
    assert person["category_confidence"] == 0.8123, "rounded to 4 places"
    assert person["reasons"][0].startswith("category staff_behaviour: model 0.81 staff_behaviour")
    assert (by_cause["e-2"]["category"], by_cause["e-2"]["category_decided_by"]) == ("billing", "keywords")
    assert "category_confidence" not in by_cause["e-2"]
    assert store.complaints["e-1"]["classification"]["decided_by"] == "model"
    assert store.complaints["e-1"]["classification"]["confidence"] == pytest.approx(0.8123456)


async def test_a_complaint_the_batch_did_not_predict_is_predicted_alone(shipped_policy, store, world):
    intake, model = learned(shipped_policy, store, category="delay", confidence=0.6)
    c = complaint(event_id="e-1", case_id="CRM-1", subject="", description="where is my parcel")
    batch = world.batch()  # no prepare: batch.state is None, as for a record retried without the cache
    assert await intake.on_complaint(batch, c) == "classified"
    await batch.commit()
    assert model.calls == [[complaint_text(c)]]
    assert (published(world)["e-1"]["category"], published(world)["e-1"]["category_decided_by"]) == ("delay", "model")


async def test_the_crms_mapped_category_decides_without_the_model(shipped_policy, store, world):
    intake, model = learned(shipped_policy, store, category="delay", confidence=0.99)
    mapped = complaint(event_id="e-1", case_id="CRM-1", subject="Question",
                       description="It arrived late and the invoice is wrong", crm_category=" transport DAMAGE ")
    await world.run(intake.prepare, intake.on_complaint, [mapped])
    assert model.calls == [], "the CRM decided: the model never ran"
    event = published(world)["e-1"]
    assert (event["category"], event["category_decided_by"], event["needs_review"]) == ("damaged_in_transit", "crm", False)
    assert event["reasons"][0] == "category damaged_in_transit: the CRM's category ' transport DAMAGE '"


async def test_an_unmapped_crm_category_is_ignored_and_the_keywords_decide(keywords_only, store, world):
    intake = intake_with(keywords_only, store)
    c = complaint(event_id="e-1", case_id="CRM-1", subject="Late", description="My order is late.",
                  crm_category="Something the policy does not map")
    await world.run(intake.prepare, intake.on_complaint, [c])
    event = published(world)["e-1"]
    assert (event["category"], event["category_decided_by"]) == ("delay", "keywords")
    assert event["reasons"][0] == \
        "the CRM's category 'Something the policy does not map' is not mapped in crm_categories: ignored"


async def test_a_complaint_recorded_already_is_refused_by_the_store_and_the_batch_publishes_nothing(keywords_only, store, world):
    # Idempotency by event id is the Inbox's: it never applies a redelivery. Should one get through,
    # the complaints table's primary key refuses it and the whole batch rolls back.
    intake = intake_with(keywords_only, store)
    c = complaint(event_id="e-1", case_id="CRM-1")
    await world.run(intake.prepare, intake.on_complaint, [c])
    other = complaint(event_id="e-2", case_id="CRM-2")
    with pytest.raises(asyncpg.UniqueViolationError):
        await world.run(intake.prepare, intake.on_complaint, [other, c])
    assert [p["causation_id"] for _t, _k, p in world.published] == ["e-1"], "the failed batch published nothing"
    assert store.cases["CRM-1"]["complaints"] == 1


async def test_the_same_event_twice_in_one_batch_is_predicted_once_and_applied_once(shipped_policy, store, world):
    # The Inbox hands `prepare` every fresh event of the batch (a copy included) and applies the
    # event id once: the prediction cache holds one entry, taken by the one application.
    intake, model = learned(shipped_policy, store)
    c = complaint(event_id="e-1", case_id="CRM-1", subject="", description="nothing to go on here at all")
    batch = world.batch()
    batch.state = await intake.prepare(batch, [c, c])
    assert list(batch.state.predicted) == ["e-1"]
    await intake.on_complaint(batch, c)
    assert batch.state.predicted == {}, "taken from the cache"
    await batch.commit()
    assert model.calls == [[complaint_text(c), complaint_text(c)]]
    assert len(world.published) == 1 and store.cases["CRM-1"]["complaints"] == 1


async def test_a_classifier_that_cannot_be_opened_leaves_the_keywords_deciding_and_is_tried_once_per_policy_version(
        shipped_policy, store, world):
    tries = []

    def cannot_open():
        tries.append(1)
        raise PolicyError("classifier.joblib: missing (run `make model`)")

    intake = intake_with(FixedPolicy(shipped_policy), store, open_classifier=cannot_open)
    await world.run(intake.prepare, intake.on_complaint, [complaint(event_id="e-1", case_id="CRM-1",
                                                                     description="My order is late.")])
    await world.run(intake.prepare, intake.on_complaint, [complaint(event_id="e-2", case_id="CRM-2",
                                                                     description="nothing to go on here at all")])
    assert len(tries) == 1
    by_cause = published(world)
    assert (by_cause["e-1"]["category"], by_cause["e-1"]["category_decided_by"]) == ("delay", "keywords")
    assert (by_cause["e-2"]["category"], by_cause["e-2"]["category_decided_by"]) == ("other", "fallback")

