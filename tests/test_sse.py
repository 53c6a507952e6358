import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qpsweep.sse import SseParser

STREAM = (
    b": keep-alive comment\n\n"
    b'data: {"a": 1}\n\n'
    b"event: message\r\ndata: line one\r\ndata: line two\r\n\r\n"
    b"id: 7\ndata:no-space\n\n"
    b"data: [DONE]\n\n"
)
EVENTS = [b'{"a": 1}', b"line one\nline two", b"no-space", b"[DONE]"]


def parse(pieces: list[bytes]) -> list[bytes]:
    parser = SseParser()
    events = [e for piece in pieces for e in parser.feed(piece)]
    return events + parser.close()


def test_whole_stream() -> None:
    assert parse([STREAM]) == EVENTS


def test_last_event_without_blank_line_is_kept_at_close() -> None:
    assert parse([b"data: x\n\ndata: tail"]) == [b"x", b"tail"]


def test_non_sse_lines_are_counted() -> None:
    parser = SseParser()
    assert parser.feed(b"<html>\n</html>\n") == []
    assert parser.other_lines == 2


@given(st.lists(st.integers(0, len(STREAM)), max_size=40))
def test_any_split_yields_the_same_events(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    pieces = [STREAM[a:b] for a, b in itertools.pairwise(points)]
    assert parse(pieces) == EVENTS


def test_a_long_line_costs_linear_time_and_is_capped() -> None:
    parser = SseParser(max_line_bytes=1 << 20)
    piece = b"x" * 1000
    for _ in range(1000):  # 1 MB in 1 kB pieces: nothing joined until the newline
        assert parser.feed(piece) == []
    assert parser.feed(b"\n\n") == []  # a line that is not a field: ignored
    assert parser.other_lines == 1
    with pytest.raises(ValueError, match="longer than 1048576 bytes"):
        for _ in range(1100):
            parser.feed(piece)


def test_a_last_event_without_its_blank_line_is_still_delivered() -> None:
    parser = SseParser()
    assert parser.feed(b'data: {"a": 1}\n\ndata: {"error": "x"}') == [b'{"a": 1}']
    assert parser.close() == [b'{"error": "x"}']


@pytest.mark.parametrize(
    ("payload", "chunks", "outcome", "finished"),
    [
        (b'{"choices":[{"delta":{"content":"hi"},"finish_reason":null}]}', 1, None, False),
        (b'{"choices":[{"delta":{"content":"say \\"usage\\" or \\"error\\""}}]}', 1, None, False),
        (b'{"choices":[{"delta":{"role":"assistant","content":""}}]}', 0, None, False),
        (b'{"choices":[{"delta":{"content": "spaced"}}]}', 1, None, False),
        (b'{"choices":[{"delta":{"content":"end"},"finish_reason":"stop"}]}', 1, None, True),
        (b'{"choices":[{"delta":{"reasoning_content":"hmm"}}]}', 1, None, False),
        (b'{"choices":[{"delta":{"content":"cut', 0, "protocol", False),
        (b'{"error":{"message":"engine died"},"choices":[{"delta":{"content":"a"}}]}', 0,
         "protocol", False),
    ],
)  # fmt: skip
def test_events_with_and_without_decoding_count_the_same(
    payload: bytes, chunks: int, outcome: str | None, finished: bool
) -> None:
    """Plain content chunks skip json.loads (client._plain_content); the result must be what
    full decoding gives."""
    from qpsweep.client import Trace, _take_event

    trace = Trace(0, 1.0, 0, 0, 0.0)
    failure, fin = _take_event(trace, payload, 0.5)
    assert (failure[0] if failure else None, fin, len(trace.chunk_s)) == (outcome, finished, chunks)


def test_usage_is_read_from_any_event() -> None:
    from qpsweep.client import Trace, _take_event

    trace = Trace(0, 1.0, 0, 0, 0.0)
    payload = b'{"choices":[{"delta":{"content":"x"}}],"usage":{"completion_tokens":7}}'
    assert _take_event(trace, payload, 0.1) == (None, False)
    assert trace.usage_completion == 7 and trace.chunk_s == [0.1]
