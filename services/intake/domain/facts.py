"""What intake's rules read of a complaint: the shape of the inbound `complaint.received` event
(services/intake/contract.py `Complaint`), stated here so that the rules depend on no contract
module (the contract builds its outbound event from the rules' `Classification`, not the reverse).
Any object with these attributes will do: the pydantic model in production, plain objects in tests.
"""
from __future__ import annotations

from typing import Protocol

from shared.events import Channel, Loyalty, Order


class CustomerFacts(Protocol):
    """The customer as the CRM describes them; None where the CRM did not say."""

    @property
    def tier(self) -> Loyalty | None: ...
    @property
    def tenure_days(self) -> int | None: ...
    @property
    def lifetime_value(self) -> float | None: ...  # in the order's currency units, as the CRM sends it
    @property
    def referrals(self) -> int | None: ...


class ComplaintFacts(Protocol):
    """One complaint: its text, where it came in, whether it is public, the customer and order."""

    @property
    def subject(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def channel(self) -> Channel: ...
    @property
    def public(self) -> bool: ...
    @property
    def crm_category(self) -> str | None: ...
    @property
    def order(self) -> Order | None: ...
    @property
    def customer(self) -> CustomerFacts: ...
