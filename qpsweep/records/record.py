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
back-off, as the user of a retrying client would see them).  ``resent`` counts the times the
request was written again on a new connection because the reused keep-alive connection it was
written on had been closed by the server before any byte of the response (the client's race
with an idle close, no failure and no retry: see ``qpsweep.http.client``).  These four keys
are written only for requests that were retried or resent.

Reasoning models and prefix caches (written only for a request that has one of them):
``first_reasoning_s`` is when the first reasoning chunk arrived (``delta.reasoning_content``
or ``delta.reasoning``) and ``first_visible_s`` when the first visible one did (content, text
or tool calls), both ``None`` unless the stream carried reasoning (without reasoning the first
visible chunk is the first chunk, ``first_token_s``); ``reasoning_tokens`` is the server's
``usage.completion_tokens_details.reasoning_tokens`` and ``cached_tokens`` its
``usage.prompt_tokens_details.cached_tokens``, ``None`` when not reported.  Reasoning chunks
are content chunks: they are in ``chunk_s`` and in ``output_tokens``.

``RecordWriter`` appends one line per
record with one unbuffered write, so a killed run keeps every finished request.

With ``--multi-turn`` each request is one turn of a session: ``session`` numbers the session in
its level (in start order), ``turn`` is the turn's 1-based index in it, ``history_tokens`` the
words of the history sent with it (``qpsweep.datasets.sessions``), and ``scheduled_s`` is the
turn's own release time: the session's start for turn 1, the previous turn's ``done_s`` plus
the think time for the others.  So ``sent_s - scheduled_s`` is still the generator's own lag:
the wait for the previous answer is part of the session by design, not lag.  These three keys
are written only for session turns (``None`` otherwise).

The dataclass is the one definition of a line: ``to_json`` builds its format from the fields
(``LINE_KEYS`` orders them), and ``read_records`` decodes lines with msgspec straight into the
dataclass, checking each field's type.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from io import FileIO
from json.encoder import encode_basestring_ascii
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec

from qpsweep.config.secrets import utf8_safe

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
    resent: int = 0
    session: int | None = None
    turn: int | None = None
    history_tokens: int | None = None
    first_reasoning_s: float | None = None
    first_visible_s: float | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None

    @property
    def ok(self) -> bool:
        """True when the request succeeded."""
        return self.error_kind is None

    def to_json(self) -> str:
        """One JSON line (no newline) laid out by ``LINE_KEYS``: the retry keys only when
        ``attempts > 1`` or ``resent``, the session keys only for a session's turn (``session``
        set), the reasoning and cache keys only when one of
        ``first_reasoning_s``, ``reasoning_tokens``, ``cached_tokens`` is set; times (fields
        named ``*_s``) as ``%.6f``, rounded to the microsecond, other numbers and strings as
        ``json.dumps`` writes them (strings ASCII, a lone surrogate as ``?``).  One ``%``
        per record (the format cached per chunk
        count): this is the generator's hot path."""
        chunk_s = self.chunk_s
        n = len(chunk_s)
        form = _FORMATS.get(n) or _format(n)
        retry = (
            _RETRY_LINE.form % _values(_RETRY_LINE, self)
            if self.attempts > 1 or self.resent
            else ""
        )
        session = "" if self.session is None else _SESSION_LINE.form % _values(_SESSION_LINE, self)
        extra = (
            _EXTRA_LINE.form % _values(_EXTRA_LINE, self)
            if self.first_reasoning_s is not None
            or self.reasoning_tokens is not None
            or self.cached_tokens is not None
            else ""
        )
        return form % (*_values(_HEAD_LINE, self), retry, session, extra, *chunk_s)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestRecord:
        """A record from a parsed line, leniently: numbers given as strings or floats are
        converted, a missing optional key takes its default, unknown keys are ignored (the
        route of lines the strict decoder refuses; see ``read_records``)."""
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
            resent=int(data.get("resent") or 0),
            session=data.get("session"),
            turn=data.get("turn"),
            history_tokens=data.get("history_tokens"),
            first_reasoning_s=data.get("first_reasoning_s"),
            first_visible_s=data.get("first_visible_s"),
            reasoning_tokens=data.get("reasoning_tokens"),
            cached_tokens=data.get("cached_tokens"),
        )


