"""``--arrival trace --trace FILE``: reading the three formats, the scaled schedule, the prompts
built to the trace's token counts, bad traces, and sweeps of the simulator."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from qpsweep.config.files import resolve
from qpsweep.datasets.prompts import load_prompts, prompt_order
from qpsweep.datasets.traces import load_trace, trace_prompts
from qpsweep.errors import DatasetError
from qpsweep.load.schedule import arrival_offsets_s, trace_passes
from qpsweep.sim.server import SimConfig

from conftest import REPO, sim_process
from schema_check import run_problems

SAMPLES = REPO / "datasets"
MOONCAKE = SAMPLES / "trace_mooncake.jsonl"
AZURE = SAMPLES / "trace_azure.csv"
PLAIN = SAMPLES / "trace_plain.csv"


def test_the_shipped_samples_read_as_their_formats() -> None:
    mooncake, azure, plain = load_trace(MOONCAKE), load_trace(AZURE), load_trace(PLAIN)
    assert (mooncake.format, azure.format, plain.format) == ("mooncake", "azure", "plain")
    assert mooncake.n_requests == azure.n_requests == plain.n_requests == 40
    first = json.loads(MOONCAKE.read_text().splitlines()[-1])
    assert mooncake.span_s == first["timestamp"] / 1000  # milliseconds, from the first row
    assert mooncake.mean_rate_qps == pytest.approx(39 / mooncake.span_s)
    assert mooncake.input_tokens is not None and mooncake.output_tokens is not None
    assert int(mooncake.input_tokens[-1]) == first["input_length"]
    assert mooncake.hash_ids is not None and mooncake.hash_ids[-1] == tuple(first["hash_ids"])
    assert plain.input_tokens is None and plain.output_tokens is None and plain.hash_ids is None
    assert mooncake.sha256 == hashlib.sha256(MOONCAKE.read_bytes()).hexdigest()


def test_azure_times_of_2023_and_2024_parse_to_seconds(tmp_path: Path) -> None:
    path = tmp_path / "azure.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2024-05-10 00:00:00+00:00,10,1\n"
        "2024-05-10 00:00:00.5000000+00:00,20,2\n"
        "2024-05-10 02:00:01.25+02:00,30,0\n"  # 00:00:01.25 UTC
        "2024-05-10T00:00:02Z,40,4\n"
    )
    trace = load_trace(path)
    assert trace.times_s.tolist() == [0.0, 0.5, 1.25, 2.0]
    assert trace.input_tokens is not None and trace.input_tokens.tolist() == [10, 20, 30, 40]


def test_a_plain_jsonl_trace_takes_seconds_and_optional_counts(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_text('{"time": 100.0, "output_tokens": 7}\n\n{"time": 100.5, "output_tokens": 9}\n')
    trace = load_trace(path)
    assert trace.format == "plain" and trace.times_s.tolist() == [0.0, 0.5]
    assert trace.input_tokens is None
    assert trace.output_tokens is not None and trace.output_tokens.tolist() == [7, 9]
    dataset = load_prompts(REPO / "datasets" / "conversations.json")
    prompts = trace_prompts(trace, dataset, seed=3)  # the dataset's text, the trace's lengths
    assert prompts is not None and len(prompts) == 2
    order = prompt_order(len(dataset), 3)
    assert [p.messages for p in prompts] == [dataset[order[0]].messages, dataset[order[1]].messages]
    assert [p.max_tokens for p in prompts] == [7, 9] and [p.id for p in prompts] == [0, 1]


def test_the_schedule_scales_the_gaps_to_the_level_rate_and_wraps_around() -> None:
    times = load_trace(MOONCAKE).times_s
    n, rate = len(times), (len(times) - 1) / times[-1]
    period_s = times[-1] * n / (n - 1)
    qps = 2 * rate
    duration_s = 3 * period_s / 2  # three passes of the trace at twice its rate
    offsets = arrival_offsets_s(qps, duration_s, "trace", trace_s=times)
    assert trace_passes(times, qps, duration_s) == pytest.approx(3.0)
    assert len(offsets) == 3 * n  # the mean rate is the level's QPS over whole passes
    np.testing.assert_allclose(offsets[:n], times / 2)  # every gap halved: bursts kept
    np.testing.assert_allclose(offsets[n : 2 * n] - offsets[:n], period_s / 2)
    assert np.all(np.diff(offsets) >= 0) and offsets[-1] < duration_s
    part = arrival_offsets_s(qps, period_s / 8, "trace", trace_s=times)  # a quarter pass
    assert np.array_equal(part, offsets[: len(part)]) and len(part) < n


def test_prompts_have_the_trace_lengths_and_share_its_prefixes() -> None:
    trace = load_trace(MOONCAKE)
    prompts = trace_prompts(trace, None, seed=0)
    assert prompts is not None and len(prompts) == trace.n_requests
    assert trace.input_tokens is not None and trace.output_tokens is not None
    assert trace.hash_ids is not None
    for row, prompt in enumerate(prompts):
        ((role, text),) = prompt.messages
        assert role == "user" and len(text.split()) == trace.input_tokens[row]
        assert prompt.id == row and prompt.max_tokens == max(int(trace.output_tokens[row]), 1)
    shared = [r for r in range(1, trace.n_requests) if trace.hash_ids[r][0] == trace.hash_ids[0][0]]
    assert shared  # the sample shares its first block between rows
    words = [p.messages[0][1].split() for p in prompts]
    for r in shared:
        assert words[r][:512] == words[0][:512]
        assert words[r][512:520] != words[0][512:520]
    alone = [r for r in range(trace.n_requests) if trace.hash_ids[r][0] not in trace.hash_ids[0]]
    assert all(words[r][:512] != words[0][:512] for r in alone)
    shipped = pickle.loads(pickle.dumps(prompts))  # as --workers hands them to a process
    assert list(shipped) == list(prompts)
    again = trace_prompts(trace, None, seed=0)
    assert again is not None and list(again) == list(prompts)  # seeded: the same every run
    assert again[-1] == prompts[len(prompts) - 1] and again[1:3] == list(prompts)[1:3]


def test_a_trace_of_times_only_keeps_the_dataset_and_a_scenario_can_name_it(
    tmp_path: Path,
) -> None:
    assert trace_prompts(load_trace(PLAIN), None, seed=0) is None
    config = tmp_path / "s.yaml"
    config.write_text(
        f"scenarios:\n  replay:\n    arrival: trace\n    trace: {MOONCAKE}\n    qps: [1x, 2.5x]\n"
    )
    defaults = resolve([str(config)], None, "replay")
    assert defaults["arrival"] == "trace" and defaults["trace"] == str(MOONCAKE)
    assert defaults["qps"] == "1x,2.5x"


BAD = [
    ("unsorted", '{"timestamp": 0, "input_length": 5, "output_length": 2}\n'
     '{"timestamp": 900, "input_length": 5, "output_length": 2}\n'
     '{"timestamp": 800, "input_length": 5, "output_length": 2}\n',
     "line 3: timestamp: 800 is earlier than the line before"),
    ("negative", "time_s\n-1\n2\n", "line 2: time_s: '-1' is negative"),
    ("missing", '{"timestamp": 0, "input_length": 5, "output_length": 2}\n'
     '{"timestamp": 10, "output_length": 2}\n', "line 2: input_length: missing"),
    ("text", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.1,12,3\n"
     "2023-11-16 18:15:47.1,twelve,3\n", "line 3: ContextTokens: 'twelve' is not a number"),
    ("date", "TIMESTAMP,ContextTokens,GeneratedTokens\n16/11/2023 18:15,12,3\n",
     "line 2: TIMESTAMP: '16/11/2023 18:15' is not a date and time"),
    ("column", "when,input_tokens\n1,2\n2,3\n", "line 2: no time column"),
    ("empty", "", "is empty"),
    ("header", "time_s\n", "a header and no rows"),
    ("one", "time_s\n3\n", "has 1 request"),
    ("fraction", "time_s,input_tokens\n1,2.5\n2,3\n", "input_tokens: '2.5' must be a whole"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_trace_is_one_line_naming_file_line_and_field_before_any_traffic(
    qpsweep, tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / f"{name}.trace"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_trace(path)
    run = qpsweep(
        "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--arrival", "trace",
        "--trace", str(path), "--qps", "1x", "--duration", "1", dataset=None,
    )  # fmt: skip
    assert run.code == 2 and run.run_dir is None
    lines = run.err.strip().splitlines()
    assert lines == [f"qpsweep: error: {path}: " + lines[0].split(f"{path}: ", 1)[1]]
    assert message.split(": ", 1)[-1] in lines[0]


def test_an_endless_device_is_refused_after_its_first_mib() -> None:
    """``/dev/zero`` as a trace: read as datasets are (``read_text_file``), refused as binary
    after 1 MiB instead of filling memory up to the size limit."""
    with pytest.raises(DatasetError, match="/dev/zero: is a binary file, not CSV or JSON Lines"):
        load_trace(Path("/dev/zero"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--qps", "2x", "--dataset", str(PLAIN)],
            "--qps: '2x': a multiple (Nx) of the trace's mean rate needs",
        ),
        (["--arrival", "trace", "--qps", "1"], "--arrival trace needs --trace FILE"),
        (["--trace", str(MOONCAKE), "--dataset", str(PLAIN)], "--trace: only with --arrival trace"),
        (["--arrival", "trace", "--trace", str(PLAIN)], "--dataset is required (the trace"),
        (["--arrival", "trace", "--trace", str(MOONCAKE), "--qps", "0x"], "--qps: '0'"),
    ],
)
def test_trace_flags_that_do_not_fit_are_refused(qpsweep, args: list[str], message: str) -> None:
    run = qpsweep("--endpoint", "http://127.0.0.1:9", "--model", "m", *args, dataset=None)
    assert run.code == 2 and run.run_dir is None
    assert message in run.err and len(run.err.strip().splitlines()) <= 2  # the trace's line


@pytest.mark.slow
def test_a_mooncake_trace_replays_against_the_simulator(qpsweep) -> None:
    """Two levels (1x and 2x): each request is the trace row of its place in the schedule,
    with the row's input length (the simulator counts words) and output length."""
    trace = load_trace(MOONCAKE)
    assert trace.input_tokens is not None and trace.output_tokens is not None
    duration_s = 1.5 * trace.span_s / 2  # 2x: one pass and a half, so the trace wraps
    with sim_process(SimConfig(prefill_ms_per_token=0.0, decode_ms=1.0)) as url:
        run = qpsweep(
            "--endpoint", url, "--model", "qpsweep-sim", "--arrival", "trace",
            "--trace", str(MOONCAKE), "--qps", "1x,2x", "--duration", f"{duration_s:g}",
            dataset=None,
        )  # fmt: skip
    assert run.code == 0, run.err
    meta = run.json("metadata.json")
    info = meta["trace"]
    assert info["sha256"] == hashlib.sha256(MOONCAKE.read_bytes()).hexdigest()
    assert info["format"] == "mooncake" and info["requests"] == 40
    assert info["mean_rate_qps"] == pytest.approx(trace.mean_rate_qps)
    assert meta["dataset"] == str(MOONCAKE) and meta["arrival"] == "trace"
    rate = trace.mean_rate_qps
    levels = meta["levels"]
    assert [lv["qps_target"] for lv in levels] == [float(f"{rate:.4g}"), float(f"{2 * rate:.4g}")]
    assert levels[1]["trace_passes"] > 1 > levels[0]["trace_passes"]
    records = sorted(run.records(), key=lambda r: (r["level"], r["seq"]))
    for level in (0, 1):
        mine = [r for r in records if r["level"] == level]
        qps = levels[level]["qps_target"]
        expected = arrival_offsets_s(qps, duration_s, "trace", trace_s=trace.times_s)
        assert len(mine) == len(expected)
        np.testing.assert_allclose([r["scheduled_s"] for r in mine], expected, atol=1e-6)
        for r in mine:
            row = r["seq"] % trace.n_requests
            assert r["prompt_id"] == row and r["error_kind"] is None
            assert r["input_tokens"] == trace.input_tokens[row]
            assert r["output_tokens"] == trace.output_tokens[row]
    assert len([r for r in records if r["level"] == 1]) > trace.n_requests  # wrapped
    assert "(1x)" in run.out and "(2x)" in run.out
    assert "trace multiples:      saturation" in run.out and "today's traffic" in run.out
    assert run.run_dir is not None
    assert "today&#x27;s traffic" in (run.run_dir / "report.html").read_text()
    saturation = run.json("saturation.json")
    assert saturation["trace_mean_rate_qps"] == pytest.approx(rate)
    assert "wraps around" in run.err and "the first" in run.err
    assert run_problems(run.run_dir) == []  # the trace's keys are in the schemas
    diff = qpsweep("diff", str(run.run_dir), str(run.run_dir), "--no-plot", dataset=None)
    assert diff.code == 0, diff.err
    assert "recommended_x_trace" in diff.out and "max_sustainable_x_trace" in diff.out


