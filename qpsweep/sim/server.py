"""Built-in OpenAI-compatible LLM server simulator with a continuous-batching engine.

Endpoints (loopback only): ``POST /v1/chat/completions``, ``POST /v1/completions`` (SSE when
``"stream": true``, else one JSON body), ``GET /v1/models``, ``GET /health`` and ``GET /metrics``
(Prometheus text, vLLM names: ``vllm:num_requests_running``, ``vllm:num_requests_waiting``,
``vllm:gpu_cache_usage_perc``, ``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``,
``vllm:request_success_total``). Any model name is accepted.

Token counting: prompt tokens = whitespace-separated words over all message contents (chat) or
the prompt (completions; integer token ids count one each), minimum 1. Output tokens = request
``max_completion_tokens`` or ``max_tokens`` (default 128), capped by ``max_output_tokens`` when
> 0. With ``output_tokens_mean`` > 0 the length is instead drawn from a seeded exponential
distribution with that mean (rounded, >= 1) and then capped the same way. A request finishes with
``finish_reason`` "length" when it produced all requested tokens, otherwise "stop".

Engine (one asyncio task): ``max_num_seqs`` running slots plus a FIFO waiting queue of at most
``max_queue`` requests (full queue: immediate 503). A request reserves prompt+output tokens of the
``kv_tokens`` budget when admitted; the queue head waits until it fits (head-of-line), and a request
larger than the whole budget gets a 400. Each step admits what fits, lasts
``step_ms = prefill_ms_per_token * (prompt tokens admitted this step) + decode_ms +
decode_ms_per_seq * running`` and then gives every running sequence one token; finished sequences
free their slot and KV. A request's first token is therefore emitted at the end of its first step
(TTFT = queue wait + prefill + one step). Steps follow a monotonic-clock target, so timer overshoot
is recovered by the next steps; the engine sleeps while idle.

Capacity (saturated, output length L, prompt length P, effective batch
``B = min(max_num_seqs, kv_tokens // (P + L))``): a request holds one of B slots for L steps of
``d_ms = decode_ms + decode_ms_per_seq * B`` and stalls the whole batch once for
``prefill_ms_per_token * P``, so each request costs ``L * d_ms / B + prefill_ms_per_token * P`` ms
of engine time and ``capacity_rps = 1000 / (L * d_ms / B + prefill_ms_per_token * P)``; with no
prefill this is ``B / (L * step_s)``. See :func:`capacity_rps`.

Reasoning (``reasoning_tokens`` R > 0, chat only): the first ``min(R, L)`` of a response's L
output tokens are reasoning, streamed as ``delta.reasoning_content`` (in a whole response:
``message.reasoning_content``), the rest as ``delta.content``; the usage reports
``completion_tokens_details.reasoning_tokens``.  Timing is unchanged: a reasoning token costs
a decode step like any other, so TTFT stays as above and the first visible token comes R steps
later.

Prefix cache (``prefix_cache_tokens`` C > 0): the prompt's words (all message contents in
order, or the completions prompt) are cut into blocks of ``PREFIX_BLOCK_TOKENS`` words, each
block named by a hash of its words and of every block before it (as vLLM's automatic prefix
caching does).  When a request is admitted, its leading blocks already in the cache are its
``cached`` tokens (at most prompt tokens - 1: one token is always computed) and skip their
prefill: the step costs ``prefill_ms_per_token * (prompt tokens - cached)`` for it.  Then all
its full blocks enter the cache, which holds ``C // PREFIX_BLOCK_TOKENS`` blocks and evicts the
least recently used (of one prompt's blocks, the last first).  The usage reports
``prompt_tokens_details.cached_tokens`` (only when the cache is on).  In the capacity formula
below, a request's P is then its uncached prompt tokens.

Faults (seeded ``random.Random(seed)``): ``fail_rate`` -> immediate 500; ``stall_rate`` -> a stream
stops after about half its tokens and the connection is held (engine side the sequence completes)
until the client leaves or ``stall_s`` passes, then closed without ``[DONE]``; ``reject_over`` N ->
503 when N requests are already running or waiting. Client disconnects free the slot and KV.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field, fields
from typing import Any

from aiohttp import web

from qpsweep.sim.app import AppServer, app_url, start_app

_WORDS = tuple(
    f"{w} ".encode() for w in ("the", "sim", "writes", "one", "plain", "word", "per", "token")
)
_DEFAULT_MAX_TOKENS = 128
PREFIX_BLOCK_TOKENS = 16
_MAX_LAG_S = 0.25  # behind the step schedule by more than this: resync instead of catching up
_WAITING, _RUNNING, _DONE, _GONE = range(4)


def _opt(default: Any, help_text: str) -> Any:
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class SimConfig:
    """Simulator settings; field names map 1:1 to ``qpsweep sim`` flags (``--max-num-seqs``)."""

    model: str = _opt("qpsweep-sim", "model name served by /v1/models and reported in metrics")
    max_num_seqs: int = _opt(16, "running slots, i.e. maximum batch size (sequences)")
    max_queue: int = _opt(256, "maximum waiting requests; beyond it requests get 503 (requests)")
    prefill_ms_per_token: float = _opt(0.05, "prefill time that stalls the batch (ms per token)")
    decode_ms: float = _opt(10.0, "fixed time of one decode step (ms)")
    decode_ms_per_seq: float = _opt(0.5, "extra decode step time per running sequence (ms)")
    kv_tokens: int = _opt(65536, "KV cache budget for prompt+output of running requests (tokens)")
    output_tokens_mean: float = _opt(
        0.0, "mean of random output lengths, 0 = use max_tokens (tokens)"
    )
    max_output_tokens: int = _opt(0, "cap on output length, 0 = no cap (tokens)")
    fail_rate: float = _opt(0.0, "probability of an immediate HTTP 500 (0..1)")
    stall_rate: float = _opt(0.0, "probability a stream stalls halfway without [DONE] (0..1)")
    stall_s: float = _opt(600.0, "longest time a stalled stream is held open (s)")
    reject_over: int = _opt(0, "503 when this many requests are in the system, 0 = off (requests)")
    reasoning_tokens: int = _opt(
        0, "the first N output tokens of a chat reply stream as reasoning_content (tokens)"
    )
    prefix_cache_tokens: int = _opt(
        0, "prefix cache size; a cached prompt prefix skips its prefill, 0 = off (tokens)"
    )
    seed: int = _opt(0, "seed for fault and output-length randomness")

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError("model: must be a non-empty string")
        for f in fields(self)[1:]:
            v, rate = getattr(self, f.name), f.name.endswith("_rate")
            ok_type = int if f.type == "int" else (int, float)
            if isinstance(v, bool) or not isinstance(v, ok_type) or not math.isfinite(v):
                raise ValueError(f"{f.name}: must be a finite {f.type}, got {v!r}")
            low = 1 if f.name in ("max_num_seqs", "max_queue", "kv_tokens") else 0
            if (f.name != "seed" and v < low) or (rate and v > 1):
                bound = "within 0..1" if rate else f">= {low}"
                raise ValueError(f"{f.name}: must be {bound}, got {v!r}")
        if self.decode_ms + self.decode_ms_per_seq <= 0:
            raise ValueError("decode_ms: decode_ms + decode_ms_per_seq must be > 0")
        if self.stall_s <= 0:
            raise ValueError(f"stall_s: must be > 0, got {self.stall_s!r}")


def capacity_rps(config: SimConfig, output_tokens: int, prompt_tokens: int = 0) -> float:
    """Saturated throughput (requests/s) for fixed output and prompt lengths (tokens).

    ``L = min(output_tokens, max_output_tokens or inf)``, ``B = min(max_num_seqs,
    kv_tokens // (prompt_tokens + L))``, ``d_ms = decode_ms + decode_ms_per_seq * B``;
    returns ``1000 / (L * d_ms / B + prefill_ms_per_token * prompt_tokens)`` (0 if it can't fit).
    """
    out = max(1, output_tokens)
    if config.max_output_tokens:
        out = min(out, config.max_output_tokens)
    batch = min(config.max_num_seqs, config.kv_tokens // (max(0, prompt_tokens) + out))
    if batch < 1:
        return 0.0
    d_ms = config.decode_ms + config.decode_ms_per_seq * batch
    return 1000.0 / (out * d_ms / batch + config.prefill_ms_per_token * max(0, prompt_tokens))


@dataclass(eq=False, slots=True)
class _Seq:
    """One request: engine state plus what its handler needs to render the response."""

    prompt_tokens: int
    output_tokens: int
    stream: bool
    chat: bool
    finish: str  # "length" when all requested tokens are produced, else "stop"
    blocks: tuple[int, ...] = ()  # the hashes of the prompt's full blocks (prefix cache on)
    reasoning: int = 0  # how many of the output tokens are reasoning
    cached: int = 0  # prompt tokens found in the prefix cache at admission
    kv: int = 0  # prompt + output tokens reserved while running
    generated: int = 0
    state: int = _WAITING
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.kv = self.prompt_tokens + self.output_tokens


class _Engine:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.fault_rng, self.len_rng = random.Random(cfg.seed), random.Random(cfg.seed + 1)
        self.waiting: deque[_Seq] = deque()
        self.running: list[_Seq] = []
        self.kv_used = self.prompt_total = self.gen_total = self.success_total = 0
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.cache = PrefixCache(cfg.prefix_cache_tokens // PREFIX_BLOCK_TOKENS)

    def submit(self, seq: _Seq) -> tuple[int, str] | None:
        """Queue ``seq`` or return (status, message) for a fault or overload rejection."""
        cfg, busy = self.cfg, len(self.running) + len(self.waiting)
        if cfg.fail_rate and self.fault_rng.random() < cfg.fail_rate:
            return 500, "simulated server failure (fail_rate)"
        if cfg.reject_over and busy >= cfg.reject_over:
            return 503, f"server overloaded: {busy} requests in system (reject_over)"
        if len(self.waiting) >= cfg.max_queue:
            return 503, f"waiting queue is full ({cfg.max_queue} requests)"
        self.waiting.append(seq)
        self.wake.set()
        return None

    def release(self, seq: _Seq) -> None:
        """Drop an unfinished request whose client went away, freeing its slot and KV."""
        if seq.state == _WAITING:
            self.waiting.remove(seq)
        elif seq.state == _RUNNING:
            self.running.remove(seq)
            self.kv_used -= seq.kv
        seq.state = _GONE

    async def run(self) -> None:
        cfg, target_s = self.cfg, 0.0
        while True:
            if not self.running and not self.waiting:
                self.wake.clear()
                await self.wake.wait()
                target_s = time.monotonic()
            prefill_ms = 0.0
            while self.waiting and len(self.running) < cfg.max_num_seqs:
                head = self.waiting[0]
                if self.kv_used + head.kv > cfg.kv_tokens:
                    break
                self.waiting.popleft()
                head.state, self.kv_used = _RUNNING, self.kv_used + head.kv
                self.running.append(head)
                self.prompt_total += head.prompt_tokens
                if head.blocks:
                    found = self.cache.admit(head.blocks) * PREFIX_BLOCK_TOKENS
                    head.cached = min(found, head.prompt_tokens - 1)
                prefill_ms += cfg.prefill_ms_per_token * (head.prompt_tokens - head.cached)
            step_ms = prefill_ms + cfg.decode_ms + cfg.decode_ms_per_seq * len(self.running)
            now_s = time.monotonic()
            target_s = max(target_s, now_s - _MAX_LAG_S) + step_ms / 1000.0
            await asyncio.sleep(max(0.0, target_s - now_s))
            still: list[_Seq] = []
            for seq in self.running:
                seq.generated += 1
                if seq.generated >= seq.output_tokens:
                    seq.state = _DONE
                    self.kv_used -= seq.kv
                    seq.event.set()
                else:
                    still.append(seq)
                    if seq.stream:
                        seq.event.set()
            self.gen_total += len(self.running)
            self.success_total += len(self.running) - len(still)
            self.running = still


class PrefixCache:
    """The simulator's prefix cache: at most ``capacity_blocks`` block hashes, least recently
    used evicted first (see the module docstring)."""

    def __init__(self, capacity_blocks: int) -> None:
        self.capacity_blocks = capacity_blocks
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def admit(self, blocks: tuple[int, ...]) -> int:
        """How many of ``blocks``' leading blocks were cached; then all of them are, as the
        most recently used, a prompt's first block the most recent of all (so that eviction
        takes the end of a prefix before its start, as vLLM's does)."""
        n = 0
        while n < len(blocks) and blocks[n] in self._blocks:
            n += 1
        for block in reversed(blocks):
            self._blocks[block] = None
            self._blocks.move_to_end(block)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)
        return n


def block_hashes(words: list[str]) -> tuple[int, ...]:
    """The hash of each full block of ``PREFIX_BLOCK_TOKENS`` words, each over its words and
    the hash of the block before it (so a block names its whole prefix)."""
    out, previous = [], 0
    for start in range(0, len(words) - PREFIX_BLOCK_TOKENS + 1, PREFIX_BLOCK_TOKENS):
        previous = hash((previous, *words[start : start + PREFIX_BLOCK_TOKENS]))
        out.append(previous)
    return tuple(out)


_ENGINE = web.AppKey("qpsweep_sim_engine", _Engine)


def _error(status: int, message: str) -> web.Response:
    err_type = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": err_type, "code": status}}
    return web.json_response(body, status=status)


def _count_words(content: object) -> int:
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, int) and not isinstance(content, bool):
        return 1  # a token id in a completions prompt
    if isinstance(content, list):
        return sum(_count_words(part) for part in content)
    if isinstance(content, dict):
        return _count_words(content.get("content", content.get("text")))
    return 0


