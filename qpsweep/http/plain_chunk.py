"""Which stream events are plain content chunks, told without decoding their JSON (pure).

Most events of a streamed completion are plain content chunks, and of those only the arrival
time matters.  ``is_plain(payload)`` takes an event for one when it is an object (``{...}``)
with ``"choices"``, a content key followed by a non-empty string (``"content":"x``; the
pattern cannot match inside a JSON string, where quotes are escaped), no ``"error"``, no
finish reason other than ``null`` and no ``"usage"`` other than one ``"usage":null`` (OpenAI's
API, asked for usage, puts that in every chunk but the last), and, outside the content
text, no ``}`` followed by ``{`` (two objects on one line, which is invalid JSON:
``protocol``).  Every other event (the role
chunk, the last chunk, usage, errors, a chunk cut short, anything formatted otherwise) is for
the caller to decode in full.  So a malformed chunk that still has that shape counts as content; one
choice per chunk is assumed (qpsweep never asks for ``n > 1``).

``PlainChunks`` gives the same answers faster for the events of one response.  A server
writes its content chunks from one template: ``head`` (everything up to the opening quote of
the content string) + text + ``tail`` (from the closing quote on).  When ``is_plain`` accepts
an event whose text has no backslash, its head and tail are kept, and a later event that
starts with that head and ends with that tail, with a text between them that is non-empty,
has no quote and does not end in a backslash, is the same JSON with another string:
``is_plain`` would accept it too, so its substring searches are skipped (``startswith``,
``endswith``, one bounded ``find`` and one byte instead).  Anything else goes to ``is_plain``,
which relearns the template from each event it accepts (the id or ``created`` can change
mid-stream).  ``leading`` applies that test to a run of events in one loop.

Reasoning: ``plain_kind`` and ``PlainChunks.learn`` also say which kind of text a plain chunk
carries, ``VISIBLE`` (``content``, ``text``) or ``REASONING`` (``reasoning_content``,
``reasoning``), by the key before its text.  The template's head holds that key, so a run that
fits the template is of the kind the template was learned from, and the first chunk of each
kind in a response always goes through ``learn`` (or a full decode): the caller marks the
first time of each kind there, and the runs need no test of their own.  A chunk with visible
text and a reasoning string both is not plain (the full decode times both kinds).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_BACKSLASH = ord("\\")
_QUOTE = ord('"')
# "}" then "{": two objects one after the other, which one JSON object never holds outside a
# string (after "}" comes ",", "]", "}" or the end); a text holding it is merely decoded.
_BETWEEN_OBJECTS = re.compile(rb"\}\s*\{")
_FAST_CONTENT = re.compile(rb'"(content|reasoning_content|reasoning|text)":\s*"(?!")')
VISIBLE, REASONING = 1, 2  # the kinds of text; 0: not a plain chunk


def is_plain(payload: bytes) -> bool:
    """True for a content chunk that needs no decoding (see the module docstring)."""
    return _text_start(payload)[0] >= 0


def plain_kind(payload: bytes) -> int:
    """``VISIBLE`` or ``REASONING`` for a plain chunk of that kind, 0 when not plain."""
    return _text_start(payload)[1]


def _text_start(payload: bytes) -> tuple[int, int]:
    """Where the content string's text starts in a plain chunk (after its opening quote),
    and its kind; ``(-1, 0)`` when ``payload`` is not one.  ``"content":"`` is looked for
    first (one ``find``), the other keys and spacings by ``_FAST_CONTENT``.  The two-objects
    test looks only outside
    the text (a text may hold ``}{``), as the template ``PlainChunks`` learns does."""
    start, kind = _content_start(payload)
    if start < 0:
        return -1, 0
    close = payload.find(b'"', start)
    before = _BETWEEN_OBJECTS.search(payload, 0, start)
    if before is not None or (close > 0 and _BETWEEN_OBJECTS.search(payload, close)):
        return -1, 0
    return start, kind


def _content_start(payload: bytes) -> tuple[int, int]:
    if (
        payload[:1] == b"{"
        and payload[-1:] == b"}"
        and (b'"usage"' not in payload or _usage_null_only(payload))
        and b'"error"' not in payload
        and (b'"finish_reason"' not in payload or b'"finish_reason":null' in payload)
        and b'"choices"' in payload
    ):
        at = payload.find(b'"content":"')
        if at >= 0 and payload[at + 11] != _QUOTE:  # a non-empty text (the "}" is further)
            if b'"reasoning_content":"' in payload or b'"reasoning":"' in payload:
                return -1, 0  # both kinds in one chunk: decoded in full, both are timed
            return at + 11, VISIBLE
        found = _FAST_CONTENT.search(payload)
        if found is not None:
            return found.end(), REASONING if found[1].startswith(b"r") else VISIBLE
    return -1, 0


def _usage_null_only(payload: bytes) -> bool:
    return payload.count(b'"usage"') == 1 and b'"usage":null' in payload


class PlainChunks:
    """``is_plain`` for the events of one response, with its content template learned."""

    __slots__ = ("_head", "_tail")

    def __init__(self) -> None:
        self._head = b"{"
        self._tail = b"\x00"  # no event ends so: nothing matches before the first learning

    def leading(self, payloads: Sequence[bytes], start: int = 0) -> int:
        """How many events from ``payloads[start]`` on, one after the other, fit the learned
        template (each of them ``is_plain``; the first that does not fit ends the count).  One
        loop over a piece's events instead of a call per event."""
        head, tail = self._head, self._tail
        n_head, n_tail = len(head), len(tail)
        k, n = start, len(payloads)
        while k < n:
            payload = payloads[k]
            end = len(payload) - n_tail  # the text is payload[n_head:end]
            if (
                end > n_head
                and payload.startswith(head)
                and payload.endswith(tail)
                and payload.find(b'"', n_head, end) < 0
                and payload[end - 1] != _BACKSLASH
            ):
                k += 1
            else:
                break
        return k - start

    def __call__(self, payload: bytes) -> bool:
        """``is_plain(payload)``: the template test, then ``learn``."""
        return bool(self.leading((payload,))) or bool(self.learn(payload))

    def learn(self, payload: bytes) -> int:
        """``plain_kind(payload)`` by the full test (for an event already found not to fit the
        template); a plain event becomes the template."""
        start, kind = _text_start(payload)
        if start < 0:
            return 0
        close = payload.find(b'"', start)
        if close > start and payload.find(b"\\", start, close) < 0:
            self._head, self._tail = payload[:start], payload[close:]
        return kind
