"""``--retries N``: connection errors and 503s are tried again, and stay visible."""

from __future__ import annotations

import socket
from collections import Counter

import pytest

from qpsweep.http.client import ClientSettings, backoff_s, request_deadline_s

from servers import ServerThread

# 5 requests at constant 10 QPS (0.0, 0.1, ... 0.4 s)
LOAD = ("--model", "m", "--qps", "10", "--duration", "0.5", "--arrival", "constant")


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_s(k) for k in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    settings = ClientSettings(url="http://127.0.0.1:1", model="m", timeout_s=10.0, retries=3)
    assert request_deadline_s(settings) == 4 * 10.0 + 0.5 + 1.0 + 2.0
    assert request_deadline_s(ClientSettings(url="u", model="m", timeout_s=10.0)) == 10.0


def test_retried_503s_are_recorded_and_still_make_the_level_saturated(  # type: ignore[no-untyped-def]
    qpsweep, server: ServerThread
) -> None:
    url = server.url("flaky", fail=3, key="retried", tokens=2)
    run = qpsweep("--endpoint", url, *LOAD, "--retries", "2")
    assert run.code == 0, run.err
    records = sorted(run.records(), key=lambda r: r["seq"])
    assert [r["error_kind"] for r in records] == [None] * 5  # every one succeeded in the end
    retried = [r for r in records if "attempts" in r]
    assert [r["seq"] for r in retried] == [0, 1, 2]  # the first three met a 503 first
    for r in retried:
        assert r["attempts"] == 2 and r["first_error_kind"] == "http_503"
        assert r["sent_s"] < r["first_done_s"] < r["first_token_s"]
        # the first try's send is kept: TTFT includes the failed try and the 0.5 s back-off
        assert r["first_token_s"] - r["sent_s"] >= backoff_s(1)
    (level,) = run.json("benchmark_qps_results.json")
    assert (level["n_retried"], level["n_retries"]) == (3, 3)
    assert level["error_rate"] == 0 and level["first_try_error_rate"] == pytest.approx(0.6)
    assert level["state"] == "saturated" and "error_rate" in level["signals"]
    assert "QPS 10: 3 of 5 requests retried (3 extra tries); failed at the first try 60.0%, " \
        "in the end 0.0%" in run.out  # fmt: skip


def test_without_retries_a_503_is_final_and_no_retry_keys_are_written(  # type: ignore[no-untyped-def]
    qpsweep, server: ServerThread
) -> None:
    url = server.url("flaky", fail=3, key="not-retried", tokens=2)
    run = qpsweep("--endpoint", url, *LOAD)
    records = run.records()
    assert Counter(r["error_kind"] for r in records) == Counter({"http_503": 3, None: 2})
    assert not any("attempts" in r for r in records)
    assert "Retries" not in run.out


@pytest.mark.slow
def test_refused_connections_are_tried_n_plus_one_times(qpsweep) -> None:  # type: ignore[no-untyped-def]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    run = qpsweep("--endpoint", f"http://127.0.0.1:{port}", *LOAD, "--retries", "2")
    records = run.records()
    assert len(records) == 5 and all(r["error_kind"] == "connection" for r in records)
    for r in records:
        assert r["attempts"] == 3 and r["first_error_kind"] == "connection"
        assert r["done_s"] - r["sent_s"] >= backoff_s(1) + backoff_s(2)


def test_a_stream_broken_after_tokens_is_not_retried(qpsweep, server: ServerThread) -> None:  # type: ignore[no-untyped-def]
    run = qpsweep("--endpoint", server.url("reset"), *LOAD, "--retries", "3")
    records = run.records()
    assert all(r["error_kind"] == "connection" and "attempts" not in r for r in records)


def test_retries_must_be_a_whole_number_of_at_least_0(qpsweep, server: ServerThread) -> None:  # type: ignore[no-untyped-def]
    run = qpsweep("--endpoint", server.url("ok"), *LOAD, "--retries", "-1")
    assert run.code == 2 and "--retries: -1 must be" in run.err and run.run_dir is None
