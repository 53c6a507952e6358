"""``RequestRecord``: what happened to one request, and its JSON Lines file.

All times are seconds since the start of the request's level (monotonic clock):
``scheduled_s`` is when the schedule said to send, ``sent_s`` when the request was actually
handed to the HTTP client (``sent_s - scheduled_s`` is the generator's own lag),
``first_token_s`` when the first content-bearing chunk arrived, ``done_s`` when the request
ended (success or failure), and ``chunk_s`` lists the arrival time of every content chunk.

A request succeeded when ``error_kind`` is ``None``; otherwise ``error_kind`` is exactly one of
``ERROR_KINDS`` and ``error`` is a short message.

With ``--retries``, ``attempts`` counts the tries of one request (1 without a retry); then
``first_error_kind`` and ``first_done_s`` are what the first try ended with and when, while
``sent_s`` stays the first try's send time (so TTFT and E2E include the failed tries and the
back-off, as the user of a retrying client would see them).  The three keys are written only
for requests that were retried.  ``RecordWriter`` appends one line per
record with one unbuffered write, so a killed run keeps every finished request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import FileIO
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

ERROR_KINDS = (
    "http_503",
    "http_429",
    "http_5xx",
    "http_4xx",
    "timeout_connect",
    "timeout_ttft",
    "timeout_total",
    "connection",
    "protocol",
    "empty",
    "interrupted",
)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request's outcome; see the module docstring for the time fields."""

    level: int
    level_qps: float
    seq: int
    prompt_id: int
    scheduled_s: float
    sent_s: float
    done_s: float
    first_token_s: float | None = None
    status: int | None = None
    error_kind: str | None = None
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int = 0
    token_counted_by: str | None = None
    chunk_s: tuple[float, ...] = field(default=())
    attempts: int = 1
    first_error_kind: str | None = None
    first_done_s: float | None = None

    @property
    def ok(self) -> bool:
        """True when the request succeeded."""
        return self.error_kind is None

    def to_json(self) -> str:
        """One JSON line (no newline): the fields in declaration order, the retry fields only
        when ``attempts > 1``, ``chunk_s`` last; times as ``%.6f`` (rounded to the
        microsecond: the same values as ``round(t, 6)``).  What ``json.loads`` reads back is
        what ``json.dumps`` of those keys would have written; the line is formatted by one
        ``%`` per record (the format cached per chunk count) because this is the generator's
        hot path."""
        chunk_s = self.chunk_s
        n = len(chunk_s)
        form = _FORMATS.get(n) or _format(n)
        retry = ""
        if self.attempts > 1:
            retry = _RETRY % (
                self.attempts,
                _opt_str(self.first_error_kind),
                _opt_time(self.first_done_s),
            )
        return form % (
            self.level,
            _number(self.level_qps),
            self.seq,
            self.prompt_id,
            self.scheduled_s,
            self.sent_s,
            _opt_time(self.first_token_s),
            self.done_s,
            _opt(self.status),
            _opt_str(self.error_kind),
            _opt_str(self.error),
            _opt(self.input_tokens),
            self.output_tokens,
            _opt_str(self.token_counted_by),
            retry,
            *chunk_s,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestRecord:
        """Inverse of ``to_json`` after ``json.loads``; unknown keys are ignored."""
        return cls(
            level=int(data["level"]),
            level_qps=float(data["level_qps"]),
            seq=int(data["seq"]),
            prompt_id=int(data["prompt_id"]),
            scheduled_s=float(data["scheduled_s"]),
            sent_s=float(data["sent_s"]),
            done_s=float(data["done_s"]),
            first_token_s=data.get("first_token_s"),
            status=data.get("status"),
            error_kind=data.get("error_kind"),
            error=data.get("error"),
            input_tokens=data.get("input_tokens"),
            output_tokens=int(data.get("output_tokens") or 0),
            token_counted_by=data.get("token_counted_by"),
            chunk_s=tuple(data.get("chunk_s") or ()),
            attempts=int(data.get("attempts") or 1),
            first_error_kind=data.get("first_error_kind"),
            first_done_s=data.get("first_done_s"),
        )


_HEAD = (
    '{"level":%d,"level_qps":%s,"seq":%d,"prompt_id":%d,"scheduled_s":%.6f,"sent_s":%.6f,'
    '"first_token_s":%s,"done_s":%.6f,"status":%s,"error_kind":%s,"error":%s,'
    '"input_tokens":%s,"output_tokens":%d,"token_counted_by":%s%s,"chunk_s":['
)
_RETRY = ',"attempts":%d,"first_error_kind":%s,"first_done_s":%s'
_FORMATS: dict[int, str] = {}  # line format per chunk count, up to _CACHED_FORMATS chunks
_CACHED_FORMATS = 256


def _format(n_chunks: int) -> str:
    form = _HEAD + ",".join(["%.6f"] * n_chunks) + "]}"
    if n_chunks <= _CACHED_FORMATS:
        _FORMATS[n_chunks] = form
    return form


def _number(value: float) -> str:
    """``value`` as json writes it (an int, as some callers pass, stays an int)."""
    return float.__repr__(value) if isinstance(value, float) else "%d" % value  # noqa: UP031


def _opt_time(value: float | None) -> str:
    return "null" if value is None else "%.6f" % value  # noqa: UP031


def _opt(value: int | None) -> str:
    return "null" if value is None else "%d" % value  # noqa: UP031


def _opt_str(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


class RecordWriter:
    """Appends records to a JSON Lines file, each line handed to the operating system at once
    (one unbuffered ``write`` per record: no buffer to flush, so a killed process loses no
    finished record)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: FileIO = path.open("ab", buffering=0)

    def write(self, record: RequestRecord) -> None:
        """Append ``record``'s line (ASCII: ``to_json`` escapes every other character)."""
        line = (record.to_json() + "\n").encode()
        written = self._file.write(line)
        if written != len(line):  # a short write (a full disk, a signal): write the rest
            rest = memoryview(line)[written:]
            while rest:
                rest = rest[self._file.write(rest) :]

    def close(self) -> None:
        """Close the file; further writes raise ``ValueError``."""
        self._file.close()


def read_records(path: Path) -> Iterator[RequestRecord]:
    """Records of a JSON Lines file in file order.

    A last line cut short by a killed process is skipped; any other bad line raises
    ``ValueError`` naming its line number.
    """
    with path.open(encoding="utf-8") as file:
        lines = file.read().split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield RequestRecord.from_dict(json.loads(line))
        except (ValueError, KeyError, TypeError) as err:
            if number == len(lines):  # unterminated last line: a write cut short
                return
            raise ValueError(f"{path}: line {number}: not a request record ({err})") from None
