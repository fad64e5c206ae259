"""Reading inbound records safely: parse, reject with a reason, never crash, never drop.

`Inbox.handle_batch` is the one path every consumer takes: parse the raw bytes and check the record's
key against the event's `case_id` (`check_key`); on bad input write a `complaint.rejected` event
(with the original bytes) to the outbox; on good input run the
service's state change in a transaction that also records the event id, so a redelivered event
is a no-op. Transient database errors are retried with backoff, then raised so the records are
delivered again (the consumer commits a batch's offsets only after its transaction committed).
"""
from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg
from prometheus_client import Counter
from pydantic import BaseModel, TypeAdapter, ValidationError

from shared.db import first_times
from shared.events import (ACTIVITY_TYPES, COMPENSATION_APPROVALS, MAX_RECORD_BYTES, ComplaintClassified, ComplaintRejected,
                           case_activity)
from shared.metrics import service_metrics
from shared.batch import Batch
from shared.resilience import TRANSIENT_DB_ERRORS, DependencyWatch, Retrier

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)


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
    """The raw record as a JSON object, or RejectedInput: `empty` (a null value or zero bytes),
    `too_large`, `not_json`, `not_an_object`, or `invalid_text` (text PostgreSQL cannot store: NUL
    characters and unpaired surrogates)."""
    if raw is None:
        raise RejectedInput("empty", ["the record has no value (null)"])
    if not raw:
        raise RejectedInput("empty", ["the record has no value (zero bytes)"])
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


def parse_classified(raw: bytes | None, *, type_required: bool = False) -> ComplaintClassified:
    """A `complaint.classified` event from intake, for the services downstream of it. Its `type`
    may be left out (the model's default) unless `type_required`: then a record whose `type` is not
    `complaint.classified`, or has none, is refused as `unknown_type` before its fields are read."""
    return parse_event(raw, ComplaintClassified, ("complaint.classified",) if type_required else ())


def parse_activity(raw: bytes | None) -> Any:
    """One event of helpdesk.case-activity.v1 (the union in shared.events), or RejectedInput."""
    return parse_event(raw, case_activity, ACTIVITY_TYPES)


def check_key(key: bytes | None, event: Any) -> bool:
    """Whether a parsed event's record carried a key: True if it did and the key is the event's
    `case_id`, False if it had none (None or zero bytes; the `case_id` stands in for it, since
    Kafka spread such records over partitions round-robin the case's order may be lost, which is
    worth counting). Events without a `case_id` (an approval answer may omit it) accept any key.

    Raises RejectedInput("key_mismatch") when the key differs from the `case_id`: the case's other
    records, keyed by it, go to another partition, so this one could overtake or trail them."""
    if not key:
        return False
    case_id = getattr(event, "case_id", None)
    if not isinstance(case_id, str):
        return True
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        raise RejectedInput("key_mismatch", [f"key: is not UTF-8 and so differs from case_id {_shown(case_id)}"]) from None
    if text != case_id:
        raise RejectedInput("key_mismatch", [f"key: {_shown(text)} differs from case_id {_shown(case_id)}; "
                                             "key every record by its case_id"])
    return True


def _shown(value: str) -> str:
    """An id short enough to quote in an error (ids are not personal data), else only its length."""
    if len(value) <= 64 and value.isprintable():
        return repr(value)
    return f"({len(value)} characters)"


def parse_keyed(record: Any, parse: Callable[[bytes | None], Any]) -> Any:
    """`parse(record.value)`, then `check_key` on `record.key`: the event, or RejectedInput.
    For routers that parse a record before the Inbox does (the Inbox checks the key again)."""
    event = parse(record.value)
    check_key(record.key, event)
    return event


