"""One streamed chat completion -> one ``RequestRecord``.

Request shape: ``{"model", "messages", "max_tokens", "temperature", "stream": true,
"stream_options": {"include_usage": true}}``; with ``api="completions"`` (``--api
completions``, ``/v1/completions``) ``"prompt"`` (``Prompt.as_text``) instead of
``"messages"``.  A server that rejects ``stream_options`` with a 400/422 whose message names
it gets the same request once more without it (the request keeps its first send time); when
that retry is accepted the run stops sending ``stream_options``
(``RequestShape.include_usage`` becomes False).

Measured per request (seconds since the level start, see ``record``): the send time, the
arrival of every chunk that carries generated text (``delta.content``,
``delta.reasoning_content``/``reasoning``, ``delta.tool_calls``, or ``text`` for
completions), and the end.
Output tokens come from the server's ``usage.completion_tokens`` when it sends usage,
otherwise one token per content chunk; ``token_counted_by`` says which.  Reasoning chunks
count as content (TTFT is the first chunk of either kind); the first of each kind is timed
on its own (``first_reasoning_s``, ``first_visible_s``), and ``usage``'s
``completion_tokens_details.reasoning_tokens`` and ``prompt_tokens_details.cached_tokens``
are kept when the server sends them.

Hot path: most events are plain content chunks, and only their arrival time matters; those
are recognized without decoding their JSON (``qpsweep.http.plain_chunk``, which says what is taken
for one).  Every other event is decoded in full.

Outcome classification (``error_kind``; ``None`` is success):

* HTTP status: 503 -> ``http_503``, 429 -> ``http_429``, other 5xx -> ``http_5xx``,
  other 4xx -> ``http_4xx``.  Redirects: a 307/308 to the same origin is followed (at most
  ``MAX_REDIRECTS`` hops, the POST and its body kept); any other redirect (another origin,
  where the Authorization header must not go, or a 301/302/303 that would turn the POST into a
  GET) is not followed and is ``protocol``, with the reason;
* socket connect timeout -> ``timeout_connect``; the ``--timeout`` deadline before the first
  content chunk -> ``timeout_ttft``, after it -> ``timeout_total``;
* refused, reset or broken connections -> ``connection``;
* invalid JSON in a chunk (two objects on one ``data:`` line included), an ``error`` object
  or an ``event: error`` in the stream, a 200 body that is not SSE, a non-streamed 200 body
  over ``MAX_BODY_BYTES`` (once decompressed: it is inflated only that far), response
  headers over ``qpsweep.http.http1.MAX_HEAD_BYTES``, a
  ``usage`` token count outside 0..2**63-1 (which no record can hold), or a stream that ends
  with neither ``[DONE]`` nor a ``finish_reason`` -> ``protocol``;
* a complete stream without any content -> ``empty``.

Stale connections: a try whose request was written on a reused keep-alive connection that the
server closed or reset before any byte of the response (``qpsweep.http.http1.Stale``: the
server closed it while idle, and the request crossed the close) is written once more on a new
connection, within the same deadline, as browsers and HTTP libraries do.  That is no failure
and no ``--retries`` try: the record counts it in ``resent`` and keeps the first send time.
A connection closed before any byte of the response *without* having been reused is
``connection``, as is a second stale close within one try.

Retries (``ClientSettings.retries``, off by default): a try that ends in ``RETRYABLE`` (a
refused or broken connection, a connect timeout, HTTP 503) before any content arrived is sent
again after ``backoff_s(k) = min(RETRY_MAX_BACKOFF_S, RETRY_BASE_S * 2 ** (k - 1))`` for the
k-th retry, at most ``retries`` times.  The record keeps the first try's send time, failure
kind and end (see ``record``); the last try's outcome is the request's outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from qpsweep._version import __version__
from qpsweep.config.scenario import Scenario, Target
from qpsweep.config.secrets import Masker, secrets_of, utf8_safe
from qpsweep.datasets.prompts import Prompt
from qpsweep.http.http1 import (
    BadResponse,
    Connection,
    ConnectTimeout,
    HttpError,
    Origin,
    Stale,
    host_header,
)
from qpsweep.http.plain_chunk import REASONING, VISIBLE, PlainChunks, plain_kind
from qpsweep.http.sse import SseParser
from qpsweep.records.record import RequestRecord

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
_ERROR_BODY_BYTES = 8192
MAX_BODY_BYTES = 16 * 2**20  # a non-streamed 200 body, decompressed or not
MAX_COUNT = 2**63 - 1  # a record's token counts are int64
_MESSAGE_CHARS = 200
RETRYABLE = frozenset({"connection", "timeout_connect", "http_503"})
RETRY_BASE_S = 0.5
RETRY_MAX_BACKOFF_S = 8.0
_decode_json = json.JSONDecoder().decode  # str -> object: json.loads without its bytes sniffing


def backoff_s(retry: int) -> float:
    """The pause before the ``retry``-th retry (1-based): 0.5, 1, 2, 4, 8, 8, ... seconds."""
    return min(RETRY_MAX_BACKOFF_S, RETRY_BASE_S * 2.0 ** (retry - 1))


def request_deadline_s(settings: ClientSettings) -> float:
    """The longest one request can take: each of its ``retries + 1`` tries up to
    ``timeout_s``, plus the back-off pauses between them."""
    pauses_s = sum(backoff_s(k) for k in range(1, settings.retries + 1))
    return (settings.retries + 1) * settings.timeout_s + pauses_s


@dataclass(frozen=True)
class ClientSettings:
    """Everything the HTTP client needs; ``secrets`` (and every piece of 8 or more characters
    of one) are masked in every message."""

    url: str
    model: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 300.0
    connect_timeout_s: float = 30.0
    verify_tls: bool = True
    max_tokens: int = 512
    temperature: float = 0.7
    retries: int = 0
    secrets: tuple[str, ...] = field(default=(), repr=False)
    api: str = "chat"  # "chat" (messages) or "completions" (a prompt string)


class RequestShape:
    """Run-wide facts learned from the server (mutable, shared by all requests)."""

    def __init__(self) -> None:
        self.include_usage = True


@dataclass(slots=True)
class Trace:
    """A request in progress; ``finish`` turns it into the immutable record."""

    level: int
    level_qps: float
    seq: int
    prompt_id: int
    scheduled_s: float
    sent_s: float = 0.0
    status: int | None = None
    chunk_s: list[float] = field(default_factory=list)
    usage_prompt: int | None = None
    usage_completion: int | None = None
    end_s: float | None = None  # arrival of [DONE]; None: the end is when fetch returns
    attempts: int = 1
    first_error_kind: str | None = None
    first_done_s: float | None = None
    resent: int = 0
    text: list[str] | None = None  # the answer's content pieces, when asked for (sessions)
    session: int | None = None  # a session's turn: the record's session keys
    turn: int | None = None
    history_tokens: int | None = None
    first_reasoning_s: float | None = None
    first_visible_s: float | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None

    def restart(self, sent_s: float) -> None:
        """Forget the first attempt (used by the one retry without ``stream_options``)."""
        self.sent_s = sent_s
        self._clear()

    def retry(self, failed_kind: str, failed_s: float) -> None:
        """Start another try of the same request; the first try's failure is kept."""
        if self.attempts == 1:
            self.first_error_kind, self.first_done_s = failed_kind, failed_s
        self.attempts += 1
        self._clear()

    def _clear(self) -> None:
        self.status, self.chunk_s = None, []
        self.usage_prompt = self.usage_completion = self.end_s = None
        if self.text is not None:
            self.text = []
        self.first_reasoning_s = self.first_visible_s = None
        self.reasoning_tokens = self.cached_tokens = None

    def mark(self, kind: int, now_s: float) -> None:
        """Note a chunk of ``kind`` (``VISIBLE``/``REASONING``) at ``now_s`` if it is the
        first of its kind (``chunk_s`` is the caller's)."""
        if kind == REASONING:
            if self.first_reasoning_s is None:
                self.first_reasoning_s = now_s
        elif self.first_visible_s is None:
            self.first_visible_s = now_s

    def finish(self, done_s: float, error_kind: str | None, error: str | None) -> RequestRecord:
        """The record of this request, ending at ``done_s`` with the given outcome."""
        by_usage = self.usage_completion is not None
        n_tokens = self.usage_completion if self.usage_completion is not None else len(self.chunk_s)
        return RequestRecord(
            level=self.level,
            level_qps=self.level_qps,
            seq=self.seq,
            prompt_id=self.prompt_id,
            scheduled_s=self.scheduled_s,
            sent_s=self.sent_s,
            done_s=done_s if self.end_s is None else self.end_s,
            first_token_s=self.chunk_s[0] if self.chunk_s else None,
            status=self.status,
            error_kind=error_kind,
            error=error,
            input_tokens=self.usage_prompt,
            output_tokens=n_tokens,
            token_counted_by=("usage" if by_usage else "chunks") if self.chunk_s else None,
            chunk_s=tuple(self.chunk_s),
            attempts=self.attempts,
            first_error_kind=self.first_error_kind,
            first_done_s=self.first_done_s,
            resent=self.resent,
            session=self.session,
            turn=self.turn,
            history_tokens=self.history_tokens,
            first_reasoning_s=self.first_reasoning_s,
            first_visible_s=None if self.first_reasoning_s is None else self.first_visible_s,
            reasoning_tokens=self.reasoning_tokens,
            cached_tokens=self.cached_tokens,
        )


