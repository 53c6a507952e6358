"""The verdict on synthetic curves with known answers (pure functions, table-driven)."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import pytest

from qpsweep.adaptive import AutoPlan, level_duration_s, next_qps
from qpsweep.analyze import LevelSummary, Percentiles
from qpsweep.report import format_table
from qpsweep.saturation import (
    Thresholds,
    assess,
    client_limited,
    find_knee,
    fit_knee,
    kneedle,
    stalled,
)

PS = (50.0, 90.0, 95.0, 99.0)


def dist(p95: float | None) -> Percentiles:
    if p95 is None:
        return Percentiles.of([], PS)
    return Percentiles(100, p95 * 0.8, p95 * 1.2, tuple((p, p95 * p / 95) for p in PS))


def level(
    index: int,
    qps: float,
    ttft: float,
    e2e: float,
    *,
    completion: float = 1.0,
    growth: float = 0.0,
    errors: float = 0.0,
    late: int = 0,
    lag_p99_ms: float = 2.0,
    offered: float | None = None,
) -> LevelSummary:
    offered = qps if offered is None else offered
    lags = {50.0: 0.5, 90.0: 0.8, 95.0: 1.0, 99.0: lag_p99_ms}
    lag = Percentiles(100, 0.5, lags[99.0], tuple(lags.items()))
    return LevelSummary(
        index=index,
        qps_target=qps,
        duration_s=30.0,
        arrival_window_s=30.0,
        n_scheduled=int(qps * 30),
        scheduled_qps=qps,
        n_sent=int(offered * 30),
        n_ok=int(offered * 30 * (1 - errors)),
        offered_qps=offered,
        achieved_qps=offered,
        success_pct=100 * (1 - errors),
        error_rate=errors,
        first_try_error_rate=errors,
        ttft_s=dist(ttft),
        e2e_s=dist(e2e),
        itl_ms=dist(None),
        tpot_ms=dist(None),
        tokens_per_sec=dist(None),
        send_lag_ms=lag,
        ttft_from_schedule_s=dist(ttft),
        e2e_from_schedule_s=dist(e2e),
        completion_ratio=completion,
        queue_growth=growth,
        output_tok_per_s=0.0,
        errors=(),
        errors_by_kind=(),
        token_counted_by=(),
        input_tokens_mean=None,
        output_tokens_mean=None,
        n_late_sends=late,
    )


def hockey(x: np.ndarray, knee: float, base: float = 0.2, slope: float = 0.4) -> np.ndarray:
    """Flat-ish latency (5% rise per QPS) until ``knee``, then ``slope`` s per QPS."""
    return base * (1 + 0.05 * x / knee) + slope * np.maximum(0, x - knee)


def samples_for(y: np.ndarray, rng: np.random.Generator, n: int = 300) -> list[np.ndarray]:
    """Per-level request samples whose p95 is about ``y`` (lognormal spread)."""
    return [rng.lognormal(np.log(v) - 1.645 * 0.25, 0.25, n) for v in y]


@pytest.mark.parametrize("true_knee", [4.0, 7.5, 11.0])
def test_two_segment_fit_finds_a_clean_knee(true_knee: float) -> None:
    x = np.linspace(1, 15, 12)
    fitted = fit_knee(x, hockey(x, true_knee))
    assert fitted is not None
    assert fitted[0] == pytest.approx(true_knee, abs=0.2)
    assert fitted[2] > 10 * fitted[1]


def test_noisy_knee_has_an_interval_around_it() -> None:
    rng = np.random.default_rng(5)
    x = np.array([2.0, 4, 6, 8, 10, 12, 14, 16])
    knee = find_knee("ttft", x, samples_for(hockey(x, 10.0), rng))
    assert knee is not None
    assert knee.qps == pytest.approx(10.0, abs=1.5)
    assert knee.low <= knee.qps <= knee.high and knee.high - knee.low < 6
    assert knee.kneedle_qps is not None and abs(knee.kneedle_qps - 10.0) <= 2.0


@pytest.mark.parametrize(
    "y",
    [
        np.array([0.20, 0.21, 0.22, 0.23, 0.24, 0.25]),  # straight line
        np.array([0.30, 0.22, 0.31, 0.24, 0.29, 0.23]),  # non-monotonic noise
        np.array([1.0, 0.8, 0.6, 0.4, 0.3, 0.25]),  # falling (warm caches)
    ],
)
def test_no_knee_without_a_bend(y: np.ndarray) -> None:
    assert fit_knee(np.arange(1.0, 7.0), y) is None


def test_too_few_levels_for_a_knee() -> None:
    assert fit_knee(np.array([1.0, 2, 3]), np.array([0.1, 0.1, 5.0])) is None


def test_kneedle_on_a_convex_curve() -> None:
    x = np.linspace(1, 10, 10)
    assert kneedle(x, hockey(x, 6.0)) == pytest.approx(6.0, abs=1.0)


def test_states_and_verdict_of_a_typical_sweep() -> None:
    rng = np.random.default_rng(1)
    qps = [2.0, 4, 6, 8, 10, 12, 14]
    ttft = hockey(np.array(qps), 9.0, base=0.05, slope=0.3)
    e2e = ttft + 1.0
    levels = [
        level(0, 2, ttft[0], e2e[0]),
        level(1, 4, ttft[1], e2e[1]),
        level(2, 6, ttft[2], e2e[2]),
        level(3, 8, ttft[3], e2e[3]),
        level(4, 10, ttft[4], e2e[4], growth=0.02),
        level(5, 12, ttft[5], e2e[5], completion=0.85, growth=0.2),
        level(6, 14, ttft[6], e2e[6], completion=0.7, growth=0.3, errors=0.1),
    ]
    samples = {i: (s, s + 1.0) for i, s in enumerate(samples_for(ttft, rng))}
    v = assess(levels, samples)
    states = [st.state for st in v.levels]
    # 10 QPS: TTFT 7x the lightest level's, but the server still completes what it is sent
    assert states == ["ok"] * 4 + ["degraded", "saturated", "saturated"]
    assert v.saturation_qps == 12
    assert v.saturation_signals == ("throughput_plateau", "queue_growth")
    assert set(v.levels[6].signals) == {"error_rate", "throughput_plateau", "queue_growth"}
    assert v.knee is not None and 7.5 <= v.knee.qps <= 11
    assert v.max_sustainable_qps == 8
    assert v.recommended_qps is not None and v.max_sustainable_qps is not None
    assert v.recommended_qps <= 0.75 * v.max_sustainable_qps + 1e-9
    assert v.recommended_qps <= v.knee.low + 1e-9
    assert "saturated at 12 QPS (throughput_plateau, queue_growth" in v.reason
    assert "production limit" in v.reason
    assert v.suggestion is None


def test_latency_knee_decides_only_where_throughput_was_not_measurable() -> None:
    rng = np.random.default_rng(2)
    qps = np.array([2.0, 4, 6, 8, 10, 12])
    ttft = hockey(qps, 7.0, base=0.05, slope=0.5)
    levels = [level(i, q, t, t + 1) for i, (q, t) in enumerate(zip(qps, ttft, strict=True))]
    short = [replace(lv, completion_ratio=None, queue_growth=None) for lv in levels]
    samples = {i: (s, s + 1.0) for i, s in enumerate(samples_for(ttft, rng))}
    measured, unmeasured = assess(levels, samples), assess(short, samples)
    assert measured.saturation_qps is None
    assert unmeasured.saturation_qps is not None and unmeasured.saturation_qps >= 8
    assert unmeasured.saturation_signals == ("latency_knee",)


def test_client_limited_levels_are_not_evidence() -> None:
    levels = [
        level(0, 5, 0.05, 1.0),
        level(1, 10, 0.05, 1.0),
        level(2, 400, 9.0, 20.0, completion=0.2, growth=0.8, late=9000),
        level(3, 500, 9.0, 20.0, offered=300.0),  # sent well under the schedule's rate
    ]
    v = assess(levels, {})
    assert [st.state for st in v.levels] == ["ok", "ok", "client_limited", "client_limited"]
    assert v.saturation_qps is None and v.max_sustainable_qps == 10
    assert "load generator fell behind at 400, 500 QPS" in v.reason
    assert v.suggestion is not None and "higher levels" in v.suggestion


def test_a_brief_stall_is_a_note_not_a_client_limited_level() -> None:
    stall = level(1, 10, 0.05, 1.0, late=1, lag_p99_ms=90.0)
    v = assess([level(0, 5, 0.05, 1.0), stall], {})
    assert [st.state for st in v.levels] == ["ok", "ok"]
    assert stalled(stall, Thresholds()) and not client_limited(stall, Thresholds())
    table = format_table([stall], (50.0,), v)
    assert "note: at QPS 10 the load generator stalled briefly (send lag max 90 ms" in table
    assert "WARNING" not in table


def test_one_late_send_in_a_short_level_is_a_stall_two_are_falling_behind() -> None:
    """A 1.5 s level at 6 QPS sends about 9 requests: one late send is a stall (numpy's p95 of
    9 lags would be mostly that one); two late sends (22%) are the generator falling behind."""
    t = Thresholds()
    short = dataclasses.replace(level(0, 6, 0.05, 1.0, lag_p99_ms=40.0), n_sent=9)
    assert not client_limited(dataclasses.replace(short, n_late_sends=1), t)
    assert stalled(dataclasses.replace(short, n_late_sends=1), t)
    assert client_limited(dataclasses.replace(short, n_late_sends=2), t)
    big = dataclasses.replace(short, n_sent=1000)  # 5% of 1,000 sends is the line
    assert not client_limited(dataclasses.replace(big, n_late_sends=50), t)
    assert client_limited(dataclasses.replace(big, n_late_sends=51), t)


def test_degraded_by_latency_factor_and_by_the_p95_limit() -> None:
    levels = [level(0, 1, 0.10, 1.0), level(1, 2, 0.40, 1.0), level(2, 3, 0.10, 2.7)]
    assert [st.state for st in assess(levels, {}).levels] == ["ok", "degraded", "degraded"]
    limit = Thresholds(max_p95_latency_s=0.9)
    assert [st.state for st in assess(levels, {}, limit).levels] == ["degraded"] * 3


def test_never_saturated_and_all_saturated_say_what_to_do() -> None:
    calm = [level(i, q, 0.05, 1.0) for i, q in enumerate([1.0, 2, 4])]
    v = assess(calm, {})
    assert v.saturation_qps is None and v.max_sustainable_qps == 4
    assert v.recommended_qps == pytest.approx(3.0)
    assert v.suggestion is not None and "--qps 6,8,12,16" in v.suggestion
    hot = [level(i, q, 2.0, 9.0, completion=0.5) for i, q in enumerate([40.0, 80])]
    v = assess(hot, {})
    assert v.saturation_qps == 40 and v.max_sustainable_qps is None
    assert v.recommended_qps is None
    assert v.suggestion is not None and "--qps 5,10,20,30" in v.suggestion
    assert "No level was unsaturated and was fast enough" in v.reason


def test_headroom_is_applied() -> None:
    calm = [level(i, q, 0.05, 1.0) for i, q in enumerate([5.0, 10])]
    assert assess(calm, {}, Thresholds(headroom=0.5)).recommended_qps == 5.0


PLAN = AutoPlan(start_qps=1, max_qps=64, precision=0.1)


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], 1.0),
        ([(1.0, "ok")], 2.0),
        ([(1.0, "ok"), (2.0, "degraded")], 4.0),
        ([(1.0, "ok"), (32.0, "ok")], 64.0),
        ([(1.0, "ok"), (64.0, "ok")], None),  # max_qps reached unsaturated
        ([(8.0, "ok"), (16.0, "saturated")], 12.0),
        ([(8.0, "ok"), (16.0, "saturated"), (12.0, "saturated")], 10.0),
        ([(8.0, "ok"), (16.0, "saturated"), (12.0, "ok")], 14.0),
        ([(12.0, "ok"), (13.0, "saturated")], None),  # within 10%
        ([(1.0, "saturated")], 0.5),
        (
            [
                (1.0, "saturated"),
                (0.5, "saturated"),
                (0.25, "saturated"),
                (0.125, "saturated"),
                (0.0625, "saturated"),
            ],
            None,
        ),
        ([(1.0, "ok"), (2.0, "client_limited")], 2.0),  # repeated once
        ([(1.0, "ok"), (2.0, "client_limited"), (2.0, "ok")], 4.0),
        ([(1.0, "ok"), (2.0, "client_limited"), (2.0, "client_limited")], None),
        ([(1.0, "ok"), (2.0, "client_limited"), (2.0, "ok"), (4.0, "client_limited")], None),
        ([(8.0, "ok"), (16.0, "client_limited"), (16.0, "saturated")], 12.0),
    ],
)
def test_adaptive_next_level(history: list[tuple[float, str]], expected: float | None) -> None:
    assert next_qps(history, PLAN) == expected


def test_adaptive_levels_are_long_enough() -> None:
    assert level_duration_s(100.0, 10.0, None) == 10.0
    assert level_duration_s(1.0, 10.0, None) == 50.0  # at least 50 arrivals
    assert level_duration_s(100.0, 10.0, 5.0) == 20.0  # 4 x the probe's median E2E
