"""A lean HTTP/1.1 client for the request hot path: keep-alive connections to one origin, the
response body handed over piece by piece as it arrives.

Why not aiohttp here (qpsweep uses it for every other request): its client costs more CPU
per request than everything else the generator does, and an open-loop generator that runs
out of CPU stops sending on time.  This module only keeps connections, writes each request in
one ``write`` and applies the timeouts; the response is parsed by ``httptools`` (llhttp, the
parser of Node.js, which aiohttp also compiles in).

Contract:

* ``Origin(url, verify_tls, connect_timeout_s)`` keeps connections to ``url``'s scheme, host
  and port: ``send_idle(request, deadline)`` writes the request at once on an idle connection
  (the most recently used) and returns it, or returns None when none is idle; ``send(request,
  deadline)`` does the same or, with none idle, connects a new one first (no limit: an
  open-loop generator never queues a request behind another); ``release(conn)`` keeps it for
  reuse only when its response was read to the end and the server allows keep-alive, and
  closes it otherwise (cut short, timed out, cancelled).
* ``deadline`` is an ``loop.time()`` instant; when it passes, the exchange fails with
  ``asyncio.TimeoutError`` (connecting included).  A connection not made within
  ``connect_timeout_s`` (when that comes before the deadline) raises ``ConnectTimeout``.
* ``Connection.head()`` returns once the status line and headers arrived (``status``,
  ``headers`` with lower-case names; 1xx responses are skipped);
  ``read()`` returns the body bytes of one network read, the oldest not yet returned,
  waiting for one when there is none, and ``b""`` at the end; ``arrived_s`` is then the
  ``perf_counter`` time at which that read was handled.  So bytes that arrived apart keep
  their own times even when the reader falls behind.
* Bounds (a hostile server costs bounded memory and event-loop time): gzip and deflate
  bodies are decoded in ``read``, not as they arrive, at most ``INFLATE_PIECE_BYTES`` per
  call (a network read that inflates further is handed over in several pieces with the
  same ``arrived_s``, the loop given a turn before each further piece), so a compression
  bomb is inflated only as far as its reader reads, and not past the deadline; a status
  line and headers (1xx responses included) longer than ``MAX_HEAD_BYTES`` fail with
  ``BadResponse``.
* Failures: ``ConnectError`` (refused, unreachable, no such host), ``Disconnected`` (closed or
  reset by the server before the response ended: before the headers ``Server disconnected``
  or the socket error, after them ``BODY_CUT``), ``BadResponse`` (not HTTP/1.x).
  ``Stale``, a ``Disconnected``, is the one that is the client's own race: a *reused*
  connection closed or reset by the server before any byte of the response arrived (the
  server had closed it while idle, as proxies do, and the request crossed its FIN or RST);
  ``Origin.resend(conn, request, deadline)`` writes the request again on a new connection.  A body
  without ``Content-Length`` or chunked framing ends when the server closes the connection.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from time import perf_counter
from typing import cast

import httptools
from yarl import URL

BODY_CUT = "the response body was cut off before its end"
MAX_HEAD_BYTES = 64 * 1024  # status line and headers of one response, 1xx responses included
INFLATE_PIECE_BYTES = 256 * 1024  # the most one ``read`` inflates


class HttpError(Exception):
    """A request that got no complete response."""


class ConnectError(HttpError):
    """No connection could be made."""


class ConnectTimeout(HttpError):
    """No connection within the connect timeout."""


class Disconnected(HttpError):
    """The connection closed (or was reset) before the response ended."""


class Stale(Disconnected):
    """A reused connection ended before any byte of the response: see the module docstring."""


class BadResponse(HttpError):
    """The server's bytes are not an HTTP/1.x response."""


def host_header(url: URL) -> str:
    """``Host`` for ``url``: the host (IPv6 in brackets), ``:port`` when the URL names one."""
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    return host if url.explicit_port is None else f"{host}:{url.explicit_port}"