Outcome = tuple[str | None, str | None]
_First = tuple[float, Connection | None]  # a try's deadline, and the request's connection


def settings_for(target: Target, scenario: Scenario) -> ClientSettings:
    """HTTP settings for a target: its headers plus ``Authorization: Bearer`` for the key;
    the key, secret-looking header values (and the token of ``Bearer TOKEN``) and the URL's
    password become ``secrets`` to mask in messages (``qpsweep.config.secrets.secrets_of``)."""
    headers = dict(target.headers)
    if target.api_key and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = f"Bearer {target.api_key}"
    secrets = secrets_of(target.api_key, headers.items(), target.url)
    return ClientSettings(
        url=target.url,
        model=target.model,
        headers=headers,
        timeout_s=scenario.timeout_s,
        connect_timeout_s=min(scenario.connect_timeout_s, scenario.timeout_s),
        verify_tls=target.verify_tls,
        max_tokens=scenario.max_tokens,
        temperature=scenario.temperature,
        retries=scenario.retries,
        secrets=secrets,
        api=target.api,
    )


def open_session(settings: ClientSettings) -> aiohttp.ClientSession:
    """A session for the side requests (health, models, clock, metrics): the completions
    themselves go through ``Sender``'s own connections.  Its pool never queues requests."""
    connector = aiohttp.TCPConnector(limit=0, ssl=settings.verify_tls)
    timeout = aiohttp.ClientTimeout(
        total=settings.timeout_s, sock_connect=settings.connect_timeout_s
    )
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)


