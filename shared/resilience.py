"""Loops that outlive an outage of PostgreSQL or Kafka, and say so in few words.

Every loop of a service that retries (the outbox relay, the timer loop, the inbound consumers'
transaction retries, the services' gauge refreshers) reports its failures and successes to a
`DependencyWatch`. What an outage looks like then:

- the first failure logs ONE warning: ``postgres unreachable from the timers loop: ConnectionRefusedError:
  … (retrying with backoff)``;
- every retry adds 1 to ``helpdesk_<service>_dependency_retries_total{dependency, loop}`` and logs
  the traceback at DEBUG only;
- the first success logs ONE info line: ``postgres reachable again from the timers loop after 55.2 s
  (12 retries)``;
- ``helpdesk_<service>_dependency_up{dependency}`` is 0 while any loop of the service sees the
  dependency down, 1 otherwise.

A failure that is not a dependency's (a bug) is logged at ERROR with its traceback every time, and
retried with the same backoff, so a bug shows but never spins.

Libraries retry on their own too, and say so on every attempt: asyncpg's pool warns with a
traceback, and aiokafka's clients (`aiokafka`, `aiokafka.conn`, `aiokafka.cluster`,
`aiokafka.consumer.*`, `aiokafka.producer.*`) log an ERROR per reconnect attempt, some 100 a
second while the broker is away. `fold_library_retry_logs()` (called by `setup_logging` and the
CLI) folds them: asyncpg's into DEBUG, aiokafka's by `RepeatFolder` (the first record of each
message template is shown, its repeats go to DEBUG and are counted, and the next one shown says
"(N similar messages in T s suppressed)"). The service's consumer-lag loop notices Kafka going and
coming back and logs the one line for each, with the number of aiokafka lines folded meanwhile.

`Retrier` runs one unit of work with tenacity: exponential backoff with jitter, 0.2 s doubling
to 10 s by default, until it succeeds, `halt()` is called (shutdown) or `give_up_after` seconds
passed (then the last error is raised).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
from aiokafka.errors import KafkaError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    stop_any,
    stop_never,
    wait_exponential_jitter,
)

from shared.metrics import service_metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

POSTGRES, KAFKA = "postgres", "kafka"
OTHER = "other"  # the `dependency` label of failures that are not a dependency's (bugs)

# Errors meaning "PostgreSQL is unreachable or shedding load right now": retrying helps.
# asyncio's TimeoutError is an OSError (a query or connect that hangs on a dead link).
UNREACHABLE_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)
# A transaction that lost a race with another one: retrying helps, the database is fine.
CONFLICT_DB_ERRORS: tuple[type[BaseException], ...] = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)
TRANSIENT_DB_ERRORS = UNREACHABLE_DB_ERRORS + CONFLICT_DB_ERRORS


def dependency_of(error: BaseException) -> str | None:
    """Which dependency `error` says is unreachable: "kafka" for any aiokafka error, "postgres"
    for connection-level PostgreSQL errors (`UNREACHABLE_DB_ERRORS`), None for anything else
    (a conflict between transactions, a bug, bad data)."""
    if isinstance(error, KafkaError):
        return KAFKA
    if isinstance(error, UNREACHABLE_DB_ERRORS):
        return POSTGRES
    return None


def short_reason(error: BaseException, limit: int = 160) -> str:
    """One line naming the error, at most `limit` characters. A PostgreSQL server error other
    than a connection error gives its class and SQLSTATE only: its message may quote row data."""
    name = type(error).__name__
    if isinstance(error, asyncpg.PostgresError) and not isinstance(error, UNREACHABLE_DB_ERRORS):
        return f"{name} (SQLSTATE {error.sqlstate})" if getattr(error, "sqlstate", None) else name
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if not first:
        return name
    line = first if first.startswith(name) else f"{name}: {first}"
    return line if len(line) <= limit else line[: limit - 1] + "…"


# Per service, which loops see each dependency down now: the gauge is 0 while any does.
_down: dict[tuple[str, str], set[str]] = {}


def retrying(service: str) -> dict[str, list[str]]:
    """The dependencies `service`'s loops are retrying now, each with those loops' names
    (sorted); empty when everything is reachable."""
    return {dep: sorted(loops) for (svc, dep), loops in sorted(_down.items()) if svc == service and loops}


@dataclass
class _Outage:
    started: float  # time.monotonic()
    retries: int = 0


class _FoldedIntoTheWatch(logging.Filter):
    """Keeps a library's own retry-loop warnings about an unreachable dependency out of the log
    (shown at DEBUG only): the service's loops already say when it goes and when it is back."""

    def __init__(self, messages: tuple[str, ...]) -> None:
        super().__init__()
        self.messages = messages

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None or dependency_of(error) is None or not str(record.msg).startswith(self.messages):
            return True
        if not logging.getLogger("shared").isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