@lru_cache(maxsize=None)
def records_without_key(service: str) -> Counter:
    """`helpdesk_<service>_records_without_key_total{topic}`: accepted records that came with no key."""
    return Counter(f"helpdesk_{service}_records_without_key_total",
                   "Inbound records accepted without a key (their case_id stands in for it)", ["topic"])


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
    """The `complaint.rejected` event reporting `ref` (its topic without `topic_prefix`).

    `case_id` is the value's `case_id` when it can be read, else the key, except for an approval
    answer that leaves `case_id` out (its key may be anything, so its case is not known here: null).
    `causation_id` is the value's `event_id` when it can be read. A key that is not UTF-8 is
    reported with replacement characters; `raw` holds the value's exact bytes (base64)."""
    key = ref.key.decode("utf-8", "replace") if ref.key else None
    topic = ref.topic[len(topic_prefix):] if topic_prefix and ref.topic.startswith(topic_prefix) else ref.topic
    data = _object_of(ref.value)
    case_id = _id_in(data, "case_id")
    if case_id is None and not (data is not None and topic == COMPENSATION_APPROVALS):
        case_id = key
    return ComplaintRejected(
        case_id=case_id,
        causation_id=_id_in(data, "event_id"),
        reason=reason,
        errors=errors,
        topic=topic,
        partition=ref.partition,
        offset=ref.offset,
        raw=base64.b64encode(ref.value or b"").decode("ascii"),
        key=key,
        rejected_by=service,
    )


def _object_of(raw: bytes | None) -> dict[str, Any] | None:
    """The value as a JSON object, or None when it is not one (or too large to try)."""
    if not raw or len(raw) > MAX_RECORD_BYTES:
        return None
    try:
        data = json.loads(raw)
    except Exception:
        return None
    return data if isinstance(data, dict) else None


def _id_in(data: dict[str, Any] | None, field: str) -> str | None:
    """`data[field]` when it is a usable id (text of 1 to 200 characters), else None."""
    value = data.get(field) if data is not None else None
    return value if isinstance(value, str) and 0 < len(value) <= 200 else None


