"""``--metrics-preset``: each server's metrics, detected from the names served, stored per level,
drawn beside qpsweep's own view, and the queue check that flags a second client.

The servers are real (``tests/metrics_servers.py`` on 127.0.0.1), serving the recorded samples
in ``tests/metrics_samples/``; the queue check's rule is also tested on hand-made data."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from qpsweep.analysis.server_view import detect_presets, in_flight_window_max, server_view
from qpsweep.config.metrics_presets import PRESETS, metrics_plan
from qpsweep.errors import ConfigError
from qpsweep.http.prometheus import MetricsScraper, parse_prometheus
from qpsweep.output.plot_metrics import PANEL_GID, metrics_figure
from qpsweep.records.record import RequestRecord
from qpsweep.records.run_files import load_table
from qpsweep.records.server_metrics import METRICS_FILE, read_samples
from qpsweep.records.table import RecordTable

from metrics_servers import SAMPLES, State, metrics_server, render

ALL = metrics_plan("http://127.0.0.1:9/metrics", "auto")


def parsed(preset: str, **state: Any) -> dict[str, float]:
    """One scrape of the preset's sample page, as the sweep's scraper stores it."""
    return parse_prometheus(render(State(preset, **state)), ALL.names, ALL.mean_names)


def test_each_sample_is_detected_as_its_own_preset_only() -> None:
    for preset in PRESETS:
        assert detect_presets([{"values": parsed(preset)}]) == (preset,), preset
    both = {**parsed("vllm"), **parsed("dcgm")}  # e.g. a federating endpoint
    assert detect_presets([{"values": both}]) == ("vllm", "dcgm")
    unknown = [{"values": {"other:metric": 1.0}}, {"values": {}, "error": "HTTP 500"}]
    assert detect_presets(unknown) == ()
    (note,) = server_view(unknown, None).warnings({})
    assert note.startswith("NOTE: --metrics-url served none of the presets' metrics (vllm, ")
    assert note.endswith(", 1 of 2 scrapes failed: see server_metrics.jsonl.")
    assert server_view(unknown, None).warnings({}, expect_preset=False) == []  # preset none


def test_stored_values_sum_label_sets_and_average_fractions() -> None:
    assert parsed("dcgm") == {
        "DCGM_FI_DEV_GPU_UTIL": 80.0,  # mean of two GPUs (90, 70)
        "DCGM_FI_DEV_FB_USED": 140000.0,  # MiB, summed
        "DCGM_FI_DEV_POWER_USAGE": 1000.0,  # W, summed
    }
    vllm = parsed("vllm", in_flight=6, finished=2)
    assert vllm["vllm:num_requests_running"] == 4.0 and vllm["vllm:num_requests_waiting"] == 2.0
    assert vllm["vllm:kv_cache_usage_perc"] == 0.5  # two engines, 0.25 and 0.75: averaged
    assert vllm["vllm:prefix_cache_queries_total"] == 1200.0
    assert "vllm:time_to_first_token_seconds" not in vllm  # histograms are not scraped
    assert parsed("llamacpp", in_flight=1)["llamacpp:requests_processing"] == 1.0
    assert parsed("tgi")["tgi_batch_current_max_tokens"] == 4096.0
    assert parsed("sglang")["sglang:cache_hit_rate"] == 0.4


def test_metrics_plan() -> None:
    assert set(ALL.names) == {n for p in PRESETS.values() for n in p.names}
    tgi = metrics_plan("u", "tgi", ("x",))
    assert tgi.names == (*PRESETS["tgi"].names, "x") and tgi.mean_names == frozenset()
    assert metrics_plan("u", "none", ("x",)).names == ("x",)
    auto = metrics_plan("u", "auto", ("x",))
    found = parsed("sglang")
    assert auto.narrowed(found) == (*PRESETS["sglang"].names, "x")  # after the first find
    assert auto.narrowed({**found, **parsed("dcgm")}) == (
        *PRESETS["sglang"].names, *PRESETS["dcgm"].names, "x")  # fmt: skip
    assert auto.narrowed({"x": 1.0}) == auto.names  # no preset's name: keep looking
    assert tgi.narrowed(found) == tgi.names  # a named preset stays as asked
    with pytest.raises(ConfigError, match="--metrics-preset: unknown preset 'vlm'"):
        metrics_plan("u", "vlm")
    with pytest.raises(ConfigError, match="--metrics-preset none needs"):
        metrics_plan("u", "none")


def test_auto_narrows_the_scrape_to_the_presets_found(tmp_path: Path) -> None:
    async def main(url: str) -> MetricsScraper:
        scraper = MetricsScraper(url, ALL.names, tmp_path / METRICS_FILE, interval_s=0.1,
                                 mean_names=ALL.mean_names, narrow=ALL.narrowed)  # fmt: skip
        async with aiohttp.ClientSession() as session:
            await scraper.start(session)
            await asyncio.sleep(0.35)
            await scraper.stop()
        return scraper

    with metrics_server(State("llamacpp")) as srv:
        scraper = asyncio.run(main(f"{srv.base_url}/metrics"))
    assert scraper.names == PRESETS["llamacpp"].names
    samples = read_samples(tmp_path / METRICS_FILE)
    assert len(samples) >= 2 and all(s["values"] == samples[0]["values"] for s in samples)


def test_in_flight_window_max() -> None:
    sent, done = [0.0, 1.0, 2.0], [3.0, 2.0, 5.0]
    lo, hi = [0.5, 2.0, 2.5, 6.0, -1.0, 1.5], [0.5, 2.0, 2.9, 7.0, -0.5, 4.0]
    got = in_flight_window_max(*(list_array(x) for x in (sent, done, lo, hi)))
    assert got.tolist() == [1.0, 2.0, 2.0, 0.0, 0.0, 2.0]  # a request done at t is not counted


def list_array(values: list[float]) -> Any:
    import numpy as np

    return np.asarray(values, dtype=float)


def level_of(in_flight: int, duration_s: float = 10.0) -> RecordTable:
    """``in_flight`` requests of level 0, each in flight over the whole level."""
    one = {"level": 0, "level_qps": 1.0, "prompt_id": 0, "scheduled_s": 0.0, "sent_s": 0.0}
    return RecordTable.from_records(
        RequestRecord(seq=i, done_s=duration_s, **one) for i in range(in_flight)
    )


def scrapes(queue: list[float], lag_s: float = 0.0) -> list[dict[str, Any]]:
    """vLLM scrapes at 0.5, 1.5, ... s of level 0 with running + waiting = ``queue[i]``."""
    return [
        {"t_s": 3.0 + i, "level": 0, "level_t_s": 0.5 + i + lag_s, "scrape_s": 0.002,
         "values": {"vllm:num_requests_running": min(q, 4.0),
                    "vllm:num_requests_waiting": max(q - 4.0, 0.0)}}
        for i, q in enumerate(queue)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("queue", "disagrees"),
    [
        ([6.0] * 10, False),  # honest: the server counts what qpsweep sends
        ([7.0] * 10, False),  # one request more: within the margin
        ([6.0] * 8 + [9.0] * 2, False),  # spikes at a level's edges: too few scrapes in excess
        ([10.0] * 4, False),  # too few scrapes to judge
        ([9.0] * 10, True),  # three more than qpsweep has in flight, all along: a second client
        ([9.0] * 5 + [6.0] * 5, True),  # half the level
    ],
)
def test_queue_check_rule(queue: list[float], disagrees: bool) -> None:
    view = server_view(scrapes(queue), level_of(6))
    check = view.levels[0].queue
    assert check is not None and check.disagrees is disagrees
    assert check.n == len(queue) and check.client_at_mean == 6.0
    assert bool(view.warnings({0: 2.0})) is disagrees


def test_queue_check_tolerates_a_late_gauge_and_skips_shards() -> None:
    # qpsweep's requests end at 5 s; the server's gauge is 0.9 s late: its scrapes at 5.4 s
    # (inside the window) and 6.4 s (beyond it: one scrape of ten in excess) still count them
    records = level_of(6, duration_s=5.0)
    view = server_view(scrapes([6.0] * 6 + [0.0] * 4, lag_s=0.9), records)
    check = view.levels[0].queue
    assert check is not None and not check.disagrees and check.excess_share == 0.1
    assert server_view(scrapes([9.0] * 10), level_of(6), check_queue=False).levels[0].queue is None


def panels(run_dir: Path) -> list[str]:
    """Titles of the left panels of ``server_metrics.png``, drawn from the run's files."""
    metadata = json.loads((run_dir / "metadata.json").read_text())
    samples = read_samples(run_dir / METRICS_FILE)
    view = server_view(samples, load_table(run_dir))
    extra = [n for n in metadata["metrics_gauges"] if n not in view.preset_names]
    fig = metrics_figure(samples, extra, view, load_table(run_dir))
    return [ax.get_title(loc="left") for ax in fig.axes if ax.get_gid() == PANEL_GID]