# Warnings (with a traceback, each retry) that libraries log from their own reconnect loops.
LIBRARY_RETRY_MESSAGES = {
    "asyncpg.pool": ("Failed to restore the pool connection floor",),
}


@dataclass
class _Template:
    shown_at: float  # record.created of the last record shown
    last_seen: float
    window: float  # repeats within this long after `shown_at` are folded
    suppressed: int = 0


class RepeatFolder(logging.Filter):
    """Lets the first record of each message template (logger name, level and format string,
    before its arguments) through, and folds its repeats for `window` seconds: they become DEBUG
    records, dropped unless DEBUG is on (then the full detail shows), and are counted. The first
    repeat after the window is shown with "(N similar messages in T s suppressed)" appended, and
    the window doubles, up to `longest`; a template silent for longer than its window starts over.

    One instance is shared by every logger it is added to, so a template counts once however
    many clients log it. Thread-safe. Records at DEBUG or below pass untouched."""

    def __init__(self, window: float = 60.0, longest: float = 3600.0, max_templates: int = 1000) -> None:
        super().__init__()
        self.window, self.longest, self.max_templates = window, longest, max_templates
        self._templates: dict[tuple[str, int, str], _Template] = {}
        self._suppressed_total = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = record.created
        folded, since, suppressed = 0, 0.0, False
        with self._lock:
            seen = self._templates.get(key)
            if seen is None or now - seen.last_seen > seen.window:  # new, or quiet for a while: start over
                if seen is not None:
                    folded, since = seen.suppressed, seen.last_seen - seen.shown_at
                elif len(self._templates) >= self.max_templates:
                    self._templates.clear()  # templates are a library's format strings: this is a safety net
                self._templates[key] = _Template(now, now, self.window)
            elif now - seen.shown_at < seen.window:
                seen.last_seen = now
                seen.suppressed += 1
                self._suppressed_total += 1
                suppressed = True
            else:
                folded, since = seen.suppressed, now - seen.shown_at
                seen.shown_at, seen.last_seen, seen.suppressed = now, now, 0
                seen.window = min(seen.window * 2, self.longest)
        if suppressed:
            if not logging.getLogger().isEnabledFor(logging.DEBUG):
                return False
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return True
        if folded and isinstance(record.msg, str):
            record.msg = f"{record.msg} ({folded} similar message{'s' * (folded != 1)} in {since:.0f} s suppressed)"
        return True

    def reset(self) -> None:
        """Forgets every template and count (a test's fresh start)."""
        with self._lock:
            self._templates.clear()
            self._suppressed_total = 0

    def take_suppressed(self) -> int:
        """How many records were folded since the last call (and resets that count)."""
        with self._lock:
            total, self._suppressed_total = self._suppressed_total, 0
        return total


# The loggers of libraries whose reconnect loops log every attempt, folded by one RepeatFolder.
FOLDED_LIBRARIES = ("aiokafka",)
LIBRARY_REPEATS = RepeatFolder()


def _library_loggers(prefix: str) -> list[logging.Logger]:
    """`prefix`'s logger and every logger below it that exists now (aiokafka makes them at import)."""
    names = [prefix, *(n for n in list(logging.root.manager.loggerDict) if n.startswith(prefix + "."))]
    return [logging.getLogger(name) for name in names]


def fold_library_retry_logs() -> None:
    """Installs (once) the filters that fold the libraries' own reconnect logs: asyncpg's
    (`LIBRARY_RETRY_MESSAGES`) become DEBUG records, dropped unless DEBUG is on; aiokafka's
    repeats go through `LIBRARY_REPEATS` (a `RepeatFolder`) on every aiokafka logger. Imports
    aiokafka first so that all its loggers exist; safe to call again."""
    import aiokafka  # noqa: F401  (its modules create their loggers at import)

    for name, messages in LIBRARY_RETRY_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _FoldedIntoTheWatch) for f in logger.filters):
            logger.addFilter(_FoldedIntoTheWatch(messages))
    for prefix in FOLDED_LIBRARIES:
        for logger in _library_loggers(prefix):
            if LIBRARY_REPEATS not in logger.filters:
                logger.addFilter(LIBRARY_REPEATS)


