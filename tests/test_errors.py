"""Every error kind comes from a real server behaviour on 127.0.0.1 and is classified right."""

from __future__ import annotations

import contextlib
import socket
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from servers import BODIES, PEERS, SEEN, ServerThread

# 4 requests at constant 10 QPS: quick, and enough to see that every one is classified.
LOAD = ("--model", "m", "--qps", "10", "--duration", "0.4", "--arrival", "constant")


def kinds(run) -> Counter[str | None]:  # type: ignore[no-untyped-def]
    return Counter(r["error_kind"] for r in run.records())


@pytest.mark.parametrize(
    ("behaviour", "query", "kind", "label"),
    [
        ("status", {"code": 503}, "http_503", "HTTP 503"),
        ("status", {"code": 429}, "http_429", "HTTP 429"),
        ("status", {"code": 500}, "http_5xx", "HTTP 500"),
        ("status", {"code": 502}, "http_5xx", "HTTP 502"),
        ("status", {"code": 404}, "http_4xx", "HTTP 404"),
        ("status", {"code": 302}, "protocol", "Protocol error"),
        ("badjson", {}, "protocol", "Protocol error"),
        ("errorobj", {}, "protocol", "Protocol error"),
        ("html", {}, "protocol", "Protocol error"),
        ("nodone", {}, "protocol", "Protocol error"),
        ("empty", {}, "empty", "Empty response"),
        ("reset", {}, "connection", "Connection error"),
    ],
)
def test_failure_kinds(
    qpsweep, server: ServerThread, behaviour: str, query: dict[str, int], kind: str, label: str
) -> None:
    run = qpsweep("--endpoint", server.url(behaviour, **query), *LOAD, "--timeout", "5")
    assert run.code == 0
    assert kinds(run) == Counter({kind: 4})
    (level,) = run.json("benchmark_qps_results.json")
    assert level["n_sent"] == 4 and level["n_ok"] == 0 and level["success_rate"] == 0.0
    assert level["errors"] == {label: 4}
    assert f"QPS 10 - Errors (4 total):\n  - {label}: 4 occurrences" in run.out


@pytest.mark.slow
def test_ttft_and_total_timeouts(qpsweep, server: ServerThread) -> None:
    hang = qpsweep("--endpoint", server.url("hang"), *LOAD, "--timeout", "0.5")
    stall = qpsweep("--endpoint", server.url("stall"), *LOAD, "--timeout", "0.5")
    assert kinds(hang) == Counter({"timeout_ttft": 4})
    assert kinds(stall) == Counter({"timeout_total": 4})
    assert all(r["output_tokens"] == 2 for r in stall.records())


def test_connection_refused(qpsweep) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    run = qpsweep("--endpoint", f"http://127.0.0.1:{port}", *LOAD)
    assert kinds(run) == Counter({"connection": 4})
    assert "Connection error: 4 occurrences" in run.out


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full, so new connections are never completed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    yield port
    for s in (*fillers, listener):
        s.close()


def test_connect_timeout(qpsweep, full_backlog: int) -> None:
    run = qpsweep(
        "--endpoint",
        f"http://127.0.0.1:{full_backlog}",
        *LOAD,
        "--connect-timeout",
        "0.3",
        "--timeout",
        "5",
    )
    assert kinds(run) == Counter({"timeout_connect": 4})


def test_success_counts_tokens_from_usage_or_chunks(qpsweep, server: ServerThread) -> None:
    with_usage = qpsweep("--endpoint", server.url("ok", tokens=6), *LOAD)
    no_usage = qpsweep("--endpoint", server.url("ok", tokens=6, usage=0), *LOAD)
    for run, source in ((with_usage, "usage"), (no_usage, "chunks")):
        records = run.records()
        assert [r["error_kind"] for r in records] == [None] * 4
        assert {
            (r["output_tokens"], r["token_counted_by"], len(r["chunk_s"])) for r in records
        } == {(6, source, 6)}
    assert {r["input_tokens"] for r in with_usage.records()} == {7}


def test_server_rejecting_stream_options_is_retried_once_and_remembered(qpsweep, server) -> None:
    server.app[BODIES].clear()
    run = qpsweep("--endpoint", server.url("strict", tokens=3), *LOAD)
    assert kinds(run) == Counter({None: 4})
    assert {r["token_counted_by"] for r in run.records()} == {"chunks"}
    assert run.json("metadata.json")["include_usage"] is False
    # the first request learned it; later ones were sent without stream_options at once
    assert all("stream_options" not in body for body in server.app[BODIES])


def test_a_400_that_is_not_about_stream_options_is_sent_once(qpsweep, server) -> None:
    """A prompt the server refuses (longer than its context, say) is not sent again without
    ``stream_options``: that would double the refused requests and, with the server's
    queue before the 400, count its wait as the generator's send lag."""
    message = "the_request_exceeds_the_available_context_size"
    url = server.url("status", code=400, message=message, delay_ms=800, key="ctx")
    run = qpsweep("--endpoint", url, *LOAD)
    records = run.records()
    assert kinds(run) == Counter({"http_4xx": len(records)}) and len(records) == 4
    assert server.app[SEEN]["ctx"] == 4  # once each, no second try
    assert all(r["sent_s"] - r["scheduled_s"] < 0.5 for r in records), records  # not 0.8 s
    assert "fell behind" not in run.out + run.err


def test_connections_are_reused_after_done(qpsweep, server: ServerThread) -> None:
    """Reading past [DONE] lets the pool keep the connection: no TCP handshake per request."""
    server.app[PEERS].clear()
    run = qpsweep(
        "--endpoint",
        server.url("ok", tokens=2, tail_ms=5),
        "--model",
        "m",
        "--qps",
        "20",
        "--duration",
        "1",
        "--arrival",
        "constant",
    )
    assert len(run.records()) == 20
    assert len(server.app[PEERS]) <= 3


@pytest.mark.slow
def test_the_connection_pool_never_throttles_the_schedule(qpsweep, server_process: str) -> None:
    """300 requests whose first token takes 2 s are all in flight together (aiohttp's default
    pool holds 100): had any waited for a pooled connection, its TTFT would be about 4 s."""
    url = f"{server_process}/ok/v1/chat/completions?ttft_ms=2000&tokens=2"
    args = ("--model", "m", "--qps", "300", "--duration", "1", "--arrival", "constant")
    run = qpsweep("--endpoint", url, *args, "--timeout", "10")
    assert run.code == 0
    (level,) = run.json("benchmark_qps_results.json")
    assert level["n_sent"] == level["n_ok"] == 300
    assert level["ttft"]["p50"] >= 2.0 and level["ttft"]["p99"] < 2.6, level["ttft"]