EXPECTED = {  # preset -> (stored name -> value every scrape carries, panels drawn)
    "vllm": (
        {"vllm:kv_cache_usage_perc": 0.5},
        ["vLLM: running + waiting", "vLLM: requests running", "vLLM: requests waiting",
         "vLLM: KV cache usage", "vLLM: prefix cache hit rate"],
    ),
    "sglang": (
        {"sglang:token_usage": 0.12, "sglang:cache_hit_rate": 0.4, "sglang:gen_throughput": 812.5},
        ["SGLang: running + waiting", "SGLang: requests running", "SGLang: requests queued",
         "SGLang: token (KV) usage", "SGLang: cache hit rate", "SGLang: generation"],
    ),
    "tgi": (
        {"tgi_batch_current_max_tokens": 4096.0},
        ["TGI: running + waiting", "TGI: batch size", "TGI: queue size", "TGI: batch max tokens"],
    ),
    "llamacpp": (
        {"llamacpp:kv_cache_usage_ratio": 0.375, "llamacpp:predicted_tokens_seconds": 48.5},
        ["llama.cpp: running + waiting", "llama.cpp: requests processing",
         "llama.cpp: requests deferred", "llama.cpp: KV cache usage", "llama.cpp: generation"],
    ),
    "dcgm": (
        {"DCGM_FI_DEV_GPU_UTIL": 80.0, "DCGM_FI_DEV_FB_USED": 140000.0,
         "DCGM_FI_DEV_POWER_USAGE": 1000.0},
        ["NVIDIA DCGM: GPU utilisation", "NVIDIA DCGM: GPU memory used", "NVIDIA DCGM: power"],
    ),
}  # fmt: skip


