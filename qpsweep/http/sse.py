"""Incremental parser for ``text/event-stream`` bodies (pure).

Feed it the body in whatever pieces the network delivers; it returns the ``data`` payload
of each complete event.  Lines end in ``\\n``, ``\\r\\n`` or a bare ``\\r`` (as the SSE
specification allows: a piece holding a ``\\r`` is rewritten to ``\\n`` endings first); an event
ends at a blank line; several ``data:`` lines in one event are joined with ``\\n``; one space
after ``data:`` is dropped; comments (``:...``) and the fields ``id:`` and ``retry:`` are
ignored.  An event named ``error`` (``event: error``) raises ``ValueError`` with its data: the
server says the stream failed, whatever the data holds.  Any split of the same bytes yields
the same events.

Most chunks need no line-by-line walk: a chunk that is, as it stands, whole events of a
single ``data: `` line each (``\n`` line ends, no event in progress) is split at its
separators in one go; any other chunk goes through the general line loop.

A line still unfinished is kept as a list of pieces and joined only when its newline arrives,
so the cost is linear in the bytes fed however the network splits them; runs of blank lines
are cut to one in C first (a body of nothing but newlines costs no Python loop).  A line longer than
``max_line_bytes`` raises ``ValueError`` (a server that never ends its line would otherwise
grow memory until the timeout).
"""

from __future__ import annotations

import re

MAX_LINE_BYTES = 64 * 2**20
_BLANK_RUN = re.compile(rb"\n\n\n+")


class SseParser:
    """Stateful splitter of an SSE byte stream into event payloads."""

    __slots__ = (
        "_after_cr",
        "_data",
        "_event",
        "_pending",
        "_pending_bytes",
        "bytes_seen",
        "max_line_bytes",
        "other_lines",
    )

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._pending: list[bytes] = []  # pieces of the unfinished last line
        self._pending_bytes = 0
        self._data: list[bytes] = []
        self._event = b""  # the event: field of the event in progress
        self._after_cr = False  # the last piece ended in \r: a \n starting the next is its pair
        self.bytes_seen = 0
        self.other_lines = 0  # non-blank lines that are neither data nor SSE fields
        self.max_line_bytes = max_line_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        """Payloads of the events completed by ``chunk``."""
        self.bytes_seen += len(chunk)
        if b"\r" in chunk or self._after_cr:
            chunk = self._to_lf(chunk)
        if b"\n\n\n" in chunk:  # a blank line after a blank line changes nothing
            chunk = _BLANK_RUN.sub(b"\n\n", chunk)
        if b"\n" not in chunk:
            self._pending.append(chunk)
            self._pending_bytes += len(chunk)
            if self._pending_bytes > self.max_line_bytes:
                raise ValueError(f"an SSE line longer than {self.max_line_bytes} bytes")
            return []
        if self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
            self._pending.clear()
        if not self._data and chunk.startswith(b"data: ") and chunk.endswith(b"\n\n"):
            # The common case: the chunk is whole events of one "data: " line each.  Then
            # its only newlines are the separators' (counted), and a split is all it takes.
            payloads = chunk[6:-2].split(b"\n\ndata: ")
            if chunk.count(b"\n") == 2 * len(payloads):
                self._pending_bytes = 0
                return payloads
        return self._split(chunk)

    def _to_lf(self, chunk: bytes) -> bytes:
        """``chunk`` with ``\\r\\n`` and bare ``\\r`` line ends as ``\\n`` (a ``\\r\\n``
        split between two pieces counts once)."""
        if not chunk:  # nothing read: the \r's pair may still come
            return chunk
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._after_cr = chunk.endswith(b"\r")
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    def _split(self, chunk: bytes) -> list[bytes]:
        """The events completed by the lines of ``chunk``; its unfinished last line is
        kept."""
        lines = chunk.split(b"\n")
        last = lines.pop()
        if last:
            self._pending.append(last)
        self._pending_bytes = len(last)
        return self._lines(lines)

    def close(self) -> list[bytes]:
        """Payloads still pending at end of stream (a last event without its blank line)."""
        lines = [b"".join(self._pending), b""] if self._pending else [b""]
        self._pending.clear()
        self._pending_bytes = 0
        return self._lines(lines)

    def _lines(self, lines: list[bytes]) -> list[bytes]:
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    if self._event == b"error":
                        message = b"\n".join(data)[:200].decode("utf-8", "replace")
                        raise ValueError(f"error event in stream: {message}")
                    events.append(b"\n".join(data))
                    data.clear()
                self._event = b""
            elif line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            elif line.startswith(b"event:"):
                self._event = line[6:].strip()
            elif not line.startswith((b":", b"id:", b"retry:")):
                self.other_lines += 1
        return events