class Sender:
    """Sends prompts to one endpoint and measures them, on its own keep-alive connections
    (``qpsweep.http.http1``; ``close()`` closes them).  Requests are encoded once per prompt."""

    def __init__(self, settings: ClientSettings) -> None:
        self._settings = settings
        self._mask = Masker(settings.secrets).mask
        self.shape = RequestShape()
        self._url = URL(settings.url)
        self._origin = Origin(self._url, settings.verify_tls, settings.connect_timeout_s)
        headers = {
            "content-type": ("Content-Type", "application/json"),
            "accept": ("Accept", "text/event-stream"),
            "accept-encoding": ("Accept-Encoding", "gzip, deflate"),
            "user-agent": ("User-Agent", f"qpsweep/{__version__}"),
        }
        for name, value in settings.headers.items():  # the user's win, whatever their case
            headers[name.lower()] = (name, value)
        headers.pop("host", None)
        headers.pop("content-length", None)
        self._header_lines = "".join(f"{k}: {v}\r\n" for k, v in headers.values())
        self._bodies: dict[tuple[int, bool], bytes] = {}
        self._requests: dict[tuple[int, bool], bytes] = {}
        self._one_off: tuple[Prompt, bool, bytes] | None = None  # the last uncached request

    def close(self) -> None:
        """Close the connections (a request still in flight fails)."""
        self._origin.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def body(self, prompt: Prompt, include_usage: bool) -> bytes:
        """The JSON request body for ``prompt`` (cached, unless ``prompt.id < 0``: a one-off
        prompt such as a session's turn, whose history changes from turn to turn)."""
        key = (prompt.id, include_usage)
        cached = self._bodies.get(key) if prompt.id >= 0 else None
        if cached is None:
            payload: dict[str, Any] = {"model": self._settings.model}
            if self._settings.api == "completions":
                payload["prompt"] = prompt.as_text()
            else:
                payload["messages"] = prompt.as_messages()
            payload |= {
                "max_tokens": prompt.max_tokens or self._settings.max_tokens,
                "temperature": self._settings.temperature,
                "stream": True,
            }
            if include_usage:
                payload["stream_options"] = {"include_usage": True}
            if prompt.id < 0:  # encoded once per request: msgspec takes a fifth of the time
                return msgspec.json.encode(payload)
            cached = self._bodies[key] = json.dumps(payload).encode()
        return cached

    def request(self, prompt: Prompt, include_usage: bool, url: URL | None = None) -> bytes:
        """The whole HTTP request (head and body) for ``prompt`` to ``url`` (default: the
        endpoint; cached for it, as ``body`` is; of the uncached, the last one is kept, for
        ``fetch`` and the first try of the same request)."""
        key = (prompt.id, include_usage)
        cached = self._requests.get(key) if url is None and prompt.id >= 0 else None
        last = self._one_off
        if url is None and last is not None and last[0] is prompt and last[1] == include_usage:
            return last[2]
        if cached is None:
            body = self.body(prompt, include_usage)
            where = self._url if url is None else url
            head = (
                f"POST {where.raw_path_qs} HTTP/1.1\r\nHost: {host_header(where)}\r\n"
                f"{self._header_lines}Content-Length: {len(body)}\r\n\r\n"
            )
            cached = head.encode() + body
            if url is None and prompt.id >= 0:
                self._requests[key] = cached
            elif url is None:
                self._one_off = (prompt, include_usage, cached)
        return cached

    def fetch(self, trace: Trace, prompt: Prompt, t0: float) -> Coroutine[Any, Any, RequestRecord]:
        """Send ``prompt`` now; the coroutine returned reads the response and returns the
        record (times relative to ``t0``).  When a kept-alive connection is idle the request
        is written before ``fetch`` returns, so a caller on the loop's clock (the schedule)
        sends at its instant rather than a loop turn later; ``sent_s`` is that moment."""
        usage = self.shape.include_usage
        request = self.request(prompt, usage)
        deadline = asyncio.get_running_loop().time() + self._settings.timeout_s
        trace.sent_s = perf_counter() - t0
        try:
            conn = self._origin.send_idle(request, deadline)
        except (HttpError, OSError):  # that connection is dropped; the coroutine makes one
            conn = None
        return self._fetch(trace, prompt, t0, usage, (deadline, conn))

    async def _fetch(
        self, trace: Trace, prompt: Prompt, t0: float, usage: bool, first: _First
    ) -> RequestRecord:
        kind, message = await self._attempt(trace, prompt, t0, usage, first)
        if usage and trace.status in (400, 422) and _refuses_usage(message):
            trace.restart(trace.sent_s)  # the request's send stays its first: no send lag
            kind, message = await self._attempt(trace, prompt, t0, False)
            if trace.status not in (400, 422):
                self.shape.include_usage = False
        while kind in RETRYABLE and not trace.chunk_s and trace.attempts <= self._settings.retries:
            trace.retry(kind, perf_counter() - t0)
            await asyncio.sleep(backoff_s(trace.attempts - 1))
            kind, message = await self._attempt(trace, prompt, t0, self.shape.include_usage)
        if message is not None:  # only failures carry a message: masked, then cut
            message = utf8_safe(self._mask(message[: 2 * _MESSAGE_CHARS])[:_MESSAGE_CHARS])
        return trace.finish(perf_counter() - t0, kind, message)

    async def _attempt(
        self, trace: Trace, prompt: Prompt, t0: float, usage: bool, first: _First | None = None
    ) -> Outcome:
        """One try: the request, its redirects (all within one ``timeout_s``), its response.
        ``first`` is the try's deadline and the connection its request was already written
        on by ``fetch`` (None: not written yet)."""
        origin, url = self._origin, self._url
        request = self.request(prompt, usage)
        if first is None:
            first = (asyncio.get_running_loop().time() + self._settings.timeout_s, None)
        deadline, written = first
        resent = False  # once per try: a fresh connection is not stale
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                conn = written if written is not None else await origin.send(request, deadline)
                written = None
                try:
                    try:
                        await conn.head()
                    except Stale:  # the client's race with the server's idle close
                        if resent:
                            raise
                        resent, trace.resent = True, trace.resent + 1
                        conn = await origin.resend(conn, request, deadline)
                        await conn.head()
                    status = trace.status = conn.status
                    if status in _REDIRECTS:
                        url, refusal = _redirect(status, conn.headers.get("location"), url)
                        if refusal is not None:
                            return "protocol", refusal
                        request = self.request(prompt, usage, url)
                        continue
                    if status >= 300:
                        body = await _read_body(conn, _ERROR_BODY_BYTES)
                        return _http_failure(status, body, conn.headers.get("retry-after"))
                    if "json" in conn.headers.get("content-type", ""):
                        body = await _read_body(conn, MAX_BODY_BYTES + 1)
                        if len(body) > MAX_BODY_BYTES:
                            return "protocol", _too_long(conn)
                        return _read_json(trace, body, perf_counter() - t0)
                    return await _read_sse(conn, trace, t0)
                finally:
                    origin.release(conn)
            return "protocol", f"more than {MAX_REDIRECTS} redirects"
        except ConnectTimeout:
            return "timeout_connect", f"no connection within {self._settings.connect_timeout_s:g} s"
        except asyncio.TimeoutError:
            limit = self._settings.timeout_s
            if trace.chunk_s:
                return "timeout_total", f"not finished within {limit:g} s"
            return "timeout_ttft", f"no first token within {limit:g} s"
        except BadResponse as err:
            return "protocol", str(err)
        except (HttpError, OSError) as err:
            return "connection", _describe(err, len(trace.chunk_s))