@pytest.mark.slow
def test_a_trace_of_times_sends_the_dataset(qpsweep) -> None:
    """A plain trace of times only: the dataset's prompts at the trace's arrivals."""
    trace = load_trace(PLAIN)
    with sim_process(SimConfig(prefill_ms_per_token=0.0, decode_ms=1.0)) as url:
        run = qpsweep(
            "--endpoint", url, "--model", "qpsweep-sim", "--arrival", "trace",
            "--trace", str(PLAIN), "--qps", "3x", "--duration", "3", "--max-tokens", "4",
        )  # fmt: skip
    assert run.code == 0, run.err
    records = sorted(run.records(), key=lambda r: r["seq"])
    qps = float(f"{3 * trace.mean_rate_qps:.4g}")
    expected = arrival_offsets_s(qps, 3.0, "trace", trace_s=trace.times_s)
    assert [r["seq"] for r in records] == list(range(len(expected)))
    np.testing.assert_allclose([r["scheduled_s"] for r in records], expected, atol=1e-6)
    assert all(r["error_kind"] is None and r["output_tokens"] == 4 for r in records)
    order = prompt_order(40, 0)  # conversations.json's 40 samples, in the seeded order
    assert [r["prompt_id"] for r in records] == [int(order[k % 40]) for k in range(len(records))]
    meta = run.json("metadata.json")
    assert meta["trace"]["format"] == "plain" and meta["dataset"].endswith("conversations.json")
    assert "(3x)" in run.out