LINE_KEYS = (
    "level",
    "level_qps",
    "seq",
    "prompt_id",
    "scheduled_s",
    "sent_s",
    "first_token_s",
    "done_s",
    "status",
    "error_kind",
    "error",
    "input_tokens",
    "output_tokens",
    "token_counted_by",
    "attempts",
    "first_error_kind",
    "first_done_s",
    "resent",
    "session",
    "turn",
    "history_tokens",
    "first_reasoning_s",
    "first_visible_s",
    "reasoning_tokens",
    "cached_tokens",
    "chunk_s",
)
"""The order of a line's keys: ``RequestRecord``'s fields, the retry keys (``attempts`` to
``resent``, written only for a retried or resent request), the session keys (``session`` to
``history_tokens``, written only for a session's turn), the reasoning and cache keys
(``first_reasoning_s`` to ``cached_tokens``, written only when set), then ``chunk_s``, which is
last."""
_RETRY_KEYS = LINE_KEYS[LINE_KEYS.index("attempts") : LINE_KEYS.index("session")]
_SESSION_KEYS = LINE_KEYS[LINE_KEYS.index("session") : LINE_KEYS.index("first_reasoning_s")]
_EXTRA_KEYS = LINE_KEYS[LINE_KEYS.index("first_reasoning_s") : -1]
_HEAD_KEYS = LINE_KEYS[: LINE_KEYS.index("attempts")]
_CACHED_FORMATS = 256
_FORMATS: dict[int, str] = {}  # line format per chunk count, up to _CACHED_FORMATS chunks


def _number(value: float) -> str:
    """``value`` as json writes it (an int, as some callers pass, stays an int)."""
    return float.__repr__(value) if isinstance(value, float) else "%d" % value  # noqa: UP031


def _opt_time(value: float | None) -> str:
    return "null" if value is None else "%.6f" % value  # noqa: UP031


def _opt_int(value: int | None) -> str:
    return "null" if value is None else "%d" % value  # noqa: UP031


def _opt_str(value: str | None) -> str:
    if value is None:
        return "null"
    # a lone surrogate (a server's "\\ud83d") cannot be UTF-8: msgspec could not read it back
    return encode_basestring_ascii(value if value.isascii() else utf8_safe(value))


def _writer(name: str) -> tuple[str, Callable[[Any], str] | None]:
    """How ``to_json`` writes field ``name``: its ``%`` spec, and the function that turns the
    value into text for a ``%s`` (``None``: ``%`` formats the value itself), by the field's
    type and its unit: ``*_s`` is a time in seconds."""
    kind = _TYPES[name]
    if kind == "int":
        return "%d", None
    if kind == "float":
        return ("%.6f", None) if name.endswith("_s") else ("%s", _number)
    optional: dict[str, Callable[[Any], str]] = {
        "float | None": _opt_time,
        "int | None": _opt_int,
        "str | None": _opt_str,
    }
    if kind not in optional or (kind == "float | None" and not name.endswith("_s")):
        raise TypeError(f"RequestRecord.{name}: no line format for {kind}")
    return "%s", optional[kind]


def _key(name: str, first: bool) -> str:
    return ("{" if first else ",") + encode_basestring_ascii(name) + ":"


def _format(n_chunks: int) -> str:
    chunks = "[" + ",".join(["%.6f"] * n_chunks) + "]}"
    # the three %s: the retry keys, the session keys, the reasoning and cache keys
    form = _HEAD_LINE.form + "%s%s%s" + _key("chunk_s", False) + chunks
    if n_chunks <= _CACHED_FORMATS:
        _FORMATS[n_chunks] = form
    return form


@dataclass(frozen=True)
class _Layout:
    """A run of consecutive line keys: their ``%`` format, a getter of their values, and the
    (index, function) of the values that need turning into text first."""

    form: str
    get: Callable[[RequestRecord], tuple[Any, ...]]
    writers: tuple[tuple[int, Callable[[Any], str]], ...]


def _layout(names: tuple[str, ...], first: bool) -> _Layout:
    specs = [_writer(name) for name in names]
    form = "".join(
        _key(n, first and i == 0) + sp
        for i, (n, (sp, _)) in enumerate(zip(names, specs, strict=True))
    )
    writers = tuple((i, w) for i, (_, w) in enumerate(specs) if w is not None)
    return _Layout(form, attrgetter(*names), writers)


def _values(layout: _Layout, record: RequestRecord) -> tuple[Any, ...]:
    values = list(layout.get(record))
    for i, write in layout.writers:
        values[i] = write(values[i])
    return tuple(values)


_TYPES = {f.name: str(f.type) for f in fields(RequestRecord)}
if sorted(LINE_KEYS) != sorted(_TYPES) or _TYPES["chunk_s"] != "tuple[float, ...]":
    raise TypeError("LINE_KEYS must name every field of RequestRecord, chunk_s last")
_HEAD_LINE = _layout(_HEAD_KEYS, first=True)
_RETRY_LINE = _layout(_RETRY_KEYS, first=False)
_SESSION_LINE = _layout(_SESSION_KEYS, first=False)
_EXTRA_LINE = _layout(_EXTRA_KEYS, first=False)


