"""The verdict on synthetic curves with known answers (pure functions, table-driven)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qpsweep.analysis.auto_search import level_duration_s, next_level
from qpsweep.analysis.estimate import Estimate, Window, growth_z, plateau
from qpsweep.analysis.summary import LevelSummary, Percentiles
from qpsweep.analysis.verdict import (
    LevelState,
    assess,
    client_limited,
    find_knee,
    fit_knee,
    kneedle,
    stalled,
)
from qpsweep.config.thresholds import AutoPlan, Thresholds
from qpsweep.output.text import format_table

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
    capacity: float = float("inf"),
    refuse: bool = False,
    completion_se: float | None = None,
) -> LevelSummary:
    """A 30 s level offered ``offered`` (default ``qps``) to a server completing at most
    ``capacity`` per second: queueing, or answering the excess at once (``refuse``); its
    steady window (15 s) counts follow, with a completion rate error of ``completion_se``
    (default: one request of resolution)."""
    offered = qps if offered is None else offered
    steady_s = 15.0
    sent = round(offered * steady_s)
    done = sent if refuse else round(min(offered, capacity) * steady_s)
    se = completion_se if completion_se is not None else 1.0 / steady_s
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
        steady_s=steady_s,
        steady_sent=sent,
        steady_finished=done,
        steady_ok=round(done * (1 - errors)),
        finish_rate_se=se,
        ok_rate_se=se,
        plateau_s=steady_s,
        plateau_finished=done,
        plateau_ok=round(done * (1 - errors)),
        plateau_batches=10,
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


def test_a_queueing_server_of_known_capacity() -> None:
    """Capacity 10/s: the queue grows at 14 and 16 (proved), the plateau pools them, and every
    level is judged against its 99% interval."""
    rng = np.random.default_rng(1)
    qps = [2.0, 4, 6, 8, 9, 10.5, 12, 14, 16]
    ttft = hockey(np.array(qps), 9.0, base=0.05, slope=0.3)
    levels = [level(i, q, ttft[i], ttft[i] + 1, capacity=10.0) for i, q in enumerate(qps)]
    samples = {i: (s, s + 1.0) for i, s in enumerate(samples_for(ttft, rng))}
    v = assess(levels, samples)
    states = [st.state for st in v.levels]
    assert states[:4] == ["ok"] * 4  # far below capacity
    assert states[5:] == ["saturated"] * 4  # 10.5: 5% over a tightly known capacity
    assert v.saturation is not None and v.saturation.low < 10 < v.saturation.high
    assert v.saturation_qps == pytest.approx(10.0, rel=0.01)
    assert v.capacity is not None and v.capacity.value == pytest.approx(10.0, rel=0.01)
    assert set(v.levels[8].signals) == {"queue_growth", "above_saturation"}
    assert v.levels[6].signals == ("above_saturation",)  # 12: too little growth on its own
    # below the interval's lower end every rate is proved sustainable, tested (9) or not
    assert 9 < v.saturation.low == v.max_sustainable_qps < 10
    assert v.recommended_qps == pytest.approx(0.75 * v.saturation.low)
    assert v.proved == (9, 10.5)
    # midpoint 9.75 against 10: 2 x 2.326^2 x 19.75 / 0.25^2 s = 3420 s
    assert v.to_narrow is not None and v.to_narrow.startswith("a level at 9.75 QPS for about 34")
    expected = np.interp(v.recommended_qps, qps, ttft)
    assert v.expected_at_recommended[0] == pytest.approx(expected, rel=0.05)
    assert "saturates at 10 QPS" in v.reason and "production limit at 7.4" in v.reason
    assert "--slo sets the limits" in v.reason
    assert v.knee is not None and v.recommended_qps < v.saturation_qps


def test_a_level_inside_the_interval_is_inconclusive_and_says_what_would_decide() -> None:
    """With noisy completions the plateau's interval is wide: 10.5 QPS against a capacity of
    10 can be neither proved sustainable nor saturated."""
    qps = [2.0, 5, 8, 10.5, 20, 25]
    levels = [level(i, q, 0.1, 1.0, capacity=10.0, completion_se=0.4) for i, q in enumerate(qps)]
    v = assess(levels, {})
    states = {st.qps_target: st for st in v.levels}
    assert states[20].state == states[25].state == "saturated"
    assert states[10.5].state == "inconclusive"
    assert states[10.5].needs is not None and "s at this rate" in states[10.5].needs
    assert states[8].state == "ok" and v.saturation is not None
    assert v.max_sustainable_qps == pytest.approx(max(8, v.saturation.low))
    table = format_table(levels, (50.0,), v)
    assert "inconclusive at 10.5 QPS: needs about" in table


def test_a_refusing_server_saturates_where_its_failures_cross_the_limit() -> None:
    """Refused shares 0, 1%, 3%, 8%, 20% at 2..10 QPS: 5% is crossed at 7.33 QPS."""
    shares = {2.0: 0.0, 4.0: 0.01, 6.0: 0.03, 8.0: 0.08, 10.0: 0.2}
    levels = [
        level(i, q, 0.1, 1.0, errors=p, refuse=True) for i, (q, p) in enumerate(shares.items())
    ]
    v = assess(levels, {})
    assert v.errors is not None and v.saturation_qps == pytest.approx(6 + 2 * 2 / 5, rel=0.02)
    assert v.saturation is not None and v.saturation.low < v.saturation_qps
    states = [st.state for st in v.levels]
    assert states[-1] == "saturated" and "error_rate" in v.levels[-1].signals
    assert states[0] == "ok"
    assert v.max_sustainable_qps is not None and v.max_sustainable_qps < v.saturation_qps


def test_without_an_overloaded_level_only_a_lower_bound_is_known() -> None:
    """Nothing saturated: the top level cannot prove itself sustainable (the server only
    demonstrated what it was sent), the ones below it can."""
    calm = [level(i, q, 0.05, 1.0) for i, q in enumerate([1.0, 2, 4])]
    v = assess(calm, {})
    assert v.saturation_qps is None
    assert v.capacity is not None and v.capacity.value is None
    assert [st.state for st in v.levels] == ["ok", "ok", "inconclusive"]
    assert v.max_sustainable_qps == 2 and v.recommended_qps == pytest.approx(1.5)
    assert v.levels[2].needs is not None and "a higher level" in v.levels[2].needs
    assert v.suggestion is not None and "--qps 6,8,12,16" in v.suggestion
    hot = [level(i, q, 2.0, 9.0, capacity=10.0) for i, q in enumerate([40.0, 80])]
    v = assess(hot, {})
    assert v.saturation_qps == pytest.approx(10.0) and v.saturation is not None
    assert v.max_sustainable_qps == pytest.approx(v.saturation.low)  # from the plateau alone
    assert v.suggestion is not None and "--qps 5,10,20,30" in v.suggestion
    assert not [st for st in v.levels if st.sustainable]
    v = assess([level(0, 40.0, 2.0, 9.0, errors=0.5, refuse=True)], {})
    assert v.max_sustainable_qps is None and v.recommended_qps is None
    assert "No level was proved sustainable at 99% confidence" in v.reason


def test_a_contradiction_is_reported() -> None:
    """A queue that grew at 5 QPS below a level that completed 12 QPS: reported, not hidden."""
    levels = [
        level(0, 5, 0.1, 1.0, capacity=3.0),
        level(1, 10, 0.1, 1.0, capacity=12.0),
        level(2, 20, 0.1, 1.0, capacity=12.0),
    ]
    v = assess(levels, {})
    assert v.levels[0].state == "saturated"
    assert v.contradictions and "Contradiction" in v.reason


def test_headroom_is_applied() -> None:
    levels = [level(i, q, 0.05, 1.0, capacity=10.0) for i, q in enumerate([5.0, 20])]
    v = assess(levels, {}, Thresholds(headroom=0.5))
    assert v.saturation is not None and v.recommended_qps == pytest.approx(0.5 * v.saturation.low)


def test_client_limited_levels_are_not_evidence() -> None:
    levels = [
        level(0, 5, 0.05, 1.0),
        level(1, 10, 0.05, 1.0),
        level(2, 400, 9.0, 20.0, completion=0.2, growth=0.8, late=9000),
        level(3, 500, 9.0, 20.0, offered=300.0),  # sent well under the schedule's rate
    ]
    v = assess(levels, {})
    states = [st.state for st in v.levels]
    assert states == ["ok", "inconclusive", "client_limited", "client_limited"]
    assert v.saturation_qps is None and v.max_sustainable_qps == 5
    assert "load generator fell behind at 400, 500 QPS" in v.reason
    assert v.suggestion is not None and "higher levels" in v.suggestion


def test_a_brief_stall_is_a_note_not_a_client_limited_level() -> None:
    stall = level(1, 10, 0.05, 1.0, late=1, lag_p99_ms=90.0)
    v = assess([level(0, 5, 0.05, 1.0), stall], {})
    assert [st.state for st in v.levels] == ["ok", "inconclusive"]
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
    levels.append(level(3, 8, 0.1, 3.0, capacity=4.0))  # the plateau proves 1-3 sustainable
    states = [st.state for st in assess(levels, {}).levels]
    assert states == ["ok", "degraded", "degraded", "saturated"]
    limit = Thresholds(max_p95_latency_s=0.9)
    assert [st.state for st in assess(levels, {}, limit).levels][:3] == ["degraded"] * 3


PLAN = AutoPlan(start_qps=1, max_qps=64, precision=0.1)


def _ran(*levels: tuple[float, str] | tuple[float, str, float]) -> list[LevelState]:
    """Levels as the search sees them: (target, state[, offered])."""
    return [
        LevelState(i, lv[0], lv[2] if len(lv) > 2 else lv[0], lv[1])  # type: ignore[misc]
        for i, lv in enumerate(levels)
    ]


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], (1.0, 1.0)),
        ([(1.0, "ok")], (2.0, 1.0)),
        ([(1.0, "ok"), (2.0, "degraded")], (4.0, 1.0)),
        ([(1.0, "ok"), (32.0, "inconclusive")], (64.0, 1.0)),
        ([(1.0, "ok"), (64.0, "ok")], None),  # max_qps reached unsaturated
        ([(8.0, "ok"), (16.0, "saturated")], (12.0, 1.0)),
        ([(8.0, "ok"), (16.0, "saturated"), (12.0, "saturated")], (10.0, 1.0)),
        ([(8.0, "ok"), (16.0, "saturated"), (12.0, "ok")], (14.0, 1.0)),
        # offered, not target, decides: 12 offered 12.9 and 13 offered 13.8 are 7% apart
        ([(12.0, "ok", 12.9), (13.0, "saturated", 13.8)], None),
        ([(12.0, "ok", 11.2), (13.0, "saturated", 13.8)], (12.5, 1.0)),
        # an inconclusive midpoint is run again, twice as long, twice at most
        ([(8.0, "ok"), (16.0, "saturated"), (12.0, "inconclusive")], (12.0, 2.0)),
        (
            [(8.0, "ok"), (16.0, "saturated"), (12.0, "inconclusive"), (12.0, "inconclusive")],
            (12.0, 4.0),
        ),
        (
            [(8.0, "ok"), (16.0, "saturated"), *[(12.0, "inconclusive")] * 3],
            None,
        ),
        ([(1.0, "saturated")], (0.5, 1.0)),
        ([(1.0, "saturated"), (0.5, "inconclusive")], (0.5, 2.0)),
        ([(1.0, "ok"), (2.0, "client_limited")], (2.0, 1.0)),  # repeated once
        ([(1.0, "ok"), (2.0, "client_limited"), (2.0, "ok")], (4.0, 1.0)),
        ([(1.0, "ok"), (2.0, "client_limited"), (2.0, "client_limited")], None),
        ([(8.0, "ok"), (16.0, "client_limited"), (16.0, "saturated")], (12.0, 1.0)),
    ],
)
def test_adaptive_next_level(history: list[tuple[float, ...]], expected: object) -> None:
    assert next_level(_ran(*history), PLAN) == expected  # type: ignore[arg-type]


def test_adaptive_probes_just_outside_the_saturation_interval() -> None:
    """Known capacity 10 [9.5, 10.4]: the next probe is decisive, not the midpoint 12."""
    sat = Estimate(10.0, 9.5, 10.4, "plateau (finishes)")
    ran = _ran((5.0, "ok"), (11.0, "saturated"))
    assert next_level(ran, PLAN, sat) == (9.26, 1.0)  # 9.5 x (1 - 0.1 / 4), below: wider gap
    ran = _ran((8.0, "ok"), (16.0, "saturated"))
    assert next_level(ran, PLAN, sat) == (10.7, 1.0)  # 10.4 x 1.025, above


def test_adaptive_levels_are_long_enough() -> None:
    assert level_duration_s(100.0, 10.0, None) == 10.0
    assert level_duration_s(1.0, 10.0, None) == 50.0  # at least 50 arrivals
    assert level_duration_s(100.0, 10.0, 5.0) == 20.0  # 4 x the probe's median E2E


def _window(
    finished: int, finish_se: float | None, batches: int = 3, floor_se: float = 0.0
) -> Window:
    """fifo4x1 offered 6/s for 15 s (90 sends; 45 in the steady 7.5 s)."""
    return Window(
        0,
        6.0,
        7.5,
        45,
        finished,
        finished,
        None,
        None,
        90,
        0,
        0.0,
        0,
        0,
        10,
        finish_se,
        batches,
        0.63,  # the sends' batch means: about Poisson's sqrt(6 / 15)
        0.0,
        floor_se,
    )


@pytest.mark.parametrize(
    ("finished", "finish_se", "floor_se", "low", "high"),
    [
        # 4/s, steady (a fixed service time): the gap 2 over sqrt(4 / 15 + 0.018), the
        # offered rate's variance taken at the null's boundary (the finish rate), 500 dof
        (30, 1 / 7.5, 0.0, 3.6, 3.8),
        (30, 0.0, 1 / 7.5, 3.7, 3.8),  # batches all alike: the edge floor, a normal score
        (30, 0.05, 1 / 7.5, 3.7, 3.8),  # a batch error below the floor: the floor decides
        (30, None, 0.0, 1.70, 1.76),  # the same counts without batch means: Skellam 15/sqrt(75)
        (45, 0.9, 0.0, -0.1, 0.1),  # keeping up: finishes at the offered rate
        (30, 0.73, 0.0, 1.6, 2.1),  # 4/s with Poisson-noisy finishes (4.5 dof): not proved
    ],
)
def test_the_growth_test_reads_the_whole_level_and_steady_finishes(
    finished: int, finish_se: float | None, floor_se: float, low: float, high: float
) -> None:
    z = growth_z(_window(finished, finish_se, floor_se=floor_se))
    assert z is not None and low <= z <= high


def test_the_growth_test_takes_the_burstier_of_poisson_and_the_sends() -> None:
    poisson = growth_z(_window(30, 1 / 7.5))
    bursty = growth_z(dataclasses.replace(_window(30, 1 / 7.5), sent_rate_se=1.26))
    assert poisson is not None and bursty is not None
    assert bursty < poisson / 1.7  # dispersion 4: the offered rate's variance x 4


def test_a_plateau_of_no_successes_has_no_negative_rate() -> None:
    """An overloaded level where every request failed (a 401 to each): the successes'
    plateau is 0 and its interval starts at 0, not below."""
    windows = [
        Window(0, 10.0, 0.5, 5, 5, 0, None, None, 5, 5, plateau_s=0.5, plateau_finished=5,
               plateau_ok=0, batches=2, plateau_floor_se=2.0)
    ]  # fmt: skip
    found = plateau(windows, {0}, ok=True, confidence=0.99)
    assert found.value == 0.0 and found.low == 0.0 and found.high > 0.0
