"""A misbehaving server never breaks a run: every request is sent, recorded once, and classified.

For each fault of ``faults.py`` a small sweep must exit 0; each level must account for every
request (``n_sent == n_ok + n_failed`` == its lines in requests.jsonl) and every failure must
carry exactly one kind of ``ERROR_KINDS`` and a message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from qpsweep.records.record import ERROR_KINDS

from conftest import Run
from faults import HITS, MIX, MIX_CHOICES, MIX_RNG, TrickleServer, make_fault_app
from servers import ServerThread

LOAD = ("--model", "m", "--qps", "10", "--duration", "0.4", "--arrival", "constant")
N = 4  # requests of LOAD
KEY = "sk-faults-canary-7d1f0c"  # recognisable: must never reach another origin or a file
Records = list[dict[str, Any]]


@pytest.fixture(scope="module")
def faults() -> Iterator[ServerThread]:
    with ServerThread(make_fault_app()) as srv:
        yield srv


@pytest.fixture(scope="module")
def other_origin() -> Iterator[ServerThread]:
    with ServerThread(make_fault_app()) as srv:
        yield srv


def accounted(run: Run) -> Counter[str | None]:
    """Check the run's bookkeeping; returns the Counter of ``error_kind`` (None: success)."""
    assert run.code == 0, run.err
    assert run.run_dir is not None
    n_lines = len((run.run_dir / "requests.jsonl").read_text().splitlines())
    records = run.records()
    levels = run.json("benchmark_qps_results.json")
    assert sum(level["n_sent"] for level in levels) == n_lines == len(records)
    for level in levels:
        mine = [r for r in records if r["level_qps"] == level["qps_target"]]
        failed = Counter(r["error_kind"] for r in mine if r["error_kind"] is not None)
        assert level["n_sent"] == level["n_ok"] + level["n_failed"] == len(mine)
        assert level["n_ok"] == sum(r["error_kind"] is None for r in mine)
        assert level["errors_by_kind"] == dict(failed)
        assert sum(failed.values()) == level["n_failed"]
    for r in records:
        if r["error_kind"] is None:
            assert r["error"] is None, r
        else:
            assert r["error_kind"] in ERROR_KINDS and r["error"], r
    assert "Traceback" not in run.out + run.err
    assert "internal error" not in " ".join(r["error"] or "" for r in records)
    return Counter(r["error_kind"] for r in records)


def messages(records: Records) -> set[str]:
    return {r["error"] for r in records if r["error"] is not None}


def tokens(n: int, by: str) -> Callable[[Records], None]:
    def check(records: Records) -> None:
        assert {(r["output_tokens"], r["token_counted_by"]) for r in records} == {(n, by)}

    return check


def gzip_streams(records: Records) -> None:
    """Decoded as it arrived: 5 chunks 30 ms apart, not all at once at the end."""
    tokens(5, "chunks")(records)
    assert all(r["chunk_s"][-1] - r["chunk_s"][0] >= 0.08 for r in records), records


def fast_429(records: Records) -> None:
    """Open loop: a 429's Retry-After is reported, never waited for."""
    assert all(r["status"] == 429 and r["done_s"] - r["sent_s"] < 1.0 for r in records)
    assert all("(Retry-After: 2)" in r["error"] for r in records)


@dataclass(frozen=True)
class Case:
    id: str
    behaviour: str
    query: dict[str, Any]
    kinds: dict[str | None, int]
    message: str | None = None  # in every failure's message
    check: Callable[[Records], None] | None = None


