from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.compensation.policy import CompensationPolicy
from shared.events import ComplaintClassified
from shared.policy import load_policy, parse_policy
from tests.builders import classified_event

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "config" / "compensation.yaml"

# A small policy whose numbers are easy to follow in tests.
SMALL_POLICY = """
currency: USD
exchange_rates: {EUR: 0.9, JPY: 150}
authority:
  - role: agent
    limit: 50
    limits: {EUR: 45}
  - role: supervisor
    limit: 500
  - role: manager
    limit: 5000
approval_escalation_after: 4h
pricing: {free_shipping_cost: 8, trial_daily_price: 0.5, gift_cost: 10, order_amount_when_unknown: 40}
rules:
  - id: coupon_for_confusion
    when: {category: confusing_process}
    offers:
      - {kind: coupon, percent: 15}
      - {kind: free_shipping}
  - id: big_refund_for_billing
    when: {category: billing}
    offers:
      - {kind: refund, percent: 100}
      - {kind: personal_note}
  - id: replace_defect
    when: {category: defect}
    allow_over_cap: true
    offers:
      - {kind: replacement}
      - {kind: gift, item: socks}
  - id: reopened_apology
    priority: 10
    allow_on_reopen: true
    when: {reopened: true, category: delay}
    offers:
      - {kind: gesture, description: flowers, cost: 20}
fallback:
  id: apology
  offers:
    - {kind: personal_note, handwritten: true}
    - {kind: gift, item: mug}
"""


@pytest.fixture(scope="session")
def default_policy() -> CompensationPolicy:
    return load_policy(DEFAULT_POLICY, CompensationPolicy)


@pytest.fixture(scope="session")
def small_policy() -> CompensationPolicy:
    return parse_policy(SMALL_POLICY, CompensationPolicy, "small.yaml")


def policy_from(text: str, path: str = "test.yaml") -> CompensationPolicy:
    return parse_policy(text, CompensationPolicy, path)


def complaint(order: tuple[float, str] | None = (100.0, "USD"), **fields: Any) -> ComplaintClassified:
    """A classified complaint: calm, standard customer, phone, unless the test says otherwise."""
    values: dict[str, Any] = {"causation_id": "evt-1"}
    if order is not None:
        values["order"] = {"id": "O-1", "amount": order[0], "currency": order[1]}
    return classified_event(**{**values, **fields})
