"""A raw TCP server on 127.0.0.1 for the client's tests: each connection is handed to a
coroutine that reads and writes bytes as scripted; a connection that ends (or is reset) just
ends.  ``raw_server(handle)`` yields the server; leaving it closes every connection and waits
until their sockets are closed, so no test leaves one behind for the next."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

Handle = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """The running server: ``url`` of its chat-completions path, ``n_accepted`` connections."""

    def __init__(self, server: asyncio.Server) -> None:
        self.port: int = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        self.handlers: list[asyncio.Task[None]] = []

    @property
    def n_accepted(self) -> int:
        return len(self.handlers)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head; its body (``Content-Length`` bytes) is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    return head


@contextlib.asynccontextmanager
async def raw_server(handle: Handle) -> AsyncIterator[RawServer]:
    state: list[RawServer] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state[0].handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handle(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    state.append(RawServer(server))
    try:
        yield state[0]
    finally:
        await asyncio.sleep(0.05)  # connections still being accepted get their handler
        server.close()
        for handler in state[0].handlers:
            handler.cancel()
        await asyncio.gather(*state[0].handlers, return_exceptions=True)
        await asyncio.sleep(0.01)  # the transports' close callbacks
        await server.wait_closed()
