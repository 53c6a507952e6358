"""Measured TTFT and E2E agree with the delays a real server injects."""

from __future__ import annotations

import numpy as np


def test_ttft_and_e2e_match_injected_delays(qpsweep, server_process: str) -> None:
    # 100 ms to the first token, then 9 more tokens 10 ms apart: E2E = 190 ms.
    url = f"{server_process}/ok/v1/chat/completions?ttft_ms=100&itl_ms=10&tokens=10"
    run = qpsweep("--endpoint", url, "--model", "m", "--qps", "10,50", "--duration", "2")
    assert run.code == 0
    records = run.records()
    assert records and all(r["error_kind"] is None for r in records)
    ttft_ms = np.array([(r["first_token_s"] - r["sent_s"]) * 1000 for r in records])
    e2e_ms = np.array([(r["done_s"] - r["sent_s"]) * 1000 for r in records])
    itl_ms = np.concatenate([np.diff(r["chunk_s"]) * 1000 for r in records])
    lag_ms = np.array([(r["sent_s"] - r["scheduled_s"]) * 1000 for r in records])
    assert 0 <= np.median(ttft_ms) - 100 < 5
    assert 0 <= np.median(e2e_ms) - 190 < 8
    assert abs(np.median(itl_ms) - 10) < 2
    assert np.median(lag_ms) < 3
    for level in run.json("benchmark_qps_results.json"):
        assert abs(level["tpot_ms"]["p50"] - 10) < 2  # (E2E - TTFT) / (tokens - 1)
        assert level["state"] != "client_limited"