def sweep(qpsweep: Any, state: State, *flags: str) -> Any:
    with metrics_server(state) as srv:
        return qpsweep(
            "--endpoint", srv.base_url, "--model", "m", "--qps", "6", "--duration", "6",
            "--max-tokens", "5", "--metrics-url", f"{srv.base_url}/metrics", *flags,
        )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(EXPECTED))
def test_each_preset_end_to_end(qpsweep: Any, preset: str) -> None:
    """Auto-detected from the names served; stored per level; drawn; no warning (one client)."""
    run = sweep(qpsweep, State(preset))
    assert run.code == 0, run.err
    assert run.run_dir is not None
    stored, expected_panels = EXPECTED[preset]
    samples = [s for s in read_samples(run.run_dir / METRICS_FILE) if s["level"] == 0]
    assert len(samples) >= 5 and all(s["error"] is None for s in samples)
    for s in samples:
        assert s["values"].items() >= stored.items()
        assert detect_presets([s]) == (preset,)
    names = set(json.loads((run.run_dir / "metadata.json").read_text())["metrics_gauges"])
    assert names == set(ALL.names)  # auto asked for every preset's names
    (level,) = run.json("benchmark_qps_results.json")
    view = level["server_view"]
    assert view["presets"] == [preset]
    titles = panels(run.run_dir)
    for expected in expected_panels:
        assert sum(t.startswith(expected) for t in titles) == 1, (expected, titles, view)
    assert len(titles) == len(expected_panels)
    assert "another client or a proxy" not in run.out + (run.run_dir / "report.txt").read_text()
    if preset == "dcgm":
        assert view["queue"] is None and view["gauges"]["dcgm.gpu_util"]["mean"] == 80.0
        return
    queue = view["queue"]
    assert queue["n"] >= 5 and queue["disagrees"] is False and queue["excess_share"] < 0.5
    assert queue["server_running_waiting_mean"] > 0  # the server saw qpsweep's requests
    if preset == "vllm":
        assert view["hit_rates"] == {"vllm.prefix_cache_hit_rate": 0.25}


