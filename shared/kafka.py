"""Kafka clients configured one way for every service: broker, producer, admin, security."""
from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.security import SASLPlaintext, SASLScram256, SASLScram512, BaseSecurity

from shared.events import ALL_TOPICS, MAX_RECORD_BYTES
from shared.settings import Settings

log = logging.getLogger(__name__)

def raw_body(message: Any) -> bytes:
    """Hands handlers the record's bytes undecoded: FastStream's own JSON decoding would raise
    (RecursionError on deep nesting, say) before the handler could reject the record."""
    return message.body


async def tolerant_headers(records: Any, parse: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream decodes every header value as UTF-8 before any handler runs, and one that is not
    would fail the whole fetch before the records could be rejected. Such values are replaced
    (U+FFFD); no handler reads headers, the records' values and keys are untouched."""
    batch = records if isinstance(records, tuple) else (records,)
    if any(not _utf8(value) for record in batch for _, value in record.headers):
        batch = tuple(replace(r, headers=[(k, _readable(v)) for k, v in r.headers]) for r in batch)
    return await parse(batch if isinstance(records, tuple) else batch[0])


def _utf8(value: bytes | None) -> bool:
    try:
        (value or b"").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _readable(value: bytes | None) -> bytes:
    return (value or b"").decode("utf-8", "replace").encode("utf-8")


# Offsets are committed only after the handler's database transaction committed; an exception
# (database down, say) seeks back so the records are delivered again. Handlers are idempotent, so a
# redelivery is harmless. Bad input is never an exception: it goes to the rejected topic.
# Records arrive in batches (one fetch, up to CONSUMER_BATCH_SIZE): one transaction and one offset
# commit per batch instead of per record.
def consumer_options(settings: Settings) -> dict[str, Any]:
    return {
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "decoder": raw_body,
        "parser": tolerant_headers,
        "batch": True,
        "max_records": settings.consumer_batch_size,
        "batch_timeout_ms": max(1, int(settings.consumer_batch_wait * 1000)),
        "auto_offset_reset": "earliest",
        # Records of aborted transactions (an outbox relay fenced mid-batch, shared/outbox_tx.py) are skipped.
        "isolation_level": "read_committed",
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 1_000,
        "max_partition_fetch_bytes": 2 * MAX_RECORD_BYTES,
    }


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if "SSL" not in settings.kafka_security_protocol.upper():
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    return context


def client_args(settings: Settings) -> dict[str, Any]:
    """Connection arguments for plain aiokafka clients (producer, admin, consumers in tools)."""
    args: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol.upper(),
    }
    if context := _ssl_context(settings):
        args["ssl_context"] = context
    if args["security_protocol"].startswith("SASL"):
        args["sasl_mechanism"] = settings.kafka_sasl_mechanism.upper()
        args["sasl_plain_username"] = settings.kafka_sasl_username
        args["sasl_plain_password"] = settings.sasl_password()
    return args


def broker_security(settings: Settings) -> BaseSecurity | None:
    protocol = settings.kafka_security_protocol.upper()
    context = _ssl_context(settings)
    if protocol.startswith("SASL"):
        kinds = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}
        kind = kinds[settings.kafka_sasl_mechanism.upper()]
        return kind(
            username=settings.kafka_sasl_username or "",
            password=settings.sasl_password() or "",
            ssl_context=context,
            use_ssl=protocol == "SASL_SSL",
        )
    if context is not None:
        return BaseSecurity(ssl_context=context, use_ssl=True)
    return None


def make_broker(settings: Settings, **kwargs: Any) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=broker_security(settings),
        graceful_timeout=15.0,
        log_level=logging.DEBUG,  # one line per message is noise at production rates
        **kwargs,
    )


def make_producer(settings: Settings, transactional_id: str | None = None) -> AIOKafkaProducer:
    """The services' producer (unstarted): idempotent, so a retried send never writes a record twice
    into a partition; with `transactional_id`, transactional (shared/outbox_tx.py)."""
    return AIOKafkaProducer(
        **client_args(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=4 * MAX_RECORD_BYTES,
        compression_type=None,
        transactional_id=transactional_id,
    )


def make_committed_reader(settings: Settings) -> AIOKafkaConsumer:
    """An unstarted consumer without a group that reads committed records only."""
    return AIOKafkaConsumer(**client_args(settings), enable_auto_commit=False, auto_offset_reset="earliest",
                            isolation_level="read_committed")


async def ensure_topics(settings: Settings, names: tuple[str, ...] = ALL_TOPICS) -> None:
    """Creates the contract's topics when absent, with the configured partitions."""
    admin = AIOKafkaAdminClient(**client_args(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [settings.topic(n) for n in names if settings.topic(n) not in existing]
        if not missing:
            return
        topics = [NewTopic(n, settings.kafka_partitions, settings.kafka_replication_factor) for n in missing]
        try:
            await admin.create_topics(topics)
            log.info("created topics %s", ", ".join(missing))
        except TopicAlreadyExistsError:
            pass  # another service created them first
    finally:
        await admin.close()
