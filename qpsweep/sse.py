"""Incremental parser for ``text/event-stream`` bodies (pure).

Feed it the body in whatever pieces the network delivers; it returns the ``data`` payload
of each complete event.  Lines end in ``\\n`` or ``\\r\\n``; an event ends at a blank line;
several ``data:`` lines in one event are joined with ``\\n``; one space after ``data:`` is
dropped; comments (``:...``) and other fields (``event:``, ``id:``, ``retry:``) are ignored.
Any split of the same bytes yields the same events.
"""

from __future__ import annotations


class SseParser:
    """Stateful splitter of an SSE byte stream into event payloads."""

    __slots__ = ("_data", "_pending", "bytes_seen", "other_lines")

    def __init__(self) -> None:
        self._pending = b""
        self._data: list[bytes] = []
        self.bytes_seen = 0
        self.other_lines = 0  # non-blank lines that are neither data nor SSE fields

    def feed(self, chunk: bytes) -> list[bytes]:
        """Payloads of the events completed by ``chunk``."""
        self.bytes_seen += len(chunk)
        lines = (self._pending + chunk).split(b"\n") if self._pending else chunk.split(b"\n")
        self._pending = lines.pop()
        return self._lines(lines)

    def close(self) -> list[bytes]:
        """Payloads still pending at end of stream (a last event without its blank line)."""
        lines = [self._pending, b""] if self._pending else [b""]
        self._pending = b""
        return self._lines(lines)

    def _lines(self, lines: list[bytes]) -> list[bytes]:
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    events.append(b"\n".join(data))
                    data.clear()
            elif line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            elif not line.startswith((b":", b"event:", b"id:", b"retry:")):
                self.other_lines += 1
        return events
