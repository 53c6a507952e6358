"""Which stream events are plain content chunks, told without decoding their JSON (pure).

Most events of a streamed completion are plain content chunks, and of those only the arrival
time matters.  ``is_plain(payload)`` takes an event for one when it is an object (``{...}``)
with ``"choices"``, a content key followed by a non-empty string (``"content":"x``; the
pattern cannot match inside a JSON string, where quotes are escaped), no ``"usage"``, no
``"error"`` and no finish reason other than ``null``.  Every other event (the role chunk, the
last chunk, usage, errors, a chunk cut short, anything formatted otherwise) is for the caller
to decode in full.  So a malformed chunk that still has that shape counts as content; one
choice per chunk is assumed (qpsweep never asks for ``n > 1``).

``PlainChunks`` gives the same answers faster for the events of one response.  A server
writes its content chunks from one template: ``head`` (everything up to the opening quote of
the content string) + text + ``tail`` (from the closing quote on).  When ``is_plain`` accepts
an event whose text has no backslash, its head and tail are kept, and a later event that
starts with that head and ends with that tail, with a text between them that is non-empty,
has no quote and does not end in a backslash, is the same JSON with another string:
``is_plain`` would accept it too, so its six substring searches and regular expression are
skipped (``startswith``, ``endswith``, one bounded ``find`` and one byte instead).  Anything
else goes to ``is_plain``, which relearns the template from each event it accepts (the id or
``created`` can change mid-stream).
"""

from __future__ import annotations

import re

_BACKSLASH = ord("\\")
_FAST_CONTENT = re.compile(rb'"(?:content|reasoning_content|reasoning|text)":\s*"(?!")')


def is_plain(payload: bytes) -> bool:
    """True for a content chunk that needs no decoding (see the module docstring)."""
    return _match(payload) is not None


def _match(payload: bytes) -> re.Match[bytes] | None:
    if (
        payload[:1] == b"{"
        and payload[-1:] == b"}"
        and b'"usage"' not in payload
        and b'"error"' not in payload
        and (b'"finish_reason"' not in payload or b'"finish_reason":null' in payload)
        and b'"choices"' in payload
    ):
        return _FAST_CONTENT.search(payload)
    return None


class PlainChunks:
    """``is_plain`` for the events of one response, with its content template learned."""

    __slots__ = ("_head", "_tail")

    def __init__(self) -> None:
        self._head = b"{"
        self._tail = b"\x00"  # no event ends so: nothing matches before the first learning

    def __call__(self, payload: bytes) -> bool:
        """``is_plain(payload)``."""
        head, tail = self._head, self._tail
        start, end = len(head), len(payload) - len(tail)  # the text is payload[start:end]
        if (
            end > start
            and payload.startswith(head)
            and payload.endswith(tail)
            and payload.find(b'"', start, end) < 0
            and payload[end - 1] != _BACKSLASH
        ):
            return True
        found = _match(payload)
        if found is None:
            return False
        start = found.end()
        close = payload.find(b'"', start)
        if close > start and b"\\" not in payload[start:close]:
            self._head, self._tail = payload[:start], payload[close:]
        return True