def _inflater(encoding: str) -> zlib._Decompress | None:
    if encoding in {"gzip", "x-gzip"}:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":  # zlib-wrapped as the RFC says; raw deflate is tried below
        return zlib.decompressobj(zlib.MAX_WBITS)
    return None


class Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time (see the module docstring)."""

    def __init__(self, origin: Origin) -> None:
        self._origin = origin
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._inflate: zlib._Decompress | None = None
        self._inflated = 0  # body bytes inflated so far (0: the raw-deflate retry is open)
        self._head_bytes = 0  # bytes received before the final response's headers ended
        self._body: list[bytes] = []  # what the read being parsed delivered so far
        self._reads: deque[tuple[float, bytes]] = deque()  # (time, body bytes) per read
        self._error: BaseException | None = None
        self._framed = False  # Content-Length or chunked: the body's end is in the bytes
        self._keep_alive = False  # the server allows another request (known at the end)
        self.closed = False
        self.complete = False
        self.n_requests = 0  # written on this connection: more than 1 once it was reused
        self.answered = False  # a byte of the current exchange's response arrived
        self.status = 0  # of the final (non-1xx) response; 0 until its headers arrived
        self.headers: dict[str, str] = {}
        self.arrived_s = 0.0

    # --- used by the client --------------------------------------------------------------

    def arm(self, deadline: float) -> None:
        """Fail the exchange with ``asyncio.TimeoutError`` at ``deadline`` (loop time)."""
        self._timer = self._loop.call_at(deadline, self._expire)

    def write(self, request: bytes) -> None:
        """Start an exchange: write ``request`` (at once, when the socket takes it)."""
        if self._transport is None or self.closed:
            raise Disconnected("Server disconnected")
        self._parser = httptools.HttpResponseParser(self)
        self.status, self.complete = 0, False
        self._framed = self._keep_alive = False
        self._inflate, self.headers = None, {}
        self._inflated = self._head_bytes = 0
        self.n_requests += 1
        self.answered = False
        self._body.clear()
        self._reads.clear()
        self._transport.write(request)

    async def head(self) -> None:
        """Return when the response's status and headers arrived."""
        while not self.head_done:
            await self._wait()

    @property
    def head_done(self) -> bool:
        """True once the final response's status and headers arrived."""
        return self.status != 0

    async def read(self) -> bytes:
        """The body bytes of the oldest network read not yet returned (``arrived_s`` its
        time), decoded (at most ``INFLATE_PIECE_BYTES`` at a time); ``b""`` once the body
        ended."""
        reads = self._reads
        while True:
            while not reads:
                if self.complete:
                    return await self._inflate_rest() if self._inflate is not None else b""
                await self._wait()
            if self._inflate is None:
                self.arrived_s, body = reads.popleft()
                return body
            if isinstance(self._error, asyncio.TimeoutError):  # inflate no more past it
                raise self._error
            arrived_s, raw = reads[0]
            body = await self._inflate_piece(arrived_s, raw)
            if body:
                self.arrived_s = arrived_s
                return body

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def reusable(self) -> bool:
        """True when the response ended cleanly and the connection may carry another."""
        return self.complete and self._keep_alive and self._error is None and not self.closed

    def disarm(self) -> None:
        """Cancel the deadline set by ``arm``."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """Drop the connection; an exchange still waiting fails with ``Disconnected``."""
        self.closed = True
        if self._parser is not None and not self.complete:
            self._fail(Disconnected("the connection was closed by qpsweep"))
        if self._transport is not None:
            self._transport.abort()

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self.complete:  # bytes nobody asked for: not reusable
            self.close()
            return
        now_s = perf_counter()
        head_pending = not self.head_done
        try:
            parser.feed_data(data)
        except httptools.HttpParserCallbackError as err:  # raised in one of the on_* below
            cause = err.__context__
            self._fail(BadResponse(f"the response could not be handled ({cause!r})"))
            self.close()
        except httptools.HttpParserError as err:
            self._fail(BadResponse(f"not an HTTP response ({err})"))
            self.close()
        if head_pending and not self.head_done:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                limit = MAX_HEAD_BYTES // 1024
                self._fail(BadResponse(f"the response headers are longer than {limit} KiB"))
                self.close()
        self._take_body(now_s)

    def connection_lost(self, exc: Exception | None) -> None:
        closed_by_us, self.closed = self.closed, True
        self._origin.forget(self)
        if self._parser is None or self.complete or closed_by_us:
            return
        if self.head_done and not self._framed and exc is None:
            self.on_message_complete()  # a body delimited by the connection's close
            self._take_body(perf_counter())
        elif self.head_done:
            self._fail(Disconnected(BODY_CUT))
        else:
            reason = str(exc) if exc else "Server disconnected"
            stale = self.n_requests > 1 and not self.answered
            self._fail(Stale(reason) if stale else Disconnected(reason))

    # --- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.answered = True

    def on_header(self, name: bytes, value: bytes | None) -> None:
        self.headers[name.decode("latin-1").lower()] = (value or b"").decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the real response follows
            self.headers = {}
            return
        self.status = status
        headers = self.headers
        self._framed = "content-length" in headers or "chunked" in headers.get(
            "transfer-encoding", ""
        )
        self._inflate = _inflater(headers.get("content-encoding", "").strip().lower())
        self._wake()

    def on_body(self, body: bytes) -> None:
        if body:  # as received: ``read`` inflates it
            self._body.append(body)

    def on_message_complete(self) -> None:
        if not self.head_done:  # the end of a 1xx response
            return
        assert self._parser is not None
        self._keep_alive = self._framed and self._parser.should_keep_alive()
        self.complete = True
        self._wake()

    # --- internals -------------------------------------------------------------------------

    async def _inflate_piece(self, arrived_s: float, raw: bytes) -> bytes:
        """Inflate at most ``INFLATE_PIECE_BYTES`` of the oldest read ``raw`` (which arrived
        at ``arrived_s``); what it holds beyond stays first in the queue, and the loop gets a
        turn before it is inflated.  Raises ``BadResponse`` when the bytes do not inflate."""
        inflate = self._inflate
        assert inflate is not None
        try:
            try:
                body = inflate.decompress(raw, INFLATE_PIECE_BYTES)
            except zlib.error:
                if self._inflated or inflate.unused_data:
                    raise
                inflate = self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
                body = inflate.decompress(raw, INFLATE_PIECE_BYTES)
        except zlib.error as err:
            failure = BadResponse(f"the body does not decompress ({err})")
            self._fail(failure)
            self.close()
            raise failure from None
        self._inflated += len(body) or 1
        rest = inflate.unconsumed_tail
        if rest or len(body) == INFLATE_PIECE_BYTES:  # more to inflate from this read
            self._reads[0] = (arrived_s, rest)
            await asyncio.sleep(0)  # others first: one response gets a bounded slice
        else:
            self._reads.popleft()
        return body

    async def _inflate_rest(self) -> bytes:
        """What the inflater still holds once every byte was fed to it (``b""``: none)."""
        assert self._inflate is not None
        body = self._inflate.decompress(b"", INFLATE_PIECE_BYTES)
        if not body:
            return self._inflate.flush()[:INFLATE_PIECE_BYTES]
        await asyncio.sleep(0)
        return body

    def _take_body(self, now_s: float) -> None:
        """The body bytes of the read just parsed become one entry of ``read``'s queue."""
        body = self._body
        if body:
            self._reads.append((now_s, body[0] if len(body) == 1 else b"".join(body)))
            body.clear()
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _expire(self) -> None:
        self._timer = None
        self._fail(asyncio.TimeoutError())
        self.close()