@pytest.mark.slow
def test_a_second_client_is_flagged(qpsweep: Any) -> None:
    """The server reports 8 running requests that qpsweep never sent: console, report, JSON,
    HTML and the plot all say so."""
    run = sweep(qpsweep, State("vllm", extra_running=8), "--metrics-preset", "vllm", "--plot")
    assert run.code == 0, run.err
    assert run.run_dir is not None
    (level,) = run.json("benchmark_qps_results.json")
    queue = level["server_view"]["queue"]
    warning = [line for line in run.out.splitlines() if line.startswith("WARNING: level 1")]
    assert len(warning) == 1 and "another client or a proxy" in warning[0], queue
    assert warning[0] in (run.run_dir / "report.txt").read_text()
    assert "another client or a proxy" in (run.run_dir / "report.html").read_text()
    assert queue["disagrees"] is True and queue["excess_share"] >= 0.5
    gap = queue["server_running_waiting_mean"] - queue["client_in_flight_mean"]
    assert 7.0 <= gap <= 9.0, queue  # the 8 requests of the other client, give or take
    assert json.loads((run.run_dir / "metadata.json").read_text())["metrics_preset"] == "vllm"
    assert (run.run_dir / "plots" / "server_metrics.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics-url", "http://127.0.0.1:9/metrics", "--metrics-preset", "vlm"],
         "--metrics-preset: unknown preset 'vlm' (known: auto, vllm, sglang, tgi, llamacpp, "
         "dcgm, none)"),
        (["--metrics-preset", "vllm"], "--metrics-preset needs --metrics-url"),
        (["--metrics-url", "http://127.0.0.1:9/metrics", "--metrics-preset", "none"],
         "--metrics-preset none needs at least one --metrics-gauge"),
    ],
)  # fmt: skip
def test_bad_preset_is_one_line(qpsweep: Any, args: list[str], message: str) -> None:
    run = qpsweep("--endpoint", "http://127.0.0.1:9", "--model", "m", *args)
    assert run.code == 2 and run.err.strip() == f"qpsweep: error: {message}", run.err
    assert run.run_dir is None


def test_samples_are_in_the_exposition_format() -> None:
    """Every non-comment line of each recorded sample is ``name[{labels}] value``."""
    for path in sorted(SAMPLES.glob("*.prom")):
        for line in path.read_text().splitlines():
            if line.startswith("#"):
                assert line.split()[1] in ("HELP", "TYPE"), line
                continue
            name = line.split("{")[0].split()[0]
            assert parse_prometheus(line, [name]) != {}, (path.name, line)


@pytest.mark.parametrize(
    ("counters", "rate"),
    [
        ([(1000, 500), (1100, 525), (1300, 575)], 0.25),
        ([(1000, 500), (1000, 500)], None),  # no query counted in the level
        ([(1000, 500), (10, 2)], None),  # a counter went back: the server restarted
        ([(1000, 500)], None),
    ],
)
def test_prefix_cache_hit_rate_per_level(counters: list[tuple[int, int]], rate: Any) -> None:
    samples = [
        {"t_s": float(i), "level": 0, "level_t_s": float(i),
         "values": {"vllm:prefix_cache_queries_total": q, "vllm:prefix_cache_hits_total": h}}
        for i, (q, h) in enumerate(counters)
    ]  # fmt: skip
    view = server_view(samples, None)
    assert view.presets == ("vllm",) and view.levels[0].queue is None  # no queue gauges
    assert view.levels[0].hit_rates == {"vllm.prefix_cache_hit_rate": rate}


@pytest.mark.slow
def test_a_page_without_known_metrics_is_noted(qpsweep: Any) -> None:
    with metrics_server(State("vllm")) as srv:
        run = qpsweep(
            "--endpoint", srv.base_url, "--model", "m", "--qps", "4", "--duration", "2",
            "--max-tokens", "5", "--metrics-url", f"{srv.base_url}/not-metrics",
        )  # fmt: skip
    assert run.code == 0, run.err
    assert run.run_dir is not None
    note = [line for line in run.out.splitlines() if line.startswith("NOTE: --metrics-url")]
    assert len(note) == 1 and "scrapes failed: see server_metrics.jsonl." in note[0], run.out
    samples = read_samples(run.run_dir / METRICS_FILE)
    assert samples and {s["error"] for s in samples} == {"HTTP 404"}
    (level,) = run.json("benchmark_qps_results.json")
    assert level["server_view"]["presets"] == [] and level["server_view"]["queue"] is None
    assert level["server_metrics"] == {}