def _redirect(status: int, where: str | None, url: URL) -> tuple[URL, str | None]:
    """Where a 3xx response to ``url`` points (its ``Location``), or why it is not followed.
    Only 307/308 (which keep the POST and its body) to the same origin (scheme, host, port)
    are followed: headers, Authorization included, are never sent to another host."""
    if not where:
        return url, f"HTTP {status} redirect without a Location header"
    target = url.join(URL(where))
    if (target.scheme, target.host, target.port) != (url.scheme, url.host, url.port):
        return target, (
            f"HTTP {status} redirect to another origin not followed "
            f"({target.scheme}://{target.host}:{target.port}): credentials stay with --endpoint"
        )
    if status not in (307, 308):
        return target, (
            f"HTTP {status} redirect to {target.path} not followed: it would turn the POST "
            "into a GET; point --endpoint at the new path"
        )
    return target, None


def _describe(err: BaseException, n_chunks: int) -> str:
    text = str(err) or type(err).__name__
    if "Too many open files" in text:
        text = f"qpsweep ran out of file descriptors (raise `ulimit -n`): {text}"
    return f"{text} (after {n_chunks} content chunks)" if n_chunks else text


async def _read_body(conn: Connection, max_bytes: float = math.inf) -> bytes:
    """The body, or its first ``max_bytes`` or so (an error body: only its message is kept).
    A body longer than ``max_bytes`` is returned as ``max_bytes`` bytes (no copy of it all)."""
    pieces, n_bytes = [], 0
    while n_bytes < max_bytes and (piece := await conn.read()):
        pieces.append(piece)
        n_bytes += len(piece)
    if n_bytes > max_bytes:
        pieces[-1] = pieces[-1][: len(pieces[-1]) - (n_bytes - int(max_bytes))]
    return b"".join(pieces)