def _close_made(connecting: asyncio.Task[tuple[asyncio.BaseTransport, Connection]]) -> None:
    """A connection attempt given up on: close the connection if it was made all the same."""
    if not connecting.cancelled() and connecting.exception() is None:
        connecting.result()[1].close()


class Origin:
    """Keep-alive connections to one scheme://host:port (see the module docstring)."""

    def __init__(self, url: URL, verify_tls: bool, connect_timeout_s: float) -> None:
        self.url = url
        self._host = url.raw_host or ""
        port = url.port  # yarl gives http's and https' default when none is named
        if port is None:  # ``normalize_endpoint`` lets only http:// and https:// through
            raise ValueError(f"{url}: not an http:// or https:// URL")
        self._port = port
        self._ssl: ssl.SSLContext | None = None
        if url.scheme == "https":
            self._ssl = ssl.create_default_context()
            if not verify_tls:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        self._connect_timeout_s = connect_timeout_s
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()

    def send_idle(self, request: bytes, deadline: float) -> Connection | None:
        """Write ``request`` now on an idle connection (armed with ``deadline``) and return
        it, or return None when none is idle."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.arm(deadline)
                self._write(conn, request)
                return conn
        return None

    async def send(self, request: bytes, deadline: float) -> Connection:
        """Write ``request`` on an idle connection, or on a new one once connected."""
        conn = self.send_idle(request, deadline)
        if conn is None:
            conn = await self._connect(deadline)
            self._write(conn, request)
        return conn

    async def resend(self, stale: Connection, request: bytes, deadline: float) -> Connection:
        """Release ``stale`` (whose exchange failed with ``Stale``) and write ``request`` on
        a new connection (armed with ``deadline``), never an idle one: it may be as stale."""
        self.release(stale)
        conn = await self._connect(deadline)
        self._write(conn, request)
        return conn

    def _write(self, conn: Connection, request: bytes) -> None:
        try:
            conn.write(request)
        except BaseException:
            self.release(conn)
            raise

    async def _connect(self, deadline: float) -> Connection:
        """A new connection, armed with ``deadline``."""
        loop = asyncio.get_running_loop()
        timeout_s = min(self._connect_timeout_s, deadline - loop.time())
        # not asyncio.wait_for: before Python 3.12 it returns the connection when it was made
        # in the very turn the request got cancelled, and the cancellation is lost
        connecting = loop.create_task(
            loop.create_connection(lambda: Connection(self), self._host, self._port, ssl=self._ssl)
        )
        done: set[asyncio.Task[tuple[asyncio.BaseTransport, Connection]]] = set()
        try:
            done, _ = await asyncio.wait({connecting}, timeout=max(timeout_s, 0.0))
        finally:
            if not done:  # timed out or cancelled: give up, and close what is made anyway
                connecting.cancel()
                connecting.add_done_callback(_close_made)
        if not done:
            if timeout_s < self._connect_timeout_s:
                raise asyncio.TimeoutError  # the request's own deadline came first
            raise ConnectTimeout(f"no connection within {self._connect_timeout_s:g} s")
        try:
            _, conn = connecting.result()
        except OSError as err:
            reason = err.strerror or str(err) or type(err).__name__
            raise ConnectError(f"cannot connect to {host_header(self.url)} ({reason})") from None
        self._open.add(conn)
        conn.arm(deadline)
        return conn

    def release(self, conn: Connection) -> None:
        """Keep ``conn`` for the next request if it is reusable; close it otherwise."""
        conn.disarm()
        if conn.reusable():
            self._idle.append(conn)
        else:
            conn.close()
            self._open.discard(conn)

    def forget(self, conn: Connection) -> None:
        """``conn`` closed: it is no longer open (an idle one is skipped by ``open``)."""
        self._open.discard(conn)

    def close(self) -> None:
        """Close every connection, idle or not."""
        for conn in list(self._open) + self._idle:
            conn.close()
        self._open.clear()
        self._idle.clear()