CASES = [
    Case("closed-before-headers", "drop", {}, {"connection": N}, "Server disconnected"),
    Case("reset-before-headers", "drop", {"how": "rst"}, {"connection": N}, "reset by peer"),
    Case("reset-mid-stream", "reset", {}, {"connection": N}, "after 2 content chunks"),
    Case("503-empty-body", "http", {"code": 503, "body": "empty"}, {"http_503": N}, "HTTP 503"),
    Case("503-json-body", "http", {"code": 503}, {"http_503": N}, "HTTP 503: scripted 503"),
    Case("504", "http", {"code": 504, "body": "empty"}, {"http_5xx": N}, "HTTP 504"),
    Case(
        "429-retry-after",
        "http",
        {"code": 429, "retry_after": 2},
        {"http_429": N},
        "HTTP 429",
        fast_429,
    ),
    Case("sse-comments-and-fields", "noise", {}, {None: N}, check=tokens(3, "chunks")),
    Case("event-over-1mb", "big", {}, {None: N}, check=tokens(4, "chunks")),
    Case(
        "line-over-1mb-chunked-cut",
        "longline",
        {"framing": "chunked"},
        {"connection": N},
        "after 1 content chunks",
    ),
    Case(
        "line-over-1mb-close-delimited",
        "longline",
        {"framing": "close"},
        {"protocol": N},
        "invalid JSON in stream",  # the cut last line is parsed at the end: truncated JSON
    ),
    Case("gzip-sse", "gzip", {}, {None: N}, check=gzip_streams),
    Case("chunked-7-bytes", "chunked", {}, {None: N}, check=tokens(5, "chunks")),
    Case("chunked-crlf", "chunked", {"crlf": 1, "size": 5}, {None: N}, check=tokens(5, "chunks")),
    Case("json-content-length", "json", {}, {None: N}, check=tokens(2, "usage")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(qpsweep, faults: ServerThread, case: Case) -> None:
    url = faults.url(case.behaviour, **case.query)
    run = qpsweep("--endpoint", url, *LOAD, "--timeout", "3")
    assert accounted(run) == Counter(case.kinds), messages(run.records())
    records = run.records()
    if case.message is not None:
        assert all(case.message in r["error"] for r in records), messages(records)
    if case.check is not None:
        case.check(records)


@pytest.mark.slow
def test_trickle_accepts(qpsweep) -> None:
    """A server accepting one connection per 0.5 s: some requests succeed, the others time out
    connecting (or, once connected, waiting); every one is recorded."""
    with TrickleServer(every_s=0.5) as trickle:
        run = qpsweep(
            "--endpoint",
            trickle.url,
            *("--model", "m", "--qps", "20", "--duration", "1", "--arrival", "constant"),
            *("--connect-timeout", "1", "--timeout", "3"),
        )
    found = accounted(run)
    assert sum(found.values()) == 20
    assert set(found) <= {None, "timeout_connect", "timeout_ttft"}, messages(run.records())
    assert 1 <= found[None] <= trickle.served
    assert found["timeout_connect"] >= 1
    ok = [r for r in run.records() if r["error_kind"] is None]
    assert {(r["output_tokens"], r["token_counted_by"]) for r in ok} == {(2, "chunks")}


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    monkeypatch.setenv("QPSWEEP_FAULTS_KEY", KEY)
    return ("--api-key-env", "QPSWEEP_FAULTS_KEY", *LOAD, "--timeout", "3")


def no_key_written(run: Run) -> None:
    assert run.run_dir is not None
    assert KEY not in run.out + run.err
    for path in run.run_dir.rglob("*"):
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("absolute", [0, 1], ids=["relative", "absolute"])
def test_same_origin_redirect_is_followed(qpsweep, faults: ServerThread, keyed, absolute) -> None:
    run = qpsweep("--endpoint", faults.url("redirect", path="ok", absolute=absolute), *keyed)
    assert accounted(run) == Counter({None: N}), messages(run.records())
    assert {(r["status"], r["output_tokens"]) for r in run.records()} == {(200, 5)}
    no_key_written(run)


def test_redirect_to_another_origin_is_refused(
    qpsweep, faults: ServerThread, other_origin: ServerThread, keyed
) -> None:
    other_origin.app[HITS].clear()
    run = qpsweep("--endpoint", faults.url("redirect", port=other_origin.port), *keyed)
    assert accounted(run) == Counter({"protocol": N})
    assert all("redirect" in r["error"] and r["status"] == 307 for r in run.records())
    assert other_origin.app[HITS] == []  # not followed at all, so no Authorization either
    assert KEY not in repr(other_origin.app[HITS])
    no_key_written(run)


def test_redirect_loop_ends(qpsweep, faults: ServerThread, keyed) -> None:
    run = qpsweep("--endpoint", faults.url("loop"), *keyed)
    assert accounted(run) == Counter({"protocol": N})
    assert all("redirect" in r["error"] for r in run.records()), messages(run.records())


# what each ``mixed`` behaviour must be recorded as
MIX_KINDS = {
    "ok": None,
    "503": "http_503",
    "429": "http_429",
    "500": "http_5xx",
    "reset": "connection",
    "stall": "timeout_total",
    "badjson": "protocol",
}


@pytest.mark.slow
def test_mixed_faults(qpsweep, faults: ServerThread) -> None:
    """50 QPS for 2 s, each request drawing its behaviour: every one is classified as drawn."""
    assert set(MIX_KINDS) == set(MIX)
    faults.app[MIX_RNG].seed(1234)
    faults.app[MIX_CHOICES].clear()
    run = qpsweep(
        "--endpoint",
        faults.url("mixed"),
        *("--model", "m", "--qps", "50", "--duration", "2", "--arrival", "constant"),
        "--timeout",
        "1",
    )
    found = accounted(run)
    (level,) = run.json("benchmark_qps_results.json")
    assert sum(found.values()) == level["n_sent"] == 100
    drawn = faults.app[MIX_CHOICES]
    assert found == Counter(MIX_KINDS[name] for name in drawn), Counter(drawn)
    assert len(set(drawn)) == len(MIX)  # every behaviour came up
