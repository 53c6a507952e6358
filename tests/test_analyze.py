"""Level summaries from hand-made records with known answers."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qpsweep.analysis.summary import (
    LevelInfo,
    batch_width_s,
    plateau_end_s,
    summarize_level,
    summarize_levels,
)
from qpsweep.analysis.verdict import assess
from qpsweep.output.text import format_table
from qpsweep.records.record import RecordWriter, RequestRecord, read_records


def ok(seq: int, sent: float, ttft: float, gaps: list[float], lag: float = 0.0) -> RequestRecord:
    chunks = [sent + ttft]
    for gap in gaps:
        chunks.append(round(chunks[-1] + gap, 6))  # records keep microseconds
    return RequestRecord(
        level=0,
        level_qps=2.0,
        seq=seq,
        prompt_id=0,
        scheduled_s=sent - lag,
        sent_s=sent,
        done_s=chunks[-1],
        first_token_s=chunks[0],
        status=200,
        output_tokens=len(chunks),
        token_counted_by="chunks",
        chunk_s=tuple(chunks),
    )


def failed(seq: int, sent: float, kind: str, status: int | None) -> RequestRecord:
    return RequestRecord(
        level=0,
        level_qps=2.0,
        seq=seq,
        prompt_id=0,
        scheduled_s=sent,
        sent_s=sent,
        done_s=sent + 0.01,
        status=status,
        error_kind=kind,
        error="x",
    )


RECORDS = [
    ok(0, 0.0, 0.1, [0.02, 0.02, 0.02]),  # e2e 0.16, 4 tokens
    ok(1, 0.5, 0.3, [0.04, 0.04], lag=0.002),  # e2e 0.38, 3 tokens
    failed(2, 1.0, "http_503", 503),
    failed(3, 1.5, "timeout_ttft", None),
]


def test_definitions() -> None:
    s = summarize_level(LevelInfo(0, 2.0, 2.0, 4), RECORDS, (50.0,))
    assert (s.n_sent, s.n_ok, s.n_failed, s.success_pct) == (4, 2, 2, 50.0)
    assert s.offered_qps == pytest.approx(4 / 2.0)
    assert s.achieved_qps == pytest.approx(2 / 1.51)  # ok / last done_s
    assert s.ttft_s.get(50.0) == pytest.approx(0.2)
    assert s.e2e_s.max == pytest.approx(0.38)
    assert s.tpot_ms.n == 2 and s.tpot_ms.max == pytest.approx(40.0)  # (0.38-0.3)/(3-1)
    assert s.itl_ms.n == 5 and s.itl_ms.get(50.0) == pytest.approx(20.0)
    assert s.tokens_per_sec.max == pytest.approx(4 / 0.16)
    assert s.send_lag_ms.max == pytest.approx(2.0)
    assert dict(s.errors) == {"HTTP 503": 1, "Timeout (TTFT)": 1}
    assert dict(s.errors_by_kind) == {"http_503": 1, "timeout_ttft": 1}
    assert s.output_tok_per_s == pytest.approx(7 / 1.51)


def test_empty_level_has_no_numbers_but_a_row() -> None:
    (s,) = summarize_levels([LevelInfo(0, 5.0, 10.0, 0)], [], (50.0,))
    assert s.n_sent == 0 and s.ttft_s.n == 0 and s.ttft_s.get(50.0) is None
    table = format_table([s], (50.0,), assess([s], {}))
    assert "\n5            0.00         0.0          -" in table


def test_records_roundtrip_and_a_cut_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    writer = RecordWriter(path)
    for record in RECORDS:
        writer.write(record)
    writer.close()
    assert list(read_records(path)) == RECORDS
    with path.open("a") as f:
        f.write('{"level": 0, "seq": 9, "sen')  # a write cut short by a kill
    assert list(read_records(path)) == RECORDS
    path.write_text(path.read_text().replace('"seq":1,', '"seq":"x",', 1))
    with pytest.raises(ValueError, match="line 2: not a request record"):
        list(read_records(path))


_SHORT_WRITE = """
import resource, sys
from pathlib import Path
from qpsweep.records.record import RecordWriter, RequestRecord
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ
writer = RecordWriter(Path(sys.argv[1]))
record = RequestRecord(0, 1.0, 0, 0, 0.0, 0.0, 0.5, chunk_s=(0.25,) * 50)
try:
    writer.write(record)
    writer.write(record)  # the kernel takes only its first half