def _words(content: object, out: list[str]) -> list[str]:
    """The prompt's tokens as ``_count_words`` counts them, in order, appended to ``out``."""
    if isinstance(content, str):
        out += content.split()
    elif isinstance(content, int) and not isinstance(content, bool):
        out.append(str(content))
    elif isinstance(content, list):
        for part in content:
            _words(part, out)
    elif isinstance(content, dict):
        _words(content.get("content", content.get("text")), out)
    return out


async def _hold(request: web.Request, stall_s: float) -> None:
    """Keep a stalled stream open until the client leaves or ``stall_s`` passes, then cut it."""
    deadline_s = time.monotonic() + stall_s
    while (transport := request.transport) is not None and not transport.is_closing():
        left_s = deadline_s - time.monotonic()
        if left_s <= 0:
            transport.close()
            return
        await asyncio.sleep(min(0.25, left_s))


async def _complete(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions and /v1/completions."""
    engine, chat = request.app[_ENGINE], request.path.endswith("/chat/completions")
    cfg, key = engine.cfg, "messages" if chat else "prompt"
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "request body is not valid JSON")
    if not isinstance(body, dict) or key not in body:
        return _error(400, f"request body must be a JSON object with '{key}'")
    if chat and not (isinstance(body[key], list) and body[key]):
        return _error(400, "'messages' must be a non-empty list")
    requested = body.get("max_completion_tokens", body.get("max_tokens"))
    requested = _DEFAULT_MAX_TOKENS if requested is None else requested
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        return _error(400, "'max_tokens' must be a positive integer")
    out = requested
    if cfg.output_tokens_mean > 0:
        out = min(out, max(1, round(engine.len_rng.expovariate(1.0 / cfg.output_tokens_mean))))
    if cfg.max_output_tokens:
        out = min(out, cfg.max_output_tokens)
    stream = body.get("stream") is True
    finish = "length" if out == requested else "stop"
    seq = _Seq(max(1, _count_words(body[key])), out, stream, chat, finish)
    if cfg.prefix_cache_tokens:
        seq.blocks = block_hashes(_words(body[key], []))
    if chat:
        seq.reasoning = min(cfg.reasoning_tokens, out)
    if seq.kv > cfg.kv_tokens:
        return _error(400, f"prompt+output {seq.kv} tokens exceed kv_tokens={cfg.kv_tokens}")
    if (rejected := engine.submit(seq)) is not None:
        return _error(*rejected)
    stall = stream and cfg.stall_rate > 0 and engine.fault_rng.random() < cfg.stall_rate
    opts = body.get("stream_options")
    usage = isinstance(opts, dict) and opts.get("include_usage") is True
    ids = _ids(seq, body.get("model"), cfg.model)
    cache = cfg.prefix_cache_tokens > 0
    try:
        if not stream:
            return await _whole(seq, ids, cache)
        return await _stream(request, seq, ids, usage, stall, cache)
    except ConnectionResetError:
        return web.Response(status=499)  # the client left; nothing more can be sent
    finally:
        if seq.state in (_WAITING, _RUNNING):  # client gone (handler cancelled or write failed)
            engine.release(seq)


def _ids(seq: _Seq, model: object, default_model: str) -> dict[str, Any]:
    """id/object/created/model fields shared by every body of one response."""
    kind = "chat.completion" if seq.chat else "text_completion"
    rid = f"{'chatcmpl' if seq.chat else 'cmpl'}-sim{uuid.uuid4().hex[:24]}"
    name = model if isinstance(model, str) else default_model
    return {"id": rid, "object": kind, "created": int(time.time()), "model": name}


def _usage(seq: _Seq, cache: bool) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": seq.prompt_tokens,
        "completion_tokens": seq.output_tokens,
        "total_tokens": seq.kv,
    }
    if seq.reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": seq.reasoning}
    if cache:
        usage["prompt_tokens_details"] = {"cached_tokens": seq.cached}
    return usage


async def _whole(seq: _Seq, ids: dict[str, Any], cache: bool) -> web.Response:
    """Non-streaming response, sent when the engine finishes the sequence."""
    await seq.event.wait()
    words = [_WORDS[i % len(_WORDS)] for i in range(seq.output_tokens)]
    text = b"".join(words[seq.reasoning :]).decode()
    choice: dict[str, Any] = {"index": 0, "finish_reason": seq.finish}
    if seq.chat:
        choice["message"] = {"role": "assistant", "content": text}
        if seq.reasoning:
            choice["message"]["reasoning_content"] = b"".join(words[: seq.reasoning]).decode()
    else:
        choice.update(text=text, logprobs=None)
    return web.json_response({**ids, "choices": [choice], "usage": _usage(seq, cache)})


async def _stream(
    request: web.Request,
    seq: _Seq,
    ids: dict[str, Any],
    usage: bool,
    stall: bool,
    cache: bool,
) -> web.StreamResponse:
    """SSE response: role chunk, one chunk per token (reasoning ones first), finish chunk,
    usage chunk, [DONE]."""
    chat, stall_s = seq.chat, request.app[_ENGINE].cfg.stall_s
    ids["object"] += ".chunk" if chat else ""
    head = b"data: " + json.dumps(ids, separators=(",", ":")).encode()[:-1] + b',"choices":['
    think = b'{"index":0,"delta":{"reasoning_content":"'
    if chat:
        pre, post = b'{"index":0,"delta":{"content":"', b'"},"finish_reason":null}]}\n\n'
        last = b'{"index":0,"delta":{},"finish_reason":"'
    else:
        pre, post = b'{"index":0,"text":"', b'","logprobs":null,"finish_reason":null}]}\n\n'
        last = b'{"index":0,"text":"","logprobs":null,"finish_reason":"'
    tail = head + last + seq.finish.encode() + b'"}]}\n\n'
    limit, sent = seq.output_tokens // 2 if stall else seq.output_tokens, 0
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    while True:
        await seq.event.wait()
        seq.event.clear()
        n, parts = min(seq.generated, limit), []
        if not resp.prepared:  # headers go out with the first token, as TTFT should measure
            await resp.prepare(request)
            if chat:
                parts.append(
                    head + b'{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}\n\n'
                )
        parts.extend(
            head + (think if i < seq.reasoning else pre) + _WORDS[i % len(_WORDS)] + post
            for i in range(sent, n)
        )
        sent = n
        if stall and sent >= limit:
            await resp.write(b"".join(parts))
            await _hold(request, stall_s)
            return resp
        if sent >= seq.output_tokens:
            if usage:  # known once admitted: the cached tokens
                tail += head + b'],"usage":' + json.dumps(_usage(seq, cache)).encode() + b"}\n\n"
            tail += b"data: [DONE]\n\n"
            await resp.write(b"".join([*parts, tail]))
            await resp.write_eof()
            return resp
        await resp.write(b"".join(parts))


async def _models(request: web.Request) -> web.Response:
    model = request.app[_ENGINE].cfg.model
    card = {"id": model, "object": "model", "created": int(time.time()), "owned_by": "qpsweep"}
    return web.json_response({"object": "list", "data": [card]})


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="OK")


_METRICS = (  # vLLM name, Prometheus type, help text
    ("num_requests_running", "gauge", "Requests in the running batch."),
    ("num_requests_waiting", "gauge", "Requests waiting to be admitted."),
    ("gpu_cache_usage_perc", "gauge", "Fraction of the KV budget in use (1 = 100 percent)."),
    ("prompt_tokens", "counter", "Prefilled prompt tokens."),
    ("generation_tokens", "counter", "Generated tokens."),
    ("request_success", "counter", "Requests finished by the engine."),
)


async def _metrics(request: web.Request) -> web.Response:
    """Prometheus text in prometheus_client's layout (counter samples end in ``_total``)."""
    eng = request.app[_ENGINE]
    label = eng.cfg.model.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    values = (
        len(eng.running),
        len(eng.waiting),
        eng.kv_used / eng.cfg.kv_tokens,
        eng.prompt_total,
        eng.gen_total,
        eng.success_total,
    )
    lines = []
    for (name, kind, help_text), value in zip(_METRICS, values, strict=True):
        sample = f"vllm:{name}_total" if kind == "counter" else f"vllm:{name}"
        lines += [
            f"# HELP {sample} {help_text}",
            f"# TYPE vllm:{name} {kind}",
            f'{sample}{{model_name="{label}"}} {float(value)!r}',
        ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def build_app(config: SimConfig) -> web.Application:
    """The simulator as an aiohttp app; its engine task runs between startup and cleanup."""
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def start(app: web.Application) -> None:
        engine = _Engine(config)
        engine.task = asyncio.get_running_loop().create_task(engine.run())
        app[_ENGINE] = engine

    async def stop(app: web.Application) -> None:
        task = app[_ENGINE].task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/v1/chat/completions", _complete)
    app.router.add_post("/v1/completions", _complete)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    return app


def serve(config: SimConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the simulator until Ctrl-C (blocking); prints one line with the URL and capacity."""

    async def main() -> None:
        runner, bound = await start_app(build_app(config), host, port)
        print(
            f"qpsweep sim listening on {app_url(host, bound)} (model {config.model}, "
            f"capacity ≈ {capacity_rps(config, 128):.1f} req/s at 128 output tokens)",
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


class SimServer(AppServer):
    """The simulator in a background thread: ``with SimServer(cfg) as sim: sim.base_url``."""

    def __init__(
        self, config: SimConfig = SimConfig(), host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(build_app(config), host, port)
        self.config = config
