"""The composition root every service uses: broker, database, outbox relay, timers, policies,
metrics and health, started and stopped in the right order.

Start-up: topics → pool → migrations → producer → relay → timers → consumers.
Shutdown (SIGTERM): consumers stop and in-flight handlers finish (their transactions commit),
then timers stop, then the relay publishes what is left, then the pool closes.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from faststream.asgi import AsgiFastStream
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.specification import AsyncAPI
from prometheus_client import REGISTRY, make_asgi_app
from pydantic import BaseModel

from shared import db, kafka, resilience
from shared.batch import Batch
from shared.events import REJECTED, ComplaintRejected
from shared.inbound import Inbox
from shared.logcontext import IdsFilter
from shared.metrics import service_metrics
from shared.outbox import OutboxRelay
from shared.outbox_tx import TransactionalRelay, ensure_position_topic
from shared.policy import LoadedPolicy, PolicyHolder
from shared.retention import InboxRetention
from shared.settings import Settings, get_settings
from shared.timers import FireBatch, FireOne, Timer, TimerEngine

log = logging.getLogger(__name__)
P = TypeVar("P", bound=BaseModel)
GAUGE_REFRESH_SECONDS = 5.0  # how often `ServiceRuntime.gauges` reads the tables


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("helpdesk-recovery")
    except Exception:
        return "0"


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# The broker's own logger (faststream would otherwise build one with a colour formatter and a
# format of its own when the broker starts); setup_logging routes it through the root handler.
BROKER_LOGGER = "faststream.access.kafka"


class _FirstLineOnly(logging.Filter):
    """Keeps a record to its first line (Python warnings come with the offending source line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage().strip()
        record.msg, record.args = (text.splitlines()[0] if text else text), None
        return True


def setup_logging(level: str = "INFO", stream: Any = None, fmt: str = "text", service: str | None = None) -> logging.Handler:
    """Sends every logger of the process through ONE handler on `stream` (stderr by default) in
    ONE format, with no colour codes, whatever the libraries installed: handlers that faststream
    or uvicorn attached to their own loggers are removed and those loggers propagate to the root;
    Python warnings are logged too. Returns the handler.

    `fmt` (setting LOG_FORMAT): `text`, one line `LOG_FORMAT`; or `json`, one JSON object per line
    (python-json-logger) with `timestamp` (ISO 8601, UTC), `level`, `logger`, `message`,
    `service`, and the ids bound while the line was written (`event_id`, `case_id`, `trace_id`;
    shared/logcontext.py), plus `exc_info` for a traceback. Raises ValueError for another `fmt`.

    Messages carry ids and counts only; payloads (names, emails, free text) are never logged."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(
            "%(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True, static_fields={"service": service} if service else None,
        ))
    elif fmt == "text":
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    else:
        raise ValueError(f"LOG_FORMAT must be text or json, not {fmt!r}")
    handler.addFilter(IdsFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for name in list(logging.root.manager.loggerDict):
        logger = logging.root.manager.loggerDict[name]
        if isinstance(logger, logging.Logger) and (logger.handlers or not logger.propagate):
            for own in list(logger.handlers):
                logger.removeHandler(own)
            logger.propagate = True
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    if not any(isinstance(f, _FirstLineOnly) for f in warnings_logger.filters):
        warnings_logger.addFilter(_FirstLineOnly())  # "file:line: Category: message", not the source line
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    resilience.fold_library_retry_logs()  # asyncpg's pool says "retrying" with a traceback each time
    return handler


class ServiceRuntime:
    """One service's process: `name` names its metrics, consumer groups and logs; its tables live
    in the PostgreSQL schema `schema` (default: `name`); `/metrics`, `/livez`, `/readyz` (and `/healthz`) answer on `port`
    unless the METRICS_PORT setting says otherwise. A service's app.py passes its entry of
    services/registry.py."""

    def __init__(
        self,
        name: str,
        *,
        port: int = 9100,
        schema: str | None = None,
        migrations: Sequence[tuple[int, str]] = (),
        settings: Settings | None = None,
    ) -> None:
        self.name = name
        self.schema = db.check_schema(schema or name)
        self.settings = settings or get_settings()
        self.migrations = migrations
        self.metrics = service_metrics(name)
        self.port = self.settings.metrics_port or port
        self.pool: asyncpg.Pool | None = None
        self.producer = None
        self.inbox: Inbox | None = None
        self.relay: OutboxRelay | None = None
        self.retention: InboxRetention | None = None
        self.timer_engines: list[TimerEngine] = []
        self._timer_specs: list[dict[str, Any]] = []
        self._relay_task: asyncio.Task[None] | None = None  # these two finish their batch on shutdown
        self._timer_tasks: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []  # cancelled on shutdown
        self._startup: list[Callable[[], Awaitable[None]]] = []
        self._policies: list[PolicyHolder[Any]] = []

        middleware = KafkaPrometheusMiddleware(registry=REGISTRY, app_name=name, metrics_prefix=f"helpdesk_{name}_kafka")
        self.broker = kafka.make_broker(self.settings, middlewares=[middleware], logger=logging.getLogger(BROKER_LOGGER))
        self.app = AsgiFastStream(
            self.broker,
            asgi_routes=[("/metrics", make_asgi_app(REGISTRY)), ("/livez", self._livez), ("/readyz", self._healthz),
                         ("/healthz", self._healthz)],
            on_startup=[self._start],
            after_shutdown=[self._stop],
            specification=AsyncAPI(
                title=f"helpdesk {name} service",
                version=_version(),
                description=f"The {name} service of the service-recovery helpdesk. Topics, event types and "
                "fields follow the CRM contract (README, 'The contract'); events are UTF-8 JSON keyed by case_id.",
            ),
        )
        self.documents(REJECTED, ComplaintRejected, "Inbound records this service could not use")

    # ---------- what a service declares ----------
    def topic(self, name: str) -> str:
        return self.settings.topic(name)

    def subscriber(self, topic: str, **options: Any) -> Callable[[Any], Any]:
        """A consumer of one contract topic with the at-least-once options every service uses.

        Each topic gets its own consumer group: two consumers of one process in one group, each on
        another topic, rebalance against each other and can starve one of them."""
        group = f"{self.settings.group(self.name)}.{topic}"
        return self.broker.subscriber(self.topic(topic), group_id=group, **{**kafka.consumer_options(self.settings), **options})

    def documents(self, topic: str, model: type[BaseModel], description: str) -> None:
        """Declares an outbound topic and its event model for the AsyncAPI spec. Events themselves
        leave through the outbox relay, never through this publisher."""
        self.broker.publisher(self.topic(topic), schema=model, title=f"{self.name}.{topic}", description=description)

    def policy(self, filename: str, model: type[P]) -> PolicyHolder[P]:
        """Loads a policy now (a service refuses to start without a valid one) and hot-reloads it."""
        name = filename.rsplit(".", 1)[0]
        holder: PolicyHolder[P] = PolicyHolder(
            self.settings.policy_path(filename),
            model,
            check_every=self.settings.policy_check_interval,
            on_reload=lambda loaded: self._policy_loaded(name, loaded),
            on_refused=lambda _message: self.metrics.policy_refusals.labels(name).inc(),
        )
        self._policy_loaded(name, holder.current(), first=True)
        self.metrics.policy_refusals.labels(name)  # exported at 0, so the first refusal shows in increase()
        self.metrics.policy_reloads.labels(name)
        self._policies.append(holder)
        return holder

    def watch(self, holder: PolicyHolder[Any]) -> None:
        """Checks another hot-reloaded file (a model artifact) with the policies: same interval,
        and `/healthz` lists it under `policy_errors` while its last edit is refused."""
        self._policies.append(holder)

    def timers(self, *, fire_one: FireOne, fire_batch: FireBatch | None = None) -> None:
        self._timer_specs.append({"fire_one": fire_one, "fire_batch": fire_batch})

    def fire_timers(self, fire: Callable[[Batch, list[Timer]], Awaitable[None]], *, in_batches: bool = True) -> None:
        """The service's timers, fired by `fire(batch, due)`: each claim of due timers (or, with
        `in_batches=False` and on a retry, each timer alone) is one `Batch` of its own, committed
        (its `before_commit` steps, then its outbox rows) when `fire` returns, in the transaction
        that claimed them."""
        async def fire_batch(conn: asyncpg.Connection, due: Sequence[Timer]) -> None:
            batch = Batch(conn, self.schema, self.name)
            await fire(batch, list(due))
            await batch.commit()

        async def fire_one(conn: asyncpg.Connection, timer: Timer) -> None:
            await fire_batch(conn, [timer])

        self.timers(fire_one=fire_one, fire_batch=fire_batch if in_batches else None)

    def on_startup(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._startup.append(hook)

    def background(self, work: Callable[[], Awaitable[None]]) -> None:
        async def start() -> None:
            self._spawn(work())

        self._startup.append(start)

    def gauges(self, refresh: Callable[[asyncpg.Connection], Awaitable[None]], every: float = GAUGE_REFRESH_SECONDS) -> None:
        """Runs `refresh(conn)` every `every` seconds (5 by default) in the background, on a pooled
        connection, to set the service's gauges from its tables. A database outage is one line when
        it starts and one when it ends (`dependency_watch("gauges")`), never a stopped loop."""
        async def loop() -> None:
            watch = self.dependency_watch("gauges")
            while True:
                try:
                    assert self.pool is not None
                    async with self.pool.acquire() as conn:
                        await refresh(conn)
                    watch.succeeded()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    watch.failed(exc)
                await asyncio.sleep(every)

        self.background(loop)

    def dependency_watch(self, loop: str, dependencies: Sequence[str] = (resilience.POSTGRES,)) -> resilience.DependencyWatch:
        """For a service's own retrying loop (a gauge refresher): report each round with
        `failed(error)` / `succeeded()` and an outage is one line when it starts and one when it
        ends, with `helpdesk_<service>_dependency_retries_total{loop=...}` counting the failed rounds."""
        return resilience.DependencyWatch(self.name, loop, dependencies, logger=logging.getLogger(f"services.{self.name}"))

    def set_context(self, name: str, value: Any) -> None:
        self.app.context.set_global(name, value)

    # ---------- lifecycle ----------
    async def _start(self) -> None:
        s = self.settings
        await kafka.ensure_topics(s)
        self.pool = await db.create_pool(s.dsn(), min_size=s.db_pool_min, max_size=s.db_pool_max)
        if s.migrate_on_start:
            await db.migrate(self.pool, self.schema, self.migrations)
        else:
            await self._wait_for_migrations()
        self.inbox = Inbox(self.pool, self.schema, self.name, self.topic(REJECTED), s.helpdesk_topic_prefix)
        if s.kafka_transactions:
            relay = TransactionalRelay(
                self.pool, self.schema, service=self.name, topic_prefix=s.helpdesk_topic_prefix,
                producer_factory=lambda txn_id: kafka.make_producer(s, transactional_id=txn_id),
                consumer_factory=lambda: kafka.make_committed_reader(s), batch_size=s.outbox_batch_size,
            )
            await ensure_position_topic(lambda: AIOKafkaAdminClient(**kafka.client_args(s)), relay.position_topic,
                                        s.kafka_replication_factor)
            self.relay = relay
        else:
            self.producer = kafka.make_producer(s)
            await self.producer.start()
            self.relay = OutboxRelay(self.pool, self.schema, self.producer, service=self.name, batch_size=s.outbox_batch_size)
        self._relay_task = asyncio.ensure_future(self.relay.run())
        for spec in self._timer_specs:
            engine = TimerEngine(
                self.pool, self.schema, service=self.name, batch_size=s.timer_batch_size,
                poll_interval=s.timer_poll_interval, **spec,
            )
            self.timer_engines.append(engine)
            self._timer_tasks.append(asyncio.ensure_future(engine.run()))
        self._spawn(self._watch_policies())
        self._spawn(self._measure_consumer_lag())
        self.retention = InboxRetention(self.pool, self.schema, self.name, s.processed_events_retention,
                                        s.processed_events_prune_interval, self.dependency_watch("retention"))
        self._spawn(self.retention.run())
        for hook in self._startup:
            await hook()
        log.info("%s started (pid %d, metrics on :%d)", self.name, os.getpid(), self.port)

    async def _wait_for_migrations(self, every: float = 5.0) -> None:
        """MIGRATE_ON_START=false: the schema is changed by `helpdesk migrate` (a Job or an
        initContainer with the DDL role), never by this process. Waits, one log line, until the
        schema has every migration this code needs; then the service starts."""
        assert self.pool is not None
        said = False
        while pending := await db.pending_migrations(self.pool, self.schema, self.migrations):
            if not said:
                log.warning("schema %s lacks migration(s) %s and MIGRATE_ON_START is false: waiting for "
                            "`helpdesk migrate %s` (checking every %g s)", self.schema,
                            ", ".join(map(str, pending)), self.name, every)
                said = True
            await asyncio.sleep(every)
        if said:
            log.info("schema %s is migrated: starting", self.schema)

    def _spawn(self, work: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(work))

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for engine in self.timer_engines:
            await engine.stop()
        # Timers finish their transaction first; then the relay publishes what they wrote.
        await self._finish(self._timer_tasks)
        if self.relay and self._relay_task:
            await self.relay.publish_until_empty(timeout=10)
            await self.relay.stop()
            await self._finish([self._relay_task])
        if self.producer:
            await self.producer.stop()
        if self.pool:
            await self.pool.close()
        log.info("%s stopped", self.name)

    @staticmethod
    async def _finish(tasks: list[asyncio.Task[None]], timeout: float = 10) -> None:
        """Waits for tasks told to stop; cancels those still running after `timeout`."""
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _watch_policies(self) -> None:
        """Checks every watched file each `policy_check_interval` seconds. A file's content never
        makes `reload_if_changed` raise (it is refused, counted and logged once per edit); should
        anything else fail (an `on_reload` hook), it is logged once per holder and error, its
        traceback at DEBUG, never every second."""
        reported: dict[int, str] = {}
        while True:
            await asyncio.sleep(self.settings.policy_check_interval)
            for holder in self._policies:
                try:
                    holder.reload_if_changed()
                    reported.pop(id(holder), None)
                except Exception as exc:
                    what = resilience.short_reason(exc)
                    if reported.get(id(holder)) != what:
                        reported[id(holder)] = what
                        log.error("policy watch failed for %s: %s (checked again every %g s)", holder.path.name, what,
                                  self.settings.policy_check_interval)
                    log.debug("policy watch failed for %s", holder.path.name, exc_info=exc)

    async def _measure_consumer_lag(self, every: float = 5.0, timeout: float = 5.0) -> None:
        """Lag of this instance's assigned partitions (the high watermark minus the committed
        offset), every `every` seconds; also the service's watch on Kafka.

        Each round first asks the broker to describe the cluster, then the committed offsets,
        within `timeout` seconds. A round that fails or times out is one retry of the
        "consumer_lag" loop on `dependency_retries_total{dependency="kafka"}`: the first logs
        "kafka unreachable from the consumer_lag loop", the next good round "kafka reachable again
        …" with the number of repeated aiokafka log lines folded meanwhile (see shared.resilience)."""
        from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

        watch = resilience.DependencyWatch(self.name, "consumer_lag", (resilience.KAFKA,), logger=log)
        while True:
            await asyncio.sleep(every)
            try:
                async with asyncio.timeout(timeout):
                    if not await self.broker.ping(timeout=timeout / 2):
                        raise KafkaConnectionError(f"the broker did not answer within {timeout / 2:g} s")
                    await self._measure_lag_once()
            except TimeoutError:  # an OSError: say which dependency did not answer
                watch.failed(KafkaTimeoutError(f"no committed offsets from the broker within {timeout:g} s"))
            except Exception as exc:
                watch.failed(exc)
            else:
                watch.succeeded()

    async def _measure_lag_once(self) -> None:
        prefix = self.settings.helpdesk_topic_prefix
        lag = self.metrics.consumer_lag
        measured: list[tuple[str, str, str, int]] = []
        for subscriber in self.broker.subscribers:
            consumer = getattr(subscriber, "consumer", None)
            if consumer is None:
                continue
            # two groups may read one topic (followup's inbound and recovery consumers): each its own lag
            group = str(getattr(subscriber, "group_id", "") or "").removeprefix(prefix)
            for partition in consumer.assignment():
                highwater = consumer.highwater(partition)
                if highwater is None:
                    continue  # nothing fetched yet on this partition
                committed = await consumer.committed(partition) or 0
                measured.append((partition.topic.removeprefix(prefix), str(partition.partition), group,
                                 max(0, highwater - committed)))
        lag.clear()  # after the round: a failed one leaves the last lag in place
        for topic, partition_number, group, value in measured:
            lag.labels(topic, partition_number, group).set(value)

    def _policy_loaded(self, name: str, loaded: LoadedPolicy[Any], first: bool = False) -> None:
        self.metrics.policy_info.clear()
        self.metrics.policy_info.labels(name, loaded.version).set(1)
        if not first:
            self.metrics.policy_reloads.labels(name).inc()

    # ---------- health ----------
    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Readiness: (ready, checks). Ready when the broker and the database answer within 2 s
        each; the checks also name the policy versions in force, the loops retrying an outage
        and the policy files whose last edit was refused (the last good one stays in force)."""
        checks: dict[str, Any] = {"service": self.name}
        try:
            checks["kafka"] = bool(await self.broker.ping(timeout=2.0))
        except Exception:
            checks["kafka"] = False
        try:
            assert self.pool is not None
            async with asyncio.timeout(2.0):
                checks["database"] = await self.pool.fetchval("SELECT 1") == 1
        except Exception:
            checks["database"] = False
        if down := resilience.retrying(self.name):
            checks["retrying"] = down  # loops waiting out an outage with backoff, e.g. {"postgres": ["timers"]}
        checks["policies"] = {h.path.name: h.current().version for h in self._policies}  # the versions in force
        stale = [h.path.name for h in self._policies if h.last_error]
        if stale:
            checks["policy_errors"] = stale  # still healthy: the last good policy is in force
        ok = checks["kafka"] and checks["database"]
        checks["status"] = "ok" if ok else "unavailable"
        return ok, checks

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """Whether restarting the process could help: False when one of its own loops (the outbox
        relay, a timer engine, a policy watch or gauge loop) has stopped with an error. It never
        asks the broker or the database: their outages are waited out with backoff inside the loops
        (`health` reports them), and restarting every pod during one would only add a storm of
        reconnections to it."""
        loops = [("outbox relay", self._relay_task)] + [("timers", t) for t in self._timer_tasks] + [
            ("background", t) for t in self._tasks]
        stopped = sorted({name for name, task in loops
                          if task is not None and task.done() and not task.cancelled() and task.exception() is not None})
        checks: dict[str, Any] = {"service": self.name, "status": "stopped" if stopped else "ok"}
        if stopped:
            checks["stopped_loops"] = stopped
        return not stopped, checks

    async def _livez(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """GET /livez, the liveness probe: 200 while the process and its loops run (see
        `liveness`), 503 with the stopped loops otherwise."""
        ok, checks = self.liveness()
        await _answer(send, ok, checks)

    async def _healthz(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """GET /readyz (and /healthz, its older name), the readiness probe: 200 when the broker and
        the database answer within 2 s, 503 otherwise (see `health`)."""
        ok, checks = await self.health()
        await _answer(send, ok, checks)

    # ---------- running ----------
    def run(self) -> None:
        import uvicorn

        setup_logging(self.settings.log_level, fmt=self.settings.log_format, service=self.name)
        # log_config=None: uvicorn keeps its hands off logging (no handler, format or colour of its own).
        # uvloop (a dependency outside Windows) runs the event loop: a faster loop for the consumers,
        # the outbox relay and the timers; asked for by name, so an image without it fails at start
        # instead of quietly running on the slower default loop.
        uvicorn.run(self.app, host="0.0.0.0", port=self.port, log_level="warning", lifespan="on",
                    timeout_graceful_shutdown=20, log_config=None, loop=EVENT_LOOP)


# The services' event loop, as uvicorn names it: uvloop where it is a dependency (pyproject.toml).
EVENT_LOOP = "asyncio" if sys.platform == "win32" else "uvloop"


async def _answer(send: Any, ok: bool, checks: dict[str, Any]) -> None:
    """An ASGI JSON answer: 200 when `ok`, else 503."""
    await send({"type": "http.response.start", "status": 200 if ok else 503,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(checks).encode()})
