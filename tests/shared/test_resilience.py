"""shared.resilience on its own: one line down, one line up, growing backoff, a retry counter."""
from __future__ import annotations

import asyncio
import logging
import time
import uuid

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from shared.resilience import DependencyWatch, Retrier, dependency_of, retrying, short_reason


def service_name() -> str:
    return f"res{uuid.uuid4().hex[:8]}"  # metrics are per service name: each test its own


def retries(service: str, dependency: str, loop: str) -> float:
    return REGISTRY.get_sample_value(
        f"helpdesk_{service}_dependency_retries_total", {"dependency": dependency, "loop": loop}) or 0.0


def up(service: str, dependency: str) -> float | None:
    return REGISTRY.get_sample_value(f"helpdesk_{service}_dependency_up", {"dependency": dependency})


class Flaky:
    """Fails with `error` for its first `failures` calls, noting when each call came."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, []

    async def __call__(self) -> str:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise self.error
        return "done"


def test_errors_are_told_apart_by_dependency():
    assert dependency_of(ConnectionRefusedError(111, "Connect call failed")) == "postgres"
    assert dependency_of(asyncpg.exceptions.ConnectionDoesNotExistError("closed")) == "postgres"
    assert dependency_of(asyncpg.exceptions.CannotConnectNowError("starting up")) == "postgres"
    assert dependency_of(KafkaConnectionError("no broker")) == "kafka"
    assert dependency_of(asyncpg.exceptions.DeadlockDetectedError("deadlock")) is None  # reachable, a race
    assert dependency_of(KeyError("bug")) is None


def test_the_short_reason_is_one_line_and_never_quotes_a_server_message():
    error = asyncpg.exceptions.UniqueViolationError("duplicate key: Key (email)=(ann@example.com)")
    assert "ann@" not in short_reason(error) and "UniqueViolationError" in short_reason(error)
    assert short_reason(OSError("line one\nline two")) == "OSError: line one"
    assert len(short_reason(OSError("x" * 500))) <= 160


async def test_an_outage_logs_one_line_down_one_line_up_and_backs_off(caplog):
    service = service_name()
    caplog.set_level(logging.DEBUG, logger="shared.resilience")
    work = Flaky(4, ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"))
    retrier = Retrier(DependencyWatch(service, "timers"))
    assert up(service, "postgres") == 1.0 and retries(service, "postgres", "timers") == 0.0  # exported at once

    assert await retrier.call(work) == "done"

    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [(r.levelname, r.getMessage()) for r in loud] == [
        ("WARNING", "postgres unreachable from the timers loop: ConnectionRefusedError: "
                    "[Errno 111] Connect call failed ('127.0.0.1', 5432) (retrying with backoff)"),
        ("INFO", loud[1].getMessage()),
    ]
    assert loud[1].getMessage().startswith("postgres reachable again from the timers loop after ")
    assert loud[1].getMessage().endswith(" s (4 retries)")
    assert all(r.exc_info is None for r in loud), "tracebacks only at DEBUG"
    assert sum(1 for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info) == 4
    gaps = [b - a for a, b in zip(work.calls, work.calls[1:])]  # nominal 0.2, 0.4, 0.8, 1.6 s (+ up to 0.2)
    assert len(gaps) == 4
    for before, after in zip(gaps, gaps[1:]):
        assert after >= before * 0.95, f"backoff must grow: {gaps}"
    assert gaps[0] >= 0.19 and gaps[-1] >= 1.55 and gaps[-1] > 3 * gaps[0], gaps
    assert retries(service, "postgres", "timers") == 4.0
    assert up(service, "postgres") == 1.0


async def test_work_given_as_a_lambda_returning_a_coroutine_is_awaited_and_retried():
    retrier = Retrier(DependencyWatch(service_name(), "inbound"), initial=0.01, maximum=0.02)
    work = Flaky(2, ConnectionResetError(104, "reset"))
    assert await retrier.call(lambda: work()) == "done"
    assert len(work.calls) == 3


async def test_the_wait_is_capped_and_the_gauge_is_down_while_any_loop_retries():
    service = service_name()
    retrier = Retrier(DependencyWatch(service, "outbox", ("postgres", "kafka")), initial=0.05, maximum=0.2, jitter=0.0)
    other = DependencyWatch(service, "timers")
    work = Flaky(8, KafkaConnectionError("Unable to bootstrap"))
    task = asyncio.ensure_future(retrier.call(work))
    other.failed(ConnectionRefusedError(111, "refused"))
    await asyncio.sleep(0.3)
    assert up(service, "kafka") == 0.0 and up(service, "postgres") == 0.0
    assert retrying(service) == {"kafka": ["outbox"], "postgres": ["timers"]}
    await task
    assert up(service, "kafka") == 1.0 and up(service, "postgres") == 0.0  # timers still retry
    other.succeeded()
    assert up(service, "postgres") == 1.0 and retrying(service) == {}
    gaps = [b - a for a, b in zip(work.calls, work.calls[1:])]
    assert max(gaps) < 0.2 + 0.1, f"capped at 0.2 s: {gaps}"
    assert retries(service, "kafka", "outbox") == 8.0


async def test_halt_ends_the_waiting_at_once_and_raises_the_last_error():
    retrier = Retrier(DependencyWatch(service_name(), "timers"), initial=30.0, maximum=30.0)
    work = Flaky(100, ConnectionRefusedError(111, "refused"))
    task = asyncio.ensure_future(retrier.call(work))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    retrier.halt()
    with pytest.raises(ConnectionRefusedError):
        await task
    assert time.monotonic() - started < 1.0


async def test_giving_up_raises_and_a_refused_error_is_not_retried():
    service = service_name()
    retrier = Retrier(DependencyWatch(service, "inbound"), initial=0.05, maximum=0.1, give_up_after=0.5,
                      retry=lambda e: isinstance(e, OSError))
    with pytest.raises(ConnectionRefusedError):
        await retrier.call(Flaky(1000, ConnectionRefusedError(111, "refused")))
    bug = Flaky(1, ValueError("a bug"))
    with pytest.raises(ValueError):
        await retrier.call(bug)
    assert len(bug.calls) == 1
    assert retries(service, "postgres", "inbound") > 0


async def test_a_bug_is_logged_with_its_traceback_each_time_and_retried(caplog):
    caplog.set_level(logging.INFO)
    service = service_name()
    retrier = Retrier(DependencyWatch(service, "timers"), initial=0.01, maximum=0.02)
    assert await retrier.call(Flaky(2, KeyError("missing"))) == "done"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all(r.exc_info for r in errors)
    assert retries(service, "other", "timers") == 2.0
    assert not any("reachable again" in r.getMessage() for r in caplog.records)
