"""The columnar route gives what the per-record route gives, on an awkward run.

``read_table`` against ``read_records``, and the summaries, latency samples and HTML error
tables of a ``RecordTable`` against the per-record code in ``tests/reference.py``, on records
with failures of every kind, retries, no chunks, no status, odd messages, levels that
interleave, plus lines that ``to_json`` would not write (spaces, exponents, extra keys).
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest
import reference

from qpsweep.analysis.summary import LevelInfo, latency_samples, summarize_levels
from qpsweep.config.slo import Slo
from qpsweep.output.html import _errors
from qpsweep.records import record as record_file
from qpsweep.records.record import ERROR_KINDS, RequestRecord, read_records
from qpsweep.records.table import RecordTable, read_table

QPS = (5.0, 10.0, 20.0, 40.0)
MESSAGES = (
    "HTTP 503: Service Unavailable",
    'HTTP 500: {"detail": "boom \\\\ x"}',
    'refused, "quoted" [x]',
    "caf\u00e9 \u2603",
    "",
    "tab\there",
    "a" * 40,
    None,
)
ODD_LINES = (  # valid records that only json.loads reads
    '{"level": 0, "level_qps": 5, "seq": 1, "prompt_id": 1, "scheduled_s": 1, "sent_s": 1.5, '
    '"done_s": 2, "first_token_s": 1.7, "chunk_s": [1.7, 1.8], "status": 200, "x": 1}',
    '{"level":1,"level_qps":10.0,"seq":2,"prompt_id":3,"scheduled_s":5e-05,"sent_s":1e-06,'
    '"done_s":0.9,"error_kind":"connection","error":"\\u00e9"}',
    '{"level":2,"level_qps":20.0,"seq":3,"prompt_id":0,"scheduled_s":0.1,"sent_s":0.2,'
    '"first_token_s":0.3,"done_s":0.4,"status":200,"error_kind":null,"error":null,'
    '"input_tokens":null,"output_tokens":2,"token_counted_by":"chunks","chunk_s":[0.3,0.35]}',
)


def make_records(n: int, seed: int) -> list[RequestRecord]:
    """``n`` plausible and implausible records (see the module docstring)."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        level = rng.randrange(4) if rng.random() < 0.1 else k * 3 // n
        scheduled = rng.choice([0.0, 5e-05, 1e-06]) if rng.random() < 0.02 else rng.uniform(0, 3)
        if rng.random() < 0.1:  # chunk times that cross 10 s or 100 s: lists of mixed widths
            scheduled = rng.choice([9.7, 99.7, 999.7]) + rng.uniform(0, 0.3)
        sent = scheduled + rng.uniform(0, 0.002)
        retry = rng.random() < 0.1
        common = dict(
            level=level,
            level_qps=QPS[level],
            seq=k,
            prompt_id=rng.randrange(100),
            scheduled_s=scheduled,
            sent_s=sent,
            attempts=rng.choice([2, 3]) if retry else 1,
            first_error_kind=rng.choice([None, "http_429", "timeout_ttft"]) if retry else None,
            first_done_s=rng.choice([None, sent + 0.1]) if retry else None,
        )
        if rng.random() < 0.2:
            kind = rng.choice([*ERROR_KINDS, "weird", "a_kind_longer_than_16_bytes"])
            record = RequestRecord(
                **common,  # type: ignore[arg-type]
                done_s=sent + rng.uniform(0, 1),
                status=rng.choice([None, 0, 404, 429, 500, 503]),
                error_kind=kind,
                error=rng.choice(MESSAGES),
            )
        else:
            n_chunks = rng.choice([0, 1, 2, 5, 16])
            chunks = [sent + rng.lognormvariate(-2.5, 0.5)]
            for _ in range(n_chunks - 1):
                chunks.append(chunks[-1] + rng.uniform(0.001, 0.05))
            chunks = [round(t, 6) for t in chunks[:n_chunks]]
            record = RequestRecord(
                **common,  # type: ignore[arg-type]
                done_s=(chunks[-1] if chunks else sent) + rng.choice([0.0, 0.001]),
                first_token_s=chunks[0] if chunks else None,
                status=200,
                input_tokens=rng.choice([None, 10, 200]),
                output_tokens=rng.choice([0, 1, n_chunks, n_chunks + 3]),
                token_counted_by=rng.choice([None, "usage", "chunks"]),
                chunk_s=tuple(chunks),
            )
        out.append(record)
    return out


