"""Can this endpoint serve a sweep?  ``qpsweep check`` and the probe before every sweep.

``run_probe(settings)`` makes three checks, in order, and returns one ``Check`` for each:

1. ``health``: ``GET {origin}/health``.  200 passes; 404/405 (no such route, as on most hosted
   APIs) is ``skip``; any other status is ``warn``.  A connection that cannot be made at all
   *fails* and ends the probe: nothing else can work.
2. ``models``: ``GET {base}/models`` (``base`` = the URL without ``/chat/completions`` or,
   for the completions API, ``/completions``).
   It passes when the model is listed.  When the list lacks it, the stream check still runs:
   if the server answers for the name anyway (an alias, as Ollama's ``llama3.1`` for
   ``llama3.1:latest``) this is ``warn``, otherwise it *fails*, giving the names served.
   401/403 *fail* (the key was refused) and end the probe; 404/405 is ``skip``; anything else
   is ``warn``.  Without a model name, the first model listed is used.
3. ``stream``: one streamed completion of ``PROBE_MAX_TOKENS`` tokens through the sweep's
   own client (same headers, timeout, API and request shape: a chat completion, or with
   ``--api completions`` a completion of ``PROBE_PROMPT``'s text).  It passes with status 200,
   at least one content chunk (reasoning counts: a reasoning model may spend all of its tokens
   thinking) and a proper end; it reports TTFT, tokens, whether the server sent ``usage``,
   and the reasoning it saw.  Any failure kind of the sweep (``http_503``, ``timeout_ttft``,
   ``protocol``, ``empty``...) *fails* it.

The probe passes when no check failed (``ProbeResult.ok``).  Messages are scrubbed of the
settings' secrets like every other message of the client.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from qpsweep.config.scenario import CHAT_PATH, COMPLETIONS_PATH
from qpsweep.config.secrets import Masker, utf8_safe
from qpsweep.datasets.prompts import Prompt
from qpsweep.http.client import ClientSettings, Sender, Trace, open_session
from qpsweep.records.record import RequestRecord

PROBE_MAX_TOKENS = 16
_PROBE_TEXT = "Count from one to twenty, in words."
PROBE_PROMPT = Prompt(-1, (("user", _PROBE_TEXT),), PROBE_MAX_TOKENS, text=_PROBE_TEXT)
SIDE_TIMEOUT_S = 10.0  # health and models: short, they are cheap on every server


@dataclass(frozen=True)
class Check:
    """One check: ``status`` is ``pass``, ``fail``, ``warn`` or ``skip``."""

    name: str
    status: str
    detail: str

    def line(self) -> str:
        """``PASS  stream   200, TTFT 23 ms, ...``"""
        return f"{self.status.upper():<5} {self.name:<7} {self.detail}"


@dataclass(frozen=True)
class ProbeResult:
    """The checks made, and the model the stream check used (``None`` if it did not run)."""

    checks: tuple[Check, ...]
    model: str | None
    served_models: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(c.status != "fail" for c in self.checks)

    @property
    def first_failure(self) -> Check | None:
        """The first failed check, if any."""
        return next((c for c in self.checks if c.status == "fail"), None)

    def as_json(self) -> dict[str, Any]:
        """For ``metadata.json``: ok, the model and each check."""
        return {
            "ok": self.ok,
            "model": self.model,
            "checks": [
                {"name": c.name, "status": c.status, "detail": c.detail} for c in self.checks
            ],
        }


def probe_urls(chat_url: str) -> tuple[str, str]:
    """``(health_url, models_url)`` of a chat-completions (or completions) URL:
    ``{origin}/health`` and the URL's path without ``/chat/completions`` (``/completions``)
    plus ``/models`` (query kept)."""
    parts = urlsplit(chat_url)
    path = parts.path
    base = path.removesuffix(CHAT_PATH if path.endswith(CHAT_PATH) else COMPLETIONS_PATH)
    health = urlunsplit((parts.scheme, parts.netloc, "/health", "", ""))
    return health, urlunsplit((parts.scheme, parts.netloc, base + "/models", parts.query, ""))


def _path(url: str) -> str:
    return urlsplit(url).path


def _ms(seconds: float) -> str:
    return f"{1000.0 * seconds:.0f} ms"


async def _get(session: aiohttp.ClientSession, url: str, settings: ClientSettings) -> Any:
    timeout = aiohttp.ClientTimeout(total=min(SIDE_TIMEOUT_S, settings.timeout_s))
    headers = {"Accept": "application/json", **settings.headers}
    async with session.get(url, headers=headers, timeout=timeout, allow_redirects=False) as resp:
        return resp.status, await resp.content.read(65536)


def _unreachable(url: str, err: BaseException) -> str:
    """``cannot connect to HOST:PORT (Connection refused)``, or the timeout."""
    parts = urlsplit(url)
    if isinstance(err, asyncio.TimeoutError):
        return f"no answer from {parts.netloc} within {SIDE_TIMEOUT_S:g} s"
    cause = err.os_error if isinstance(err, aiohttp.ClientConnectorError) else err
    code, text = getattr(cause, "errno", None), getattr(cause, "strerror", None)
    if isinstance(code, int) and code > 0:
        text = os.strerror(code)  # not aiohttp's "Connect call failed (...)"
    reason = text or str(err) or type(err).__name__
    return f"cannot connect to {parts.netloc} ({reason})"


async def _health(session: aiohttp.ClientSession, url: str, settings: ClientSettings) -> Check:
    t0 = perf_counter()
    try:
        status, _ = await _get(session, url, settings)
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
        return Check("health", "fail", _unreachable(url, err))
    took = _ms(perf_counter() - t0)
    if status == 200:
        return Check("health", "pass", f"GET {_path(url)} -> 200 in {took}")
    if status in (404, 405):
        return Check("health", "skip", f"no {_path(url)} here ({status}); not required")
    return Check("health", "warn", f"GET {_path(url)} -> {status} in {took}")


def _model_ids(body: bytes) -> tuple[str, ...] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    return tuple(str(m["id"]) for m in items if isinstance(m, dict) and "id" in m)


def _list(names: tuple[str, ...], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


async def _models(
    session: aiohttp.ClientSession, url: str, settings: ClientSettings
) -> tuple[Check, tuple[str, ...] | None]:
    try:
        status, body = await _get(session, url, settings)
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
        return Check("models", "warn", _unreachable(url, err)), None
    where = f"GET {_path(url)}"
    if status in (401, 403):
        return Check("models", "fail", f"{where} -> {status}: the API key was refused"), None
    if status in (404, 405):
        return Check("models", "skip", f"no {_path(url)} here ({status}); the stream decides"), None
    ids = _model_ids(body) if status == 200 else None
    if ids is None:
        return Check("models", "warn", f"{where} -> {status}, not a model list"), None
    model = settings.model
    if not model:
        if not ids:
            return Check("models", "fail", f"{where}: no models served"), ids
        return Check("models", "pass", f"serves {_list(ids)}; using {ids[0]!r}"), ids
    if model in ids:
        return Check("models", "pass", f"{model!r} is served ({len(ids)} listed)"), ids
    served = _list(ids) if ids else "none"
    return Check("models", "fail", f"{model!r} is not listed (served: {served})"), ids


async def _stream(settings: ClientSettings) -> Check:
    with Sender(replace(settings, max_tokens=PROBE_MAX_TOKENS)) as sender:
        t0 = perf_counter()
        record = await sender.fetch(Trace(-1, 0.0, 0, PROBE_PROMPT.id, 0.0), PROBE_PROMPT, t0)
    if record.error_kind is not None:
        return Check("stream", "fail", f"{record.error_kind}: {record.error}")
    ttft_s = (record.first_token_s or record.sent_s) - record.sent_s
    usage = (
        "usage reported"
        if record.token_counted_by == "usage"
        else "no usage: tokens are counted by chunks"
    )
    return Check(
        "stream",
        "pass",
        f"{record.status}, TTFT {_ms(ttft_s)}, {record.output_tokens} tokens in "
        f"{record.done_s - record.sent_s:.2f} s ({usage}){_reasoning(record)}",
    )


def _reasoning(record: RequestRecord) -> str:
    """``"; reasoning: first visible token at 80 ms"`` (or ``"; reasoning only"``) for a stream
    that carried reasoning, plus the server's reasoning token count; ``""`` otherwise."""
    if record.first_reasoning_s is None and record.reasoning_tokens is None:
        return ""
    counted = "" if record.reasoning_tokens is None else f", {record.reasoning_tokens} tokens"
    if record.first_reasoning_s is None:
        return f"; reasoning{counted} (not streamed)"
    if record.first_visible_s is None:
        return f"; reasoning only{counted}, no visible text within {PROBE_MAX_TOKENS} tokens"
    visible_ms = _ms(record.first_visible_s - record.sent_s)
    return f"; reasoning{counted}, first visible token at {visible_ms}"


