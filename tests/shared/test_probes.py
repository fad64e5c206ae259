"""/livez says whether a restart could help (a loop of the process stopped), /readyz whether the
broker and the database answer: a dependency outage takes pods out of rotation, never restarts them."""
from __future__ import annotations

import asyncio
import json

from shared.service import ServiceRuntime
from shared.settings import Settings


async def _get(runtime: ServiceRuntime, path: str) -> tuple[int, dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    handler = {"/livez": runtime._livez, "/readyz": runtime._healthz}[path]
    await handler({"type": "http", "path": path}, None, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


def _runtime() -> ServiceRuntime:
    # nothing listens on port 1: the broker and the database are "down"
    return ServiceRuntime("probes", settings=Settings(kafka_bootstrap_servers="127.0.0.1:1",
                                                       database_url="postgresql://x@127.0.0.1:1/x"))


async def test_live_but_not_ready_while_the_dependencies_are_down() -> None:
    runtime = _runtime()
    status, body = await _get(runtime, "/livez")
    assert (status, body["status"]) == (200, "ok")
    status, body = await _get(runtime, "/readyz")
    assert status == 503
    assert body["kafka"] is False and body["database"] is False and body["status"] == "unavailable"


async def test_a_loop_that_stopped_with_an_error_fails_liveness() -> None:
    runtime = _runtime()

    async def broken() -> None:
        raise RuntimeError("boom")

    async def waiting() -> None:
        await asyncio.sleep(3600)

    runtime._spawn(waiting())
    assert (await _get(runtime, "/livez"))[0] == 200
    runtime._spawn(broken())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    status, body = await _get(runtime, "/livez")
    assert status == 503 and body == {"service": "probes", "status": "stopped", "stopped_loops": ["background"]}
    for task in runtime._tasks:
        task.cancel()
    await asyncio.gather(*runtime._tasks, return_exceptions=True)
    # a loop cancelled at shutdown is not a failure
    assert runtime.liveness()[0] is False  # the broken one still counts
    runtime._tasks = [t for t in runtime._tasks if t.cancelled()]
    assert runtime.liveness()[0] is True