BLOCK_BYTES = 4 * 2**20  # a read of the records file: about 10,000 records
_DECODER = msgspec.json.Decoder(RequestRecord)


class RecordWriter:
    """Appends records to a JSON Lines file, each line handed to the operating system at once
    (one unbuffered ``write`` per record: no buffer to flush, so a killed process loses no
    finished record).

    A write that fails (``OSError``: a full disk, the file-size limit): the part of its line
    that was written is cut off again, so the file ends with a whole line and stays readable;
    ``error`` keeps the error and ``on_loss`` is called once with it (without ``on_loss``,
    that first ``write`` raises it instead).  From then on every record is only counted in
    ``n_lost``, never written: a line after a lost one would leave a gap nobody could see."""

    def __init__(self, path: Path, on_loss: Callable[[OSError], None] | None = None) -> None:
        self.path = path
        self.on_loss = on_loss
        self.error: OSError | None = None
        self.n_lost = 0
        self._file: FileIO = path.open("ab", buffering=0)

    def write(self, record: RequestRecord) -> None:
        """Append ``record``'s line (ASCII: ``to_json`` escapes every other character)."""
        line = (record.to_json() + "\n").encode()
        written = 0
        try:
            written = self._file.write(line)
            if written != len(line):  # a short write (a full disk, a signal): write the rest
                rest = memoryview(line)[written:]
                while rest:
                    n = self._file.write(rest)
                    written += n
                    rest = rest[n:]
        except OSError as err:
            self._lose(err, written)

    def _lose(self, error: OSError, n_written: int) -> None:
        """The first record that could not be written: see the class docstring."""
        with contextlib.suppress(OSError):  # shrinking a file needs no room
            os.ftruncate(self._file.fileno(), os.fstat(self._file.fileno()).st_size - n_written)
        self.error, self.n_lost = error, 1
        self.write = self._count_lost  # type: ignore[method-assign]
        if self.on_loss is None:  # nobody to tell: the error goes to the caller, this once
            raise error
        self.on_loss(error)

    def _count_lost(self, record: RequestRecord) -> None:
        self.n_lost += 1

    def close(self) -> None:
        """Close the file; further writes raise ``ValueError``."""
        self._file.close()


def read_records(path: Path) -> Iterator[RequestRecord]:
    """Records of a JSON Lines file in file order (see ``record_batches``)."""
    for batch in record_batches(path):
        yield from batch


def record_batches(
    path: Path, decoder: msgspec.json.Decoder[Any] = _DECODER
) -> Iterator[list[Any]]:
    """The records of a JSON Lines file, a block of whole lines (``BLOCK_BYTES``) at a time,
    each line decoded by ``decoder`` (by default into ``RequestRecord``, its types checked).

    A line the decoder refuses is read as before it, by ``json.loads`` and
    ``RequestRecord.from_dict``.  Blank lines are skipped; so is a last line cut short by a
    killed process (no newline after it); any other bad line raises ``ValueError`` naming
    its line number.
    """
    with path.open("rb") as file:
        number, rest = 1, b""  # the number of the next block's first line; a partial line
        while data := file.read(BLOCK_BYTES):
            data = rest + data
            cut = data.rfind(b"\n") + 1
            block, rest = data[:cut], data[cut:]
            if block:
                yield _decode_block(path, decoder, block, number)
                number += block.count(b"\n")
    if rest.strip():
        yield _decode_lines(path, decoder, rest, number, cut_short_ok=True)


def _decode_block(
    path: Path, decoder: msgspec.json.Decoder[Any], block: bytes, number: int
) -> list[Any]:
    """The records of ``block``'s lines, the first of which has number ``number``."""
    try:
        return decoder.decode_lines(block)
    except msgspec.MsgspecError:
        return _decode_lines(path, decoder, block, number, cut_short_ok=False)


def _decode_lines(
    path: Path, decoder: msgspec.json.Decoder[Any], text: bytes, number: int, cut_short_ok: bool
) -> list[Any]:
    """``_decode_block`` line by line, with the fallback and the errors of ``record_batches``;
    ``cut_short_ok``: ``text`` is the file's unterminated last line."""
    out = []
    for n, line in enumerate(text.split(b"\n"), start=number):
        if not line.strip():
            continue
        try:
            out.append(decoder.decode(line))
            continue
        except msgspec.MsgspecError:
            pass
        try:
            out.append(RequestRecord.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as err:
            if cut_short_ok:
                break
            raise ValueError(f"{path}: line {n}: not a request record ({err})") from None
    return out
