"""A TCP relay a test can cut and restore: a dependency outage without touching the shared server.

Clients (a pool, a service process) connect to the proxy's port instead of the server's. `cut()`
aborts every relayed connection and stops listening, so open connections break and new ones are
refused, as when PostgreSQL goes down; `restore()` listens again on the same port. The relay runs
on an event loop of its own in a thread, so it keeps relaying while a test blocks (time.sleep,
subprocess waits) or runs its own event loop.
"""
from __future__ import annotations

import asyncio
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    """Relays 127.0.0.1:`port` to `target_host`:`target_port` until `stop()`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host, self.target_port = target_host, target_port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port: int = s.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0  # accepted so far

    @classmethod
    def for_url(cls, url: str) -> tuple["TcpProxy", str]:
        """A proxy (started) in front of the server of a postgresql:// URL, and the URL through it."""
        parts = urlsplit(url)
        proxy = cls(parts.hostname or "127.0.0.1", parts.port or 5432).start()
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return proxy, urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{proxy.port}"))

    def start(self) -> "TcpProxy":
        self._thread.start()
        self._run(self._listen())
        return self

    def cut(self) -> None:
        """Breaks every open connection and refuses new ones."""
        self._run(self._cut())

    def restore(self) -> None:
        """Accepts and relays connections again."""
        self._run(self._listen())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._run(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def _run(self, coro) -> None:  # type: ignore[no-untyped-def]
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _shutdown(self) -> None:
        await self._cut()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:  # the relays end by themselves once their sockets are aborted
            _, pending = await asyncio.wait(others, timeout=2)
            for task in pending:
                task.cancel()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, server_writer))
        await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
