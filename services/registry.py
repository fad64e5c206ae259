"""The four services in one place: name, metrics port, database schema, policy and topics.

Everything that lists the services reads it: each service's `app.py` (its port and schema go to
`shared.service.ServiceRuntime`), the `helpdesk` command (`case show`, `policy validate`), the demo,
deploy/asyncapi.py, deploy/contract_docs.py and the deployment tests. shared/ names no service
(tests/shared/test_no_service_names.py): what it needs of one is passed in.

`consumes` and `produces` are the contract topics of docs/contract.md; tests/shared/test_consumer_groups.py
checks them against the subscribers and publishers each app declares.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import events as ev

if TYPE_CHECKING:
    from shared.service import ServiceRuntime
    from shared.settings import Settings


@dataclass(frozen=True)
class Service:
    """One service: `python -m services.<name>`, metrics `helpdesk_<name>_*`, consumer groups
    `helpdesk-<name>.*`, its tables in the PostgreSQL schema `schema`, its policy in
    `config/<policy>.yaml` parsed by `policy_model` (`module:Class`)."""

    name: str
    port: int  # of /metrics and /healthz unless METRICS_PORT says otherwise
    schema: str
    policy: str
    policy_model: str
    consumes: tuple[str, ...]
    produces: tuple[str, ...]

    @property
    def module(self) -> str:
        """The service's package, as `python -m` runs it."""
        return f"services.{self.name}"

    def runtime(self, *, migrations: Sequence[tuple[int, str]] = (), settings: Settings | None = None) -> ServiceRuntime:
        """The service's `ServiceRuntime`, with this entry's name, port and schema (its app.py builds it so)."""
        from shared.service import ServiceRuntime

        return ServiceRuntime(self.name, port=self.port, schema=self.schema, migrations=migrations, settings=settings)


INTAKE = Service(
    "intake", 9101, "intake", "classification", "services.intake.policy:ClassificationPolicy",
    consumes=(ev.COMPLAINTS,), produces=(ev.CLASSIFIED, ev.REJECTED),
)
SLA = Service(
    "sla", 9102, "sla", "sla", "services.sla.policy:SlaPolicy",
    consumes=(ev.CLASSIFIED, ev.CASE_ACTIVITY), produces=(ev.SLA, ev.REJECTED),
)
COMPENSATION = Service(
    "compensation", 9103, "compensation", "compensation", "services.compensation.policy:CompensationPolicy",
    consumes=(ev.CLASSIFIED, ev.COMPENSATION_APPROVALS, ev.CASE_ACTIVITY), produces=(ev.COMPENSATION, ev.REJECTED),
)
FOLLOWUP = Service(
    "followup", 9104, "followup", "followup", "services.followup.policy:FollowupPolicy",
    # sla.v1 and compensation.v1: the recovery read model's consumer only (README, "Recovery analytics")
    consumes=(ev.CLASSIFIED, ev.CASE_ACTIVITY, ev.SLA, ev.COMPENSATION), produces=(ev.FOLLOWUPS, ev.REJECTED),
)

SERVICES: tuple[Service, ...] = (INTAKE, SLA, COMPENSATION, FOLLOWUP)
"""In pipeline order: intake first, the services downstream of it after."""
NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)
SCHEMAS: tuple[str, ...] = tuple(s.schema for s in SERVICES)


def service(name: str) -> Service:
    """The service called `name`; KeyError for any other name."""
    for s in SERVICES:
        if s.name == name:
            return s
    raise KeyError(name)


def ports() -> dict[str, int]:
    """Service name → its default metrics port."""
    return {s.name: s.port for s in SERVICES}


def output_topics() -> tuple[str, ...]:
    """Every topic a service publishes to, each once, in pipeline order."""
    return tuple(dict.fromkeys(topic for s in SERVICES for topic in s.produces))
