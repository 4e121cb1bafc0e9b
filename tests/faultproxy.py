"""A loopback TCP proxy that can fail on demand: a database outage without touching the
database (the machine's PostgreSQL is shared; it is never stopped or reconfigured).

    async with FaultProxy(5432) as proxy:   # 127.0.0.1:<proxy.port> -> 127.0.0.1:5432
        ...                                  # point the client at proxy.port
        await proxy.down()   # refuse new connections (nothing listens) and cut open ones
        await proxy.up()     # listen again on the same port
        proxy.cut()          # cut the open connections, keep accepting new ones

``down`` is what a stopped server looks like to a client (connection refused; every open
connection reset); ``cut`` is a network blip or a server that killed its backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import TracebackType

_CHUNK = 65536


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.accepted = 0

    async def __aenter__(self) -> FaultProxy:
        await self.up()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.down()

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def up(self) -> None:
        """Listen (again, on the same port once one was chosen)."""
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._serve, sock=sock)

    async def down(self) -> None:
        """Stop listening (new connections are refused) and cut every open connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.cut()
        for task in list(self._links):
            task.cancel()
        for task in list(self._links):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if server is not None:
            await server.wait_closed()

    def cut(self) -> None:
        """Reset every open connection (both sides) at once."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}
        links = [
            asyncio.create_task(_pipe(client_r, server_w)),
            asyncio.create_task(_pipe(server_r, client_w)),
        ]
        self._links.update(links)
        try:
            await asyncio.wait(links, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for writer in (client_w, server_w):
                writer.transport.abort()
                self._writers.discard(writer)
            for task in links:
                task.cancel()
                self._links.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