def write_lines(path: Path, records: list[RequestRecord], cut_last: bool = True) -> None:
    lines = [r.to_json() for r in records]
    for i, odd in enumerate(ODD_LINES):
        lines.insert(7 * i + 3, odd)
    lines[10:10] = ["", "   "]
    text = "\n".join(lines) + "\n"
    path.write_text(text + (lines[-1][:40] if cut_last else ""), encoding="utf-8")


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_file, "BLOCK_BYTES", 5000)  # many blocks, cut anywhere


@pytest.mark.parametrize(("seed", "block_bytes"), [(1, 5000), (2, 256)])  # 256: lines overflow
def test_read_table_holds_what_read_records_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, block_bytes: int
) -> None:
    monkeypatch.setattr(record_file, "BLOCK_BYTES", block_bytes)
    path = tmp_path / "requests.jsonl"
    records = make_records(600, seed)
    write_lines(path, records)
    expected = list(read_records(path))
    assert len(expected) == 600 + len(ODD_LINES)  # the cut-short last line is skipped
    lines = path.read_text().split("\n")[:-1]  # the last one is the cut-short line
    by_json = [RequestRecord.from_dict(json.loads(line)) for line in lines if line.strip()]
    assert expected == by_json  # msgspec reads what json.loads reads
    assert read_table(path).records() == expected


@pytest.mark.parametrize(
    "bad",
    [
        '{"level":0,"level_qps":01.0}',
        '{"level":0,"level_qps":5.0,"seq":1.2.3}',
        '{"level":0,"level_qps":5.0,"seq":1,"prompt_id":1,"scheduled_s":0.1,"sent_s":0.1,'
        '"first_token_s":null,"done_s":0.2,"status":null,"error_kind":"x","error":"\\q",'
        '"input_tokens":null,"output_tokens":0,"token_counted_by":null,"chunk_s":[]}',
        "not json",
    ],
)
def test_a_bad_line_fails_as_in_read_records(tmp_path: Path, small_blocks: None, bad: str) -> None:
    path = tmp_path / "requests.jsonl"
    write_lines(path, make_records(60, 3), cut_last=False)
    lines = path.read_text().split("\n")
    lines.insert(40, bad)
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError) as expected:
        list(read_records(path))
    with pytest.raises(ValueError) as got:
        read_table(path)
    assert str(got.value) == str(expected.value)
    assert "line 41:" in str(got.value)


