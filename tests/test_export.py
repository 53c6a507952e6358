"""CSV exports from real short runs against the scripted server on 127.0.0.1."""

from __future__ import annotations

import csv
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from qpsweep.errors import RunDirError
from qpsweep.output import export
from qpsweep.output.export import append_summary, write_csvs
from qpsweep.output.rebuild import Analysis, analyze_run

from servers import ServerThread

LOAD = ("--model", "m", "--qps", "5,10", "--duration", "1", "--arrival", "constant")
MESSAGE = 'bad, "very"\nbad'  # a comma, a double quote and a newline

REQUEST_HEAD = [
    *("level", "level_qps", "seq", "prompt_id", "scheduled_s", "sent_s", "send_lag_ms"),
    *("first_token_s", "done_s", "ttft_s", "e2e_s", "status", "error_kind", "error"),
    *("input_tokens", "output_tokens", "token_counted_by", "n_chunks"),
    *("attempts", "first_error_kind", "first_try_s"),
    *("ttft_visible_s", "reasoning_tokens", "cached_tokens"),
]
LEVEL_HEAD = [
    *("index", "qps_target", "state", "offered_qps", "achieved_qps", "n_sent", "n_ok"),
    *("n_failed", "success_pct", "ttft_p50_s", "ttft_p95_s", "ttft_p99_s", "e2e_p50_s"),
    *("e2e_p95_s", "e2e_p99_s", "itl_p50_ms", "itl_p95_ms", "tpot_p50_ms"),
    *("tokens_per_sec_p50", "send_lag_p99_ms", "completion_ratio", "queue_growth"),
    *("n_retried", "first_try_error_rate"),
    *("ttft_visible_p50_s", "ttft_visible_p95_s", "reasoning_tokens_mean", "cached_share"),
]
SUMMARY_HEAD = [
    *("run_dir", "timestamp", "endpoint", "model", "dataset", "qps_target", "offered_qps"),
    *("state", "success_pct", "ttft_p50_s", "ttft_p95_s", "e2e_p50_s", "e2e_p95_s"),
    *("tokens_per_sec_p50", "saturation_qps", "recommended_qps"),
]


def sweep(qpsweep, url: str) -> tuple[Path, Analysis]:  # type: ignore[no-untyped-def]
    run = qpsweep("--endpoint", url, *LOAD)
    assert run.code == 0, run.err
    assert run.run_dir is not None
    return run.run_dir, analyze_run(run.run_dir)


def read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader)


def cell(value: float | None, digits: int) -> str:
    """What a CSV cell holds for ``value`` rounded to ``digits`` (empty for ``None``)."""
    return "" if value is None else str(round(value, digits))


@pytest.mark.slow
def test_requests_and_levels_match_the_analysis(qpsweep, server: ServerThread) -> None:
    run_dir, analysis = sweep(qpsweep, server.url("ok", ttft_ms=20, tokens=4))
    paths = write_csvs(run_dir, analysis)
    assert paths == [run_dir / "requests.csv", run_dir / "levels.csv"]
    assert not list(run_dir.glob("*.tmp"))

    head, rows = read(run_dir / "requests.csv")
    assert head == REQUEST_HEAD
    # 5 + 10 requests, constant arrivals (more if a client-limited level was run again)
    assert len(rows) == len(analysis.records) == sum(s.n_sent for s in analysis.summaries) >= 15
    for row, r in zip(rows, analysis.records, strict=True):
        assert r.ok and r.first_token_s is not None
        assert (row["level"], row["seq"], row["status"]) == (str(r.level), str(r.seq), "200")
        assert row["sent_s"] == cell(r.sent_s, 6) and row["done_s"] == cell(r.done_s, 6)
        assert row["ttft_s"] == cell(r.first_token_s - r.sent_s, 6)
        assert row["e2e_s"] == cell(r.done_s - r.sent_s, 6)
        assert row["send_lag_ms"] == cell((r.sent_s - r.scheduled_s) * 1000, 3)
        assert row["n_chunks"] == row["output_tokens"] == "4"
        assert row["error_kind"] == row["error"] == ""  # None: an empty cell

    head, rows = read(run_dir / "levels.csv")
    assert head == LEVEL_HEAD  # no errors_<kind> column: the run had no failure
    assert len(rows) == len(analysis.summaries) >= 2
    states = {st.index: st.state for st in analysis.verdict.levels}
    for row, s in zip(rows, analysis.summaries, strict=True):
        assert (row["index"], row["qps_target"], row["state"]) == (
            str(s.index),
            str(s.qps_target),
            states[s.index],
        )
        assert (row["n_sent"], row["n_ok"], row["n_failed"]) == (str(s.n_sent), str(s.n_ok), "0")
        assert row["offered_qps"] == cell(s.offered_qps, 4)
        assert row["ttft_p95_s"] == cell(s.ttft_s.get(95.0), 6) != ""
        assert row["e2e_p99_s"] == cell(s.e2e_s.get(99.0), 6) != ""
        assert row["itl_p50_ms"] == cell(s.itl_ms.get(50.0), 3) != ""
        assert row["tokens_per_sec_p50"] == cell(s.tokens_per_sec.get(50.0), 3) != ""
        assert row["send_lag_p99_ms"] == cell(s.send_lag_ms.get(99.0), 3) != ""
    assert {row["qps_target"] for row in rows} == {"5.0", "10.0"}