@pytest.mark.slow
def test_an_azure_trace_is_split_across_workers(qpsweep) -> None:
    """Two worker processes share the level as any schedule: each request keeps its row."""
    trace = load_trace(AZURE)
    assert trace.input_tokens is not None and trace.output_tokens is not None
    with sim_process(SimConfig(prefill_ms_per_token=0.0, decode_ms=1.0)) as url:
        run = qpsweep(
            "--endpoint", url, "--model", "qpsweep-sim", "--arrival", "trace",
            "--trace", str(AZURE), "--qps", "2x", "--duration", "8", "--workers", "2",
            dataset=None,
        )  # fmt: skip
    assert run.code == 0, run.err
    records = sorted(run.records(), key=lambda r: r["seq"])
    qps = float(f"{2 * trace.mean_rate_qps:.4g}")
    expected = arrival_offsets_s(qps, 8.0, "trace", trace_s=trace.times_s)
    assert [r["seq"] for r in records] == list(range(len(expected)))
    np.testing.assert_allclose([r["scheduled_s"] for r in records], expected, atol=1e-6)
    for r in records:
        row = r["seq"] % trace.n_requests
        assert r["prompt_id"] == row and r["error_kind"] is None
        assert r["input_tokens"] == trace.input_tokens[row]
        assert r["output_tokens"] == trace.output_tokens[row]
    meta = run.json("metadata.json")
    assert meta["trace"]["format"] == "azure" and meta["levels"][0]["n_sent_by_worker"]