def test_chunk_lists_and_numbers_off_the_fast_route(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    odd = [r.to_json() for r in make_records(60, 4) if len(r.chunk_s) > 1]
    odd[1] = odd[1].replace(',"chunk_s":[', ',"chunk_s":[0.5,')  # a chunk without 6 decimals
    odd[2] = odd[2].replace('"prompt_id":', '"prompt_id":-')
    odd[3] = odd[3].replace('"level_qps":', '"level_qps":1e1,"x":')
    odd[4] = odd[4].replace('"sent_s":', '"sent_s":12345678.5,"y":')
    path.write_text("\n".join(odd) + "\n")
    assert read_table(path).records() == list(read_records(path))


@pytest.mark.parametrize(("end", "raw_utf8"), [("\n", True), ("\r\n", False)])
def test_non_ascii_and_carriage_returns_read_as_text(
    tmp_path: Path, end: str, raw_utf8: bool
) -> None:
    path = tmp_path / "requests.jsonl"
    lines = [r.to_json() for r in make_records(20, 5)]
    if raw_utf8:
        lines[3] = lines[3].replace('"error":null', '"error":"caf\u00e9"')
    path.write_bytes((end.join(lines) + end).encode())
    assert read_table(path).records() == list(read_records(path))


@pytest.mark.parametrize("text", ["", "\n", "\n\n  \n", '{"lev'])
def test_files_without_a_record(tmp_path: Path, text: str) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text(text)
    assert read_table(path).records() == list(read_records(path)) == []


def test_table_round_trip_take_and_concat() -> None:
    records = make_records(200, 6)
    table = RecordTable.from_records(records)
    assert table.records() == records
    rows = np.array([5, 3, 3, 150])
    assert table.take(rows).records() == [records[i] for i in rows]
    halves = [table.take(np.arange(0, 77)), table.take(np.arange(77, 200))]
    assert RecordTable.concat(halves).records() == records
    assert RecordTable.from_records([]).records() == []


def test_summaries_are_those_of_the_per_record_code() -> None:
    records = make_records(3000, 7)
    infos = [LevelInfo(i, q, 3.0, 700, 3.0) for i, q in enumerate(QPS[:3])] + [
        LevelInfo(7, 80.0, 3.0, 0)  # a level without records
    ]
    slos = (Slo("ttft", 95.0, 0.15), Slo("tpot", 90.0, 0.02), Slo("e2e", 50.0, 0.5))
    table = RecordTable.from_records(records)
    for kwargs in ({}, {"slos": slos}):
        got = summarize_levels(infos, table, (50.0, 99.9), **kwargs)  # type: ignore[arg-type]
        want = reference.summarize_levels(infos, records, (50.0, 99.9), **kwargs)  # type: ignore[arg-type]
        assert got == want
    assert got[0].errors and got[0].n_retried and got[0].slo_met is not None
    samples, expected = latency_samples(table), reference.latency_samples(records)
    assert sorted(samples) == sorted(expected)
    for level, (ttft, e2e) in expected.items():
        assert np.array_equal(samples[level][0], ttft)
        assert np.array_equal(samples[level][1], e2e)


def test_html_error_tables_are_those_of_the_per_record_code() -> None:
    records = make_records(2000, 8)
    assert _errors(RecordTable.from_records(records)) == reference.errors_html(records)
    assert _errors([]) == reference.errors_html([])


def test_odd_lines_are_records() -> None:
    for line in ODD_LINES:
        RequestRecord.from_dict(json.loads(line))


def test_record_lines_read_back_as_what_json_dumps_wrote() -> None:
    """``to_json`` formats its line directly; ``json.loads`` must read from it the keys, in
    order, and the values (floats exactly) of the ``json.dumps`` line it replaced, for every
    kind of record, and for numbers passed as ints or numpy floats."""
    records = make_records(3000, seed=5)
    odd = RequestRecord(
        level=0, level_qps=5, seq=1, prompt_id=2, scheduled_s=0, sent_s=np.float64(0.25),
        done_s=1, first_token_s=np.float64(0.5), status=200, error="\u2603 \"x\"\n",
        chunk_s=(0.5, -1e-7), attempts=2, first_done_s=0, first_error_kind="http_503",
    )  # fmt: skip
    resent = dataclasses.replace(records[0], resent=1)  # written again on a new connection
    turn = dataclasses.replace(records[1], session=7, turn=2, history_tokens=140)  # a session's
    both = dataclasses.replace(resent, session=0, turn=1, history_tokens=0)
    for r in [*records, odd, resent, turn, both]:
        mine, theirs = json.loads(r.to_json()), json.loads(reference.record_json(r))
        assert list(mine.items()) == list(theirs.items())
        if r is not odd:  # (its ints are read back as floats)
            assert RequestRecord.from_dict(mine).to_json() == r.to_json()
