"""``requests.npz``: the columns kept beside ``requests.jsonl`` are read only while current."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from test_record_table import make_records

from qpsweep.records.columns import COLUMNS_FILE, load_columns
from qpsweep.records.record import RecordWriter, RequestRecord, read_records
from qpsweep.records.run_files import REQUESTS_FILE, keep_columns, load_table, records_stamp


def _write(run_dir: Path, records: list[RequestRecord]) -> None:
    writer = RecordWriter(run_dir / REQUESTS_FILE)
    for record in records:
        writer.write(record)
    writer.close()


def _odd_labels(records: list[RequestRecord]) -> list[RequestRecord]:
    """Error texts that numpy's fixed-width strings would change: a trailing NUL, a lone
    surrogate read back from a file, an empty one."""
    texts = ["ends in NUL\x00", "caf\u00e9 \u2603", ""]
    out = list(records)
    for i, text in enumerate(texts):
        out[i] = dataclasses.replace(out[i], error_kind="protocol", error=text)
    return out


def test_the_columns_are_the_table_while_the_file_is_unchanged(tmp_path: Path) -> None:
    records = _odd_labels(make_records(300, 11))
    _write(tmp_path, records)
    stamp = records_stamp(tmp_path)
    table = load_table(tmp_path)
    keep_columns(tmp_path, table, stamp)
    saved = load_columns(tmp_path / COLUMNS_FILE, tmp_path / REQUESTS_FILE)
    assert saved is not None and saved.records() == table.records()
    assert load_table(tmp_path).records() == table.records()

    _write(tmp_path, records[:1])  # the file grows: the columns are stale
    assert load_columns(tmp_path / COLUMNS_FILE, tmp_path / REQUESTS_FILE) is None
    assert len(load_table(tmp_path)) == len(records) + 1


def test_a_column_without_names_is_kept_too(tmp_path: Path) -> None:
    records = [
        dataclasses.replace(r, attempts=1, first_error_kind=None, first_done_s=None)
        for r in make_records(40, 14)
    ]
    _write(tmp_path, records)
    table = load_table(tmp_path)
    assert table.first_error_kind.names == ()
    keep_columns(tmp_path, table, records_stamp(tmp_path))
    saved = load_columns(tmp_path / COLUMNS_FILE, tmp_path / REQUESTS_FILE)
    assert saved is not None and saved.records() == table.records()


def test_columns_of_a_file_changed_while_read_are_not_kept(tmp_path: Path) -> None:
    records = make_records(50, 12)
    _write(tmp_path, records)
    stamp = records_stamp(tmp_path)
    table = load_table(tmp_path)
    _write(tmp_path, records[:1])  # a run still going appended a record meanwhile
    keep_columns(tmp_path, table, stamp)
    assert not (tmp_path / COLUMNS_FILE).exists()


def test_a_broken_columns_file_is_ignored(tmp_path: Path) -> None:
    records = make_records(50, 13)
    _write(tmp_path, records)
    keep_columns(tmp_path, load_table(tmp_path), records_stamp(tmp_path))
    data = (tmp_path / COLUMNS_FILE).read_bytes()
    (tmp_path / COLUMNS_FILE).write_bytes(data[: len(data) // 2])
    assert load_table(tmp_path).records() == list(read_records(tmp_path / REQUESTS_FILE))