class DependencyWatch:
    """What one loop (`loop`: a short, fixed name such as "outbox", "timers", "inbound") of
    `service` knows about the dependencies it uses.

    Call `failed(error)` after each failed attempt that will be retried and `succeeded()` after
    each successful one; the watch logs the first failure and the recovery of each dependency
    once, counts retries and keeps the `dependency_up` gauge. `dependencies` are exported at
    once (retries 0, up 1) so a first outage shows in `increase()` and on dashboards."""

    def __init__(self, service: str, loop: str, dependencies: Iterable[str] = (POSTGRES,), *,
                 logger: logging.Logger | None = None) -> None:
        self.service, self.loop = service, loop
        self.metrics = service_metrics(service)
        self.log = logger or log
        self._outages: dict[str, _Outage] = {}
        for dependency in dependencies:
            self.metrics.dependency_retries.labels(dependency, loop)
            if not _down.get((service, dependency)):
                self.metrics.dependency_up.labels(dependency).set(1)

    @property
    def down(self) -> tuple[str, ...]:
        """The dependencies this loop saw failing and not yet succeeding again."""
        return tuple(self._outages)

    def failed(self, error: BaseException, retry_in: float | None = None) -> str:
        """Records one failed attempt that will be retried; returns the dependency label it was
        counted under ("postgres", "kafka" or "other")."""
        then = f"; retry in {retry_in:.2f} s" if retry_in is not None else ""
        if isinstance(error, CONFLICT_DB_ERRORS):  # PostgreSQL is there: no outage, no alarm
            self.metrics.dependency_retries.labels(POSTGRES, self.loop).inc()
            self.log.debug("%s loop: %s (retrying%s)", self.loop, short_reason(error), then, exc_info=error)
            return POSTGRES
        dependency = dependency_of(error) or OTHER
        self.metrics.dependency_retries.labels(dependency, self.loop).inc()
        if dependency == OTHER:
            self.log.error("%s loop of %s failed: %s (retrying with backoff%s)", self.loop, self.service,
                           short_reason(error), then, exc_info=error)
            return dependency
        outage = self._outages.get(dependency)
        if outage is None:
            outage = self._outages[dependency] = _Outage(time.monotonic())
            self.log.warning("%s unreachable from the %s loop: %s (retrying with backoff)",
                             dependency, self.loop, short_reason(error))
            _down.setdefault((self.service, dependency), set()).add(self.loop)
            self.metrics.dependency_up.labels(dependency).set(0)
        outage.retries += 1
        self.log.debug("%s loop: %s still unreachable (retry %d%s)", self.loop, dependency, outage.retries, then,
                       exc_info=error)
        return dependency

    def succeeded(self) -> None:
        """Records a successful attempt: every dependency this loop saw down is reachable again."""
        if not self._outages:
            return
        now = time.monotonic()
        for dependency, outage in self._outages.items():
            folded = LIBRARY_REPEATS.take_suppressed() if dependency == KAFKA else 0
            also = f"; {folded} repeated aiokafka log lines suppressed" if folded else ""
            self.log.info("%s reachable again from the %s loop after %.1f s (%d %s%s)", dependency, self.loop,
                          now - outage.started, outage.retries, "retry" if outage.retries == 1 else "retries", also)
            loops = _down.get((self.service, dependency), set())
            loops.discard(self.loop)
            if not loops:
                self.metrics.dependency_up.labels(dependency).set(1)
        self._outages.clear()


class Retrier:
    """Runs a loop's unit of work until it succeeds, with tenacity's exponential backoff and
    jitter: waits of `initial` · 2ⁿ seconds plus up to `jitter` seconds, at most `maximum`.

    Every `Exception` is retried (a loop must not die); failures are reported to `watch`.
    `give_up_after` (seconds) raises the last error after that long; `halt()` ends the waiting
    at once and raises the last error (for shutdown). Cancellation is never retried."""

    def __init__(self, watch: DependencyWatch, *, initial: float = 0.2, maximum: float = 10.0,
                 jitter: float = 0.2, give_up_after: float | None = None,
                 retry: Callable[[BaseException], bool] | None = None) -> None:
        self.watch = watch
        self.wait = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=jitter)
        self.give_up_after = give_up_after
        self._retry = retry or (lambda error: True)
        self._halt = asyncio.Event()

    def halt(self) -> None:
        """Stops retrying: a call waiting for its next attempt raises its last error now."""
        self._halt.set()

    async def call(self, work: Callable[[], Awaitable[T]]) -> T:
        """`await work()` until it returns; its result. Raises the last error when halted or past
        `give_up_after`, at once an error `retry` refuses, and CancelledError as it comes."""
        stop = stop_any(stop_never if self.give_up_after is None else stop_after_delay(self.give_up_after),
                        lambda _state: self._halt.is_set())
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, Exception) and self._retry(e)),
            wait=self.wait,
            stop=stop,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

        async def attempt() -> T:  # `work` may be a lambda returning a coroutine: always await it
            return await work()

        result = await retrying(attempt)
        self.watch.succeeded()
        return result

    def _before_sleep(self, state: RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        error = state.outcome.exception()
        assert error is not None
        self.watch.failed(error, retry_in=state.next_action.sleep)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._halt.wait(), seconds)
        except asyncio.TimeoutError:
            pass