async def served_models(settings: ClientSettings) -> tuple[str, ...] | None:
    """The model names ``GET {base}/models`` lists, or ``None`` when it lists none."""
    async with open_session(settings) as session:
        _, ids = await _models(session, probe_urls(settings.url)[1], replace(settings, model=""))
    return ids or None


async def run_probe(settings: ClientSettings) -> ProbeResult:
    """The three checks against ``settings.url`` (see the module docstring), every detail
    scrubbed of the settings' secrets."""
    result = await _checks(settings)
    mask = Masker(settings.secrets).mask
    checks = tuple(replace(c, detail=utf8_safe(mask(c.detail))) for c in result.checks)
    model = None if result.model is None else utf8_safe(result.model)
    return replace(result, checks=checks, model=model)


async def _checks(settings: ClientSettings) -> ProbeResult:
    health_url, models_url = probe_urls(settings.url)
    async with open_session(settings) as session:
        health = await _health(session, health_url, settings)
        if health.status == "fail":
            return ProbeResult((health,), None)
        models, ids = await _models(session, models_url, settings)
        model = settings.model or (ids[0] if ids else None)
        checks = (health, models)
        if models.status == "fail" and ids is None:  # the key was refused
            return ProbeResult(checks, model, ids)
        if model is None:
            missing = Check("stream", "fail", "no model: give --model (the server lists none)")
            return ProbeResult((*checks, missing), None, ids)
        stream = await _stream(replace(settings, model=model))
        if models.status == "fail" and stream.status == "pass":  # an alias the list omits
            models = Check("models", "warn", f"{models.detail}, but the server answered for it")
    return ProbeResult((health, models, stream), model, ids)