except OSError as err:
    print("OSError", err.errno)
"""


def test_a_short_write_of_a_record_is_continued_and_its_error_raised(tmp_path: Path) -> None:
    """A write the kernel takes only in part (here: the file size limit falls inside the
    second line) is continued, and the error of the continuation surfaces: a line is never
    cut short in silence.  The part the kernel took is cut off again, so the file ends with
    a whole line (issue 19: what was written stays readable)."""
    path = tmp_path / "requests.jsonl"
    line = RequestRecord(0, 1.0, 0, 0, 0.0, 0.0, 0.5, chunk_s=(0.25,) * 50).to_json() + "\n"
    limit = len(line) + len(line) // 2
    done = subprocess.run(
        [sys.executable, "-c", _SHORT_WRITE, str(path), str(limit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["OSError", str(errno.EFBIG)]
    assert path.read_text() == line  # the kernel took part of the second: it was cut off


def test_an_overloaded_level_keeps_its_plateau_through_the_drain() -> None:
    """Sends at 10/s for 10 s, a server finishing 5/s: at least 28 are in flight over
    [5, 10] (at 5 s: 51 sent, 23 done), so the plateau runs on to the 73rd end (14.9 s), when
    fewer than 28 remain; its rate is still the server's 5/s."""
    i = np.arange(100)
    sent, done = 0.1 * i, 0.2 * i + 0.5
    end_s = plateau_end_s(sent, done, 10.0)
    assert end_s == pytest.approx(14.9)
    assert ((done >= 5.0) & (done <= end_s)).sum() / (end_s - 5.0) == pytest.approx(5.0, rel=0.03)


def test_a_level_that_empties_keeps_the_steady_window() -> None:
    sent = np.arange(0.0, 10.0, 0.5)  # each done 0.1 s later: nothing in flight at 5 s
    assert plateau_end_s(sent, sent + 0.1, 10.0) == 10.0


@pytest.mark.parametrize(
    ("length_s", "service_s", "width_s", "batches"),
    [
        (4.0, 0.5, 1.0, 4),  # two service times a batch
        (4.0, None, 0.4, 10),  # no service time known: BATCHES
        (6.25, 0.5, 1.0, 6),  # a whole multiple of it; the last 0.25 s in no batch
        (40.0, 0.5, 4.0, 10),  # at most BATCHES: 8 service times a batch
        (4.0, 3.0, 2.0, 2),  # shorter than 4 service times: halves
    ],
)
def test_a_batch_is_a_whole_number_of_service_times(
    length_s: float, service_s: float | None, width_s: float, batches: int
) -> None:
    assert batch_width_s(length_s, service_s) == (pytest.approx(width_s), batches)


def test_a_deterministic_server_gets_a_tight_plateau_error() -> None:
    """8 slots x 0.5 s in step (waves of 8 every 0.5 s): batches of 1 s hold exactly two waves,
    so the batch-means error is the floor (one request over the batches' span), where 0.4 s
    batches (BATCHES over 4 s) would see 0, 8 or 16 and call the rate 16 +- 30%."""
    sent = np.arange(0.0, 8.0, 1 / 24)  # 24/s for 8 s, all kept waiting
    done = np.repeat(np.arange(0.75, 20.0, 0.5), 8)[: sent.size]
    records = [
        RequestRecord(0, 24.0, k, 0, float(s), float(s), float(d), first_token_s=float(s))
        for k, (s, d) in enumerate(zip(sent, done, strict=True))
    ]
    alone = [RequestRecord(0, 1.0, 0, 0, 0.0, 0.0, 0.5, first_token_s=0.0)]
    (light,) = summarize_levels([LevelInfo(0, 1.0, 8.0, 1)], alone, (50.0,))
    level = summarize_level(LevelInfo(1, 24.0, 8.0, sent.size), records, (50.0,), service_s=0.5)
    assert light.plateau_batches == 4  # its own median E2E, 0.5 s: 1 s batches in 4 s
    assert level.plateau_batches > 2 and level.plateau_s > 4.0
    assert level.plateau_ok / level.plateau_s == pytest.approx(16.0, rel=0.05)
    # its batches of 1 s are all alike: the floor, at least 1 / 2 of sqrt(8 slots) requests
    assert level.plateau_floor_se >= np.sqrt(8) / 2 / level.plateau_batches