def _too_long(conn: Connection) -> str:
    """Why a non-streamed body over ``MAX_BODY_BYTES`` was not read to its end."""
    encoding = conn.headers.get("content-encoding", "").strip()
    how = f" once decompressed ({encoding})" if encoding else ""
    return f"the 200 response body is larger than {MAX_BODY_BYTES // 2**20} MiB{how}"


def _refuses_usage(message: str | None) -> bool:
    """Whether a 400/422's message is about ``stream_options`` (``include_usage``): only
    then is the request worth sending again without it.  Any other 400 (a prompt longer than
    the context, say) would only be refused again, a request the schedule never made."""
    text = (message or "").lower()
    return "stream_options" in text or "include_usage" in text


def _error_text(body: bytes) -> str:
    """The most useful short message of an error body (OpenAI ``error.message`` if any)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict):
            inner = inner.get("message") or inner.get("detail") or inner
        return str(inner)
    return " ".join(body.decode("utf-8", "replace").split())


def _http_failure(status: int, body: bytes, retry_after: str | None = None) -> Outcome:
    """The kind of an HTTP error status and its message (with the server's ``Retry-After``
    hint, which an open-loop generator records but does not obey)."""
    text = _error_text(body)
    message = f"HTTP {status}: {text}" if text else f"HTTP {status}"
    if retry_after:
        message += f" (Retry-After: {retry_after[:40]})"
    if status == 503:
        return "http_503", message
    if status == 429:
        return "http_429", message
    if status >= 500:
        return "http_5xx", message
    if status >= 400:
        return "http_4xx", message
    return "protocol", f"redirect not followed: {message}"


def _read_json(trace: Trace, body: bytes, now_s: float) -> Outcome:
    """A non-streamed completion: first token and end coincide."""
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        message = choice.get("message") or {}
        text = message.get("content") or choice.get("text")
        reasoning = message.get("reasoning_content") or message.get("reasoning")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return "protocol", "200 response is neither SSE nor a completion: " + _error_text(body)
    failure = _take_usage(trace, data)
    if failure is not None:
        return failure
    if not text and not reasoning:
        return "empty", "completion has no content"
    if trace.text is not None and isinstance(text, str):
        trace.text.append(text)
    trace.chunk_s.append(now_s)
    if reasoning:
        trace.mark(REASONING, now_s)
    if text:
        trace.mark(VISIBLE, now_s)
    return None, None


def _take_usage(trace: Trace, data: dict[str, Any]) -> Outcome | None:
    """Keep the token counts of ``data["usage"]``; a ``protocol`` failure (quoting the
    number) when one is an integer no record can hold: not within 0..``MAX_COUNT`` (a
    server's unsigned counter that went below zero reads 18446744073709551615)."""
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    completion, prompt = usage.get("completion_tokens"), usage.get("prompt_tokens")
    for name, value in (("completion_tokens", completion), ("prompt_tokens", prompt)):
        if isinstance(value, int) and not 0 <= value <= MAX_COUNT:
            return "protocol", f"usage.{name} {value} is not a token count (0 to 2**63-1)"
    if isinstance(completion, int):
        trace.usage_completion = completion
    if isinstance(prompt, int):
        trace.usage_prompt = prompt
    if "completion_tokens_details" in usage or "prompt_tokens_details" in usage:
        return _take_details(trace, usage)
    return None


def _take_details(trace: Trace, usage: dict[str, Any]) -> Outcome | None:
    """``_take_usage`` for ``completion_tokens_details.reasoning_tokens`` and
    ``prompt_tokens_details.cached_tokens``."""
    reasoning = _detail(usage, "completion_tokens_details", "reasoning_tokens")
    cached = _detail(usage, "prompt_tokens_details", "cached_tokens")
    for name, value in (
        ("completion_tokens_details.reasoning_tokens", reasoning),
        ("prompt_tokens_details.cached_tokens", cached),
    ):
        if value is not None and not 0 <= value <= MAX_COUNT:
            return "protocol", f"usage.{name} {value} is not a token count (0 to 2**63-1)"
    if reasoning is not None:
        trace.reasoning_tokens = reasoning
    if cached is not None:
        trace.cached_tokens = cached
    return None


def _detail(usage: dict[str, Any], group: str, name: str) -> Any:
    """``usage[group][name]`` when it is an int (not a bool), else ``None``."""
    details = usage.get(group)
    value = details.get(name) if isinstance(details, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _content_kinds(choice: Any) -> tuple[bool, bool]:
    """``(visible, reasoning)``: whether a decoded choice carries visible text (content, tool
    calls, completions' ``text``) and reasoning text (``reasoning_content``/``reasoning``)."""
    if not isinstance(choice, dict):
        return False, False
    delta = choice.get("delta")
    if isinstance(delta, dict):
        visible = bool(delta.get("content") or delta.get("tool_calls") or choice.get("text"))
        return visible, bool(delta.get("reasoning_content") or delta.get("reasoning"))
    return bool(choice.get("text")), False


async def _read_sse(conn: Connection, trace: Trace, t0: float) -> Outcome:
    """The stream's events, each timed by the network read that brought it."""
    parser = SseParser()
    plain = PlainChunks()
    finished = False
    while piece := await conn.read():
        now_s = conn.arrived_s - t0
        try:
            payloads = parser.feed(piece)
        except ValueError as err:
            return "protocol", str(err)
        if trace.text is not None:
            _collect_text(trace.text, payloads)
        failure, fin, done = _take_events(trace, payloads, now_s, plain)
        if failure is not None:
            return failure
        finished = finished or fin
        if done:
            trace.end_s = now_s
            await _read_rest(conn)
            return _end(trace, parser, done=True)
    try:
        payloads = parser.close()
    except ValueError as err:  # an error event at the very end
        return "protocol", str(err)
    if trace.text is not None:
        _collect_text(trace.text, payloads)
    failure, fin, done = _take_events(trace, payloads, perf_counter() - t0, plain)
    if failure is not None:  # a last event without its blank line
        return failure
    return _end(trace, parser, done=done or finished or fin)


def _take_events(
    trace: Trace, payloads: list[bytes], now_s: float, plain: PlainChunks
) -> tuple[Outcome | None, bool, bool]:
    """The events of one network piece, in order, all at ``now_s``: (a failure or None,
    finish_reason seen, ``[DONE]`` seen); events after a failure or ``[DONE]`` are left.
    Runs of content chunks that fit ``plain``'s template are counted in one go
    (``PlainChunks.leading``), every other event goes through ``_take_event``."""
    chunk_s = trace.chunk_s
    finished = False
    k, n = 0, len(payloads)
    while k < n:
        run = plain.leading(payloads, k)
        if run:
            chunk_s.extend([now_s] * run)
            k += run
            continue
        payload = payloads[k]
        k += 1
        if payload == b"[DONE]":
            return None, finished, True
        failure, fin = _take_event(trace, payload, now_s, plain.learn)  # it did not fit
        if failure is not None:
            return failure, finished, False
        finished = finished or fin
    return None, finished, False


def _take_event(
    trace: Trace, payload: bytes, now_s: float, plain: Callable[[bytes], int] = plain_kind
) -> tuple[Outcome | None, bool]:
    """Record one event's content time and usage; (a failure or None, finish_reason seen).
    ``plain``: ``plain_kind`` or a response's ``PlainChunks.learn`` (the kind of a plain
    chunk, 0 for any other event)."""
    kind = plain(payload)
    if kind:
        trace.chunk_s.append(now_s)
        if kind == REASONING:  # Trace.mark, inlined: this runs for most events of some servers
            if trace.first_reasoning_s is None:
                trace.first_reasoning_s = now_s
        elif trace.first_visible_s is None:
            trace.first_visible_s = now_s
        return None, False
    try:  # an SSE stream is UTF-8: no encoding to detect
        data = _decode_json(payload.decode())
    except ValueError:  # UnicodeDecodeError included
        return ("protocol", f"invalid JSON in stream: {payload[:80]!r}"), False
    if not isinstance(data, dict):
        return ("protocol", f"stream chunk is not an object: {payload[:80]!r}"), False
    if "error" in data:
        return ("protocol", "error in stream: " + _error_text(payload)), False
    finished = False
    for choice in data.get("choices") or ():
        visible, reasoning = _content_kinds(choice)
        if visible or reasoning:
            trace.chunk_s.append(now_s)
            if reasoning:
                trace.mark(REASONING, now_s)
            if visible:
                trace.mark(VISIBLE, now_s)
        if isinstance(choice, dict) and choice.get("finish_reason"):
            finished = True
    if "usage" in data:
        return _take_usage(trace, data), finished
    return None, finished


_CONTENT = b'"content":"'


def _collect_text(pieces: list[str], payloads: list[bytes]) -> None:
    """Append the answer text (``delta.content``, or ``text``) of each event to ``pieces``
    (only when ``Trace.text`` asks for it: a session's history holds the real answer).  An
    event that is not such JSON adds nothing; ``_take_events`` judges it.  A plain chunk
    (``qpsweep.http.plain_chunk``) whose text has no escape is cut out without decoding."""
    for payload in payloads:
        if payload == b"[DONE]":
            continue
        at = payload.find(_CONTENT)
        if at >= 0 and plain_kind(payload) == VISIBLE:
            start = at + len(_CONTENT)
            end = payload.find(b'"', start)
            if end > start and payload.find(b"\\", start, end) < 0:
                pieces.append(payload[start:end].decode("utf-8", "replace"))
                continue
        try:
            data = _decode_json(payload.decode())
            choice = data["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        delta = choice.get("delta") if isinstance(choice, dict) else None
        piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if isinstance(piece, str):
            pieces.append(piece)


async def _read_rest(conn: Connection) -> None:
    """Read what follows ``[DONE]`` (normally only the end of the chunked body) so that the
    connection goes back to the pool instead of being closed; gives up after 50 ms."""
    if conn.complete:
        return
    with contextlib.suppress(asyncio.TimeoutError, HttpError):
        await asyncio.wait_for(_drop_body(conn), 0.05)


async def _drop_body(conn: Connection) -> None:
    """Read the body to its end, keeping nothing."""
    while await conn.read():
        pass


def _end(trace: Trace, parser: SseParser, done: bool) -> Outcome:
    if parser.bytes_seen and not trace.chunk_s and parser.other_lines and not done:
        return "protocol", "200 response is not an SSE stream"
    if not done:
        if trace.chunk_s:
            return "protocol", f"stream ended without [DONE] after {len(trace.chunk_s)} chunks"
        return "empty", "stream ended without content or [DONE]"
    if not trace.chunk_s:
        return "empty", "stream finished without any content"
    return None, None
