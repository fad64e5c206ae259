"""Reading inbound records safely: parse, reject with a reason, never crash, never drop.

`Inbox.handle` is the one path every consumer takes: parse the raw bytes; on bad input write a
`complaint.rejected` event (with the original bytes) to the outbox; on good input run the
service's state change in a transaction that also records the event id, so a redelivered event
is a no-op. Transient database errors are retried with backoff, then raised so the record is
delivered again (the consumer commits offsets only after success).
"""
from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel, TypeAdapter, ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from shared.db import first_time
from shared.events import ACTIVITY_TYPES, MAX_RECORD_BYTES, ComplaintClassified, ComplaintRejected, case_activity
from shared.metrics import service_metrics
from shared.outbox import enqueue

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

TRANSIENT_DB_ERRORS = (
    OSError,
    ConnectionError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.AdminShutdownError,
)


class RejectedInput(ValueError):
    """Input that can never be processed; `reason` is a short code, `errors` say what is wrong."""

    def __init__(self, reason: str, errors: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or []


def describe_errors(error: ValidationError) -> list[str]:
    # Never echo the input: it may hold names, emails or free text.
    out = []
    for item in error.errors(include_input=False, include_url=False):
        field = ".".join(str(p) for p in item["loc"]) or "(event)"
        out.append(f"{field}: {item['msg']}")
    return out[:50]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def parse_json_object(raw: bytes | None) -> dict[str, Any]:
    """The raw record as a JSON object, or RejectedInput (too large, not JSON, not an object,
    or text PostgreSQL cannot store: NUL characters and unpaired surrogates)."""
    if raw is None:
        raise RejectedInput("empty", ["the record has no value"])
    if len(raw) > MAX_RECORD_BYTES:
        raise RejectedInput("too_large", [f"record is {len(raw)} bytes, the limit is {MAX_RECORD_BYTES}"])
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise RejectedInput("not_json", ["record is not UTF-8"]) from None
    except RecursionError:
        raise RejectedInput("not_json", ["record is nested too deeply"]) from None
    except ValueError as exc:
        where = f"line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "a value"
        raise RejectedInput("not_json", [f"record is not JSON (at {where})"]) from None
    if not isinstance(data, dict):
        kind = _JSON_KINDS.get(type(data), "value")
        raise RejectedInput("not_an_object", [f"record is a JSON {kind}, an object is expected"])
    if bad := _unstorable_text(data):
        raise RejectedInput("invalid_text", [f"{bad}: contains a NUL character or an unpaired surrogate"])
    return data


def _unstorable_text(data: Any) -> str | None:
    """Path of the first string (key or value) PostgreSQL could not store, if any. Iterative:
    nesting depth was already bounded by the JSON parser."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                if not _storable(key):
                    return path or "(key)"
                stack.append((child, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
        elif isinstance(value, str) and not _storable(value):
            return path
    return None


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_event(raw: bytes | None, adapter: TypeAdapter[Any] | type[BaseModel], known_types: tuple[str, ...] = ()) -> Any:
    """Parses one inbound record into a model (or union), or raises RejectedInput."""
    data = parse_json_object(raw)
    if known_types and data.get("type") not in known_types:
        shown = data.get("type") if isinstance(data.get("type"), str) and len(data["type"]) <= 60 else "?"
        raise RejectedInput("unknown_type", [f"type: {shown!r} is not one of {', '.join(known_types)}"])
    try:
        if isinstance(adapter, TypeAdapter):
            return adapter.validate_python(data)
        return adapter.model_validate(data)
    except ValidationError as exc:
        raise RejectedInput("invalid_fields", describe_errors(exc)) from None
    except RecursionError:
        raise RejectedInput("not_json", ["nesting too deep"]) from None


def parse_classified(raw: bytes | None) -> ComplaintClassified:
    """A `complaint.classified` event from intake, for the services downstream of it."""
    return parse_event(raw, ComplaintClassified)


def parse_activity(raw: bytes | None) -> Any:
    """One event of helpdesk.case-activity.v1 (the union in shared.events), or RejectedInput."""
    return parse_event(raw, case_activity, ACTIVITY_TYPES)


class RecordRef(BaseModel):
    """Where a record came from, as the rejected event reports it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None

    @classmethod
    def of(cls, record: Any) -> "RecordRef":
        return cls(topic=record.topic, partition=record.partition, offset=record.offset, key=record.key, value=record.value)


def rejected_event(ref: RecordRef, reason: str, errors: list[str], service: str, topic_prefix: str = "") -> ComplaintRejected:
    key = ref.key.decode("utf-8", "replace") if ref.key else None
    topic = ref.topic[len(topic_prefix):] if topic_prefix and ref.topic.startswith(topic_prefix) else ref.topic
    return ComplaintRejected(
        case_id=_case_id_of(ref.value) or key,
        reason=reason,
        errors=errors,
        topic=topic,
        partition=ref.partition,
        offset=ref.offset,
        raw=base64.b64encode(ref.value or b"").decode("ascii"),
        key=key,
        rejected_by=service,
    )


def _case_id_of(raw: bytes | None) -> str | None:
    if not raw or len(raw) > MAX_RECORD_BYTES:
        return None
    try:
        data = json.loads(raw)
    except Exception:
        return None
    case_id = data.get("case_id") if isinstance(data, dict) else None
    return case_id if isinstance(case_id, str) and 0 < len(case_id) <= 200 else None


Apply = Callable[[asyncpg.Connection, Any], Awaitable[str | None]]


class Inbox:
    """Idempotent handling of one service's inbound records (see module doc)."""

    def __init__(self, pool: asyncpg.Pool, schema: str, service: str, rejected_topic: str, topic_prefix: str = "") -> None:
        self.pool, self.schema, self.service = pool, schema, service
        self.rejected_topic, self.topic_prefix = rejected_topic, topic_prefix
        self.metrics = service_metrics(service)

    async def handle(self, record: Any, parse: Callable[[bytes | None], Any], apply: Apply) -> str:
        ref = RecordRef.of(record)
        topic = ref.topic[len(self.topic_prefix):] if ref.topic.startswith(self.topic_prefix) else ref.topic
        started = time.perf_counter()
        try:
            event = parse(ref.value)
        except RejectedInput as exc:
            rejection = exc
            outcome = await self._retrying(lambda: self._reject(ref, rejection))
            self.metrics.rejected.labels(topic, rejection.reason).inc()
            log.info("rejected %s[%d]@%d: %s", topic, ref.partition, ref.offset, rejection.reason)
        else:
            outcome = await self._retrying(lambda: self._apply(event, apply))
            if outcome == "duplicate":
                self.metrics.duplicates.labels(topic).inc()
        self.metrics.events_handled.labels(topic, outcome).inc()
        self.metrics.handler_duration.labels(topic).observe(time.perf_counter() - started)
        return outcome

    async def _apply(self, event: Any, apply: Apply) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await first_time(conn, self.schema, event.event_id):
                return "duplicate"
            return await apply(conn, event) or "processed"

    async def _reject(self, ref: RecordRef, exc: RejectedInput) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await first_time(conn, self.schema, f"rejected:{ref.topic}:{ref.partition}:{ref.offset}"):
                return "duplicate"
            event = rejected_event(ref, exc.reason, exc.errors, self.service, self.topic_prefix)
            await enqueue(conn, self.schema, self.rejected_topic, ref.key, event)
        return "rejected"

    async def _retrying(self, work: Callable[[], Awaitable[str]]) -> str:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TRANSIENT_DB_ERRORS),
            wait=wait_exponential_jitter(initial=0.2, max=5),
            stop=stop_after_delay(60),
            reraise=True,
        ):
            with attempt:
                return await work()
        raise AssertionError("unreachable")