def test_server_message_round_trips_and_errors_get_columns(qpsweep, server: ServerThread) -> None:
    url = server.url("status", code=503, message=quote(MESSAGE, safe=""))
    run_dir, analysis = sweep(qpsweep, url)
    write_csvs(run_dir, analysis)

    _, rows = read(run_dir / "requests.csv")
    # a failing level stops the sweep
    assert len(rows) == len(analysis.records) == sum(s.n_sent for s in analysis.summaries)
    for row, r in zip(rows, analysis.records, strict=True):
        assert r.error is not None and MESSAGE in r.error
        assert row["error"] == r.error  # written as-is, quoted by the csv module
        assert (row["error_kind"], row["status"], row["ttft_s"]) == ("http_503", "503", "")
        assert row["n_chunks"] == "0"

    head, rows = read(run_dir / "levels.csv")
    assert head == [*LEVEL_HEAD, "errors_http_503"]
    assert len(rows) == len(analysis.summaries) >= 1
    for row, s in zip(rows, analysis.summaries, strict=True):
        assert row["errors_http_503"] == row["n_failed"] == str(s.n_sent)
        assert row["success_pct"] == "0.0"
        assert row["ttft_p50_s"] == row["e2e_p95_s"] == row["tpot_p50_ms"] == ""


@pytest.mark.slow
def test_summary_appends_runs_under_one_header(qpsweep, server: ServerThread) -> None:
    runs = [
        sweep(qpsweep, server.url("ok", ttft_ms=20, tokens=4)),
        sweep(qpsweep, server.url("status", code=503)),
    ]
    results = runs[0][0].parent
    for run_dir, analysis in runs:
        assert append_summary(results, run_dir, analysis) == results / "benchmark_summary.csv"

    text = (results / "benchmark_summary.csv").read_text(encoding="utf-8")
    assert text.count("run_dir,") == 1
    head, rows = read(results / "benchmark_summary.csv")
    assert head == SUMMARY_HEAD
    n_first = len(runs[0][1].summaries)
    n_second = len(runs[1][1].summaries)
    assert [row["run_dir"] for row in rows] == [runs[0][0].name] * n_first + [
        runs[1][0].name
    ] * n_second
    for (_, analysis), pair in zip(runs, (rows[:n_first], rows[n_first:]), strict=True):
        meta, verdict = analysis.metadata, analysis.verdict
        states = {st.index: st.state for st in verdict.levels}
        for row, s in zip(pair, analysis.summaries, strict=True):
            assert row["state"] == states[s.index]
            assert row["timestamp"] == meta.timestamp and row["model"] == "m"
            assert row["endpoint"] == meta.endpoint and row["dataset"] == meta.dataset
            assert row["qps_target"] == str(s.qps_target)
            assert row["ttft_p95_s"] == cell(s.ttft_s.get(95.0), 6)
            assert row["success_pct"] == cell(s.success_pct, 3)
            assert row["saturation_qps"] == cell(verdict.saturation_qps, 4)
            assert row["recommended_qps"] == cell(verdict.recommended_qps, 4)
    assert rows[n_first]["state"] == "saturated" and rows[n_first]["success_pct"] == "0.0"
    assert rows[n_first]["ttft_p95_s"] == ""  # no successful request: no TTFT

    # Concurrent appenders: every run's rows arrive whole, the header stays single.
    threads = [
        threading.Thread(target=append_summary, args=(results, *runs[i % 2])) for i in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    head, rows = read(results / "benchmark_summary.csv")
    assert head == SUMMARY_HEAD and len(rows) == (n_first + n_second) * 9
    assert all(len(row) == len(SUMMARY_HEAD) and None not in row for row in rows)
    assert all(row["run_dir"] in {runs[0][0].name, runs[1][0].name} for row in rows)


@pytest.mark.slow
def test_summary_header_written_once_and_checked(qpsweep, server, tmp_path: Path) -> None:
    run_dir, analysis = sweep(qpsweep, server.url("ok", ttft_ms=20, tokens=4))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "benchmark_summary.csv").touch()  # an empty file gets the header
    head, rows = read(append_summary(empty, run_dir, analysis))
    assert head == SUMMARY_HEAD and len(rows) == len(analysis.summaries)

    other = tmp_path / "other"
    other.mkdir()
    path = other / "benchmark_summary.csv"
    path.write_text("run_dir,timestamp,model\r\nx,y,z\r\n", encoding="utf-8")
    with pytest.raises(RunDirError) as err:
        append_summary(other, run_dir, analysis)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == b"run_dir,timestamp,model\r\nx,y,z\r\n"


def test_docstring_names_every_fixed_column() -> None:
    doc = export.__doc__ or ""
    words = set(doc.replace(",", " ").replace(".", " ").replace("(", " ").split())
    for name in {*REQUEST_HEAD, *LEVEL_HEAD, *SUMMARY_HEAD}:
        assert name in words, name