# Applies one event within the batch (its connection, locks, events to publish, state).
Apply = Callable[[Batch, Any], Awaitable[str | None]]
# Runs first in a batch's transaction; what it returns becomes `batch.state` (see Inbox.handle_batch).
Prepare = Callable[[Batch, list[Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    """How one inbound record is read (`parse`: bytes → event or RejectedInput) and applied."""

    parse: Callable[[bytes | None], Any]
    apply: Apply


Router = Callable[[Any], "Route | None"]  # None: the record is none of this service's business


def every_record(parse: Callable[[bytes | None], Any], apply: Apply) -> Router:
    """The router of a consumer that reads all its records one way."""
    route = Route(parse, apply)
    return lambda _record: route


@dataclass
class _Item:
    ref: RecordRef
    topic: str
    apply: Apply | None = None
    event: Any = None
    rejection: RejectedInput | None = None
    keyless: bool = False

    @property
    def key(self) -> str:
        if self.rejection is None:
            return self.event.event_id
        return f"rejected:{self.ref.topic}:{self.ref.partition}:{self.ref.offset}"


class Inbox:
    """Idempotent handling of one service's inbound records (see module doc).

    Records come in batches (one Kafka fetch): the whole batch is one transaction, so a fetch of
    500 records costs one commit instead of 500. If that transaction fails (a deadlock with another
    instance, a bad record tripping a constraint, the database going away), the batch is handled
    again one record per transaction, each retried, exactly as if it had never been batched."""

    def __init__(self, pool: asyncpg.Pool, schema: str, service: str, rejected_topic: str, topic_prefix: str = "") -> None:
        self.pool, self.schema, self.service = pool, schema, service
        self.rejected_topic, self.topic_prefix = rejected_topic, topic_prefix
        self.metrics = service_metrics(service)
        # Transient database errors: retried with backoff for a minute, then raised (the records
        # come again); one log line when PostgreSQL goes away, one when it is back.
        self.watch = DependencyWatch(service, "inbound", logger=log)
        self._retrier = Retrier(self.watch, maximum=5.0, give_up_after=60.0,
                                retry=lambda error: isinstance(error, TRANSIENT_DB_ERRORS))

    async def handle(self, record: Any, parse: Callable[[bytes | None], Any], apply: Apply) -> str:
        """One record; the outcome ("processed", "duplicate", "rejected" or what `apply` returned)."""
        outcomes = await self.handle_batch([record], every_record(parse, apply))
        return outcomes[0]

    async def handle_batch(self, records: Sequence[Any], route: Router, prepare: Prepare | None = None) -> list[str]:
        """Records in the order fetched. Each transaction (the batch, or one record when the batch
        is retried one at a time) gets a `shared.batch.Batch` of its own, handed to `prepare` and
        to each record's `apply`. `prepare(batch, events)` runs first in the batch's transaction:
        the place to take the batch's locks in one fixed order, so two batches touching the same
        cases never wait on each other in a circle. What it returns becomes `batch.state`, the
        service's own state for this batch; steps it registers with `batch.before_commit` run
        after the last record, still in that transaction (the place to write what the handlers
        gathered for the whole batch), then the batch's events are written to the outbox in one
        statement."""
        items = [item for item in (self._read(record, route) for record in records) if item is not None]
        if not items:
            return []
        started = time.perf_counter()
        try:
            outcomes = await self._apply(items, prepare)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if len(items) == 1 and not isinstance(exc, TRANSIENT_DB_ERRORS):
                raise
            log.info("batch of %d records failed (%s); handling them one at a time", len(items), type(exc).__name__)
            outcomes = []
            for item in items:
                outcomes += await self._retrying(lambda one=item: self._apply([one], prepare))
        elapsed = time.perf_counter() - started
        self.metrics.batch_size.observe(len(items))
        self._count(items, outcomes, elapsed / len(items))
        return outcomes

    def _read(self, record: Any, route: Router) -> _Item | None:
        chosen = route(record)
        if chosen is None:
            return None
        ref = RecordRef.of(record)
        topic = ref.topic.removeprefix(self.topic_prefix)
        try:
            event = chosen.parse(ref.value)
            keyed = check_key(ref.key, event)
            return _Item(ref, topic, chosen.apply, event=event, keyless=not keyed)
        except RejectedInput as exc:
            return _Item(ref, topic, rejection=exc)

    async def _apply(self, items: list[_Item], prepare: Prepare | None) -> list[str]:
        async with self.pool.acquire() as conn, conn.transaction():
            batch = Batch(conn, self.schema, self.service)
            fresh = await first_times(conn, self.schema, [item.key for item in items])
            if prepare is not None:
                batch.state = await prepare(batch, [i.event for i in items if i.rejection is None and i.key in fresh])
            outcomes = await self._apply_each(batch, items, fresh)
            await batch.commit()
            return outcomes

    async def _apply_each(self, batch: Batch, items: list[_Item], fresh: set[str]) -> list[str]:
        outcomes = []
        for item in items:
            if item.key not in fresh:
                outcomes.append("duplicate")
                continue
            fresh.discard(item.key)  # the same event twice in one batch: the second is a redelivery
            if item.rejection is not None:
                event = rejected_event(item.ref, item.rejection.reason, item.rejection.errors, self.service,
                                       self.topic_prefix)
                batch.publish(self.rejected_topic, item.ref.key, event)
                outcomes.append("rejected")
            else:
                assert item.apply is not None
                outcomes.append(await item.apply(batch, item.event) or "processed")
        return outcomes

    def _count(self, items: list[_Item], outcomes: list[str], seconds: float) -> None:
        """Counts a handled batch: each metric child is looked up once per batch and label set
        (topic, outcome, reason), not once per record; each record's share of the batch's time
        (`seconds`) is observed once per record."""
        handled: collections.Counter[tuple[str, str]] = collections.Counter()
        rejected: collections.Counter[tuple[str, str]] = collections.Counter()
        duplicates: collections.Counter[str] = collections.Counter()
        keyless: collections.Counter[str] = collections.Counter()
        for item, outcome in zip(items, outcomes):
            handled[(item.topic, outcome)] += 1
            if item.rejection is not None and outcome != "duplicate":
                rejected[(item.topic, item.rejection.reason)] += 1
                log.info("rejected %s[%d]@%d: %s", item.topic, item.ref.partition, item.ref.offset,
                         item.rejection.reason)
            if outcome == "duplicate":
                duplicates[item.topic] += 1
            elif item.keyless:
                keyless[item.topic] += 1
        for (topic, reason), n in rejected.items():
            self.metrics.rejected.labels(topic, reason).inc(n)
        for topic, n in duplicates.items():
            self.metrics.duplicates.labels(topic).inc(n)
        for topic, n in keyless.items():
            records_without_key(self.service).labels(topic).inc(n)
        for (topic, outcome), n in handled.items():
            self.metrics.events_handled.labels(topic, outcome).inc(n)
        per_topic: collections.Counter[str] = collections.Counter(item.topic for item in items)
        for topic, n in per_topic.items():
            observe = self.metrics.handler_duration.labels(topic).observe
            for _ in range(n):
                observe(seconds)

    async def _retrying(self, work: Callable[[], Awaitable[list[str]]]) -> list[str]:
        return await self._retrier.call(work)
