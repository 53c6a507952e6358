import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qpsweep.http.sse import SseParser

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
        (b'{"choices":[{"delta":{"content":"hi"},"finish_reason":null}],"usage":null}', 1, None,
         False),  # OpenAI's chunks when usage is asked for
        (b'{"choices":[{"delta":{"content":"x"}}],"usage":null,"u":{"usage":{"a":1}}}', 1, None,
         False),  # a second "usage": decoded in full
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
    from qpsweep.http.client import Trace, _take_event

    trace = Trace(0, 1.0, 0, 0, 0.0)
    failure, fin = _take_event(trace, payload, 0.5)
    assert (failure[0] if failure else None, fin, len(trace.chunk_s)) == (outcome, finished, chunks)


def test_usage_is_read_from_any_event() -> None:
    from qpsweep.http.client import Trace, _take_event

    trace = Trace(0, 1.0, 0, 0, 0.0)
    payload = b'{"choices":[{"delta":{"content":"x"}}],"usage":{"completion_tokens":7}}'
    assert _take_event(trace, payload, 0.1) == (None, False)
    assert trace.usage_completion == 7 and trace.chunk_s == [0.1]


_HEADS = (
    b'{"id":"chatcmpl-%s","object":"chat.completion.chunk","created":%s,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"',
    b'{"id":"%s","created":%s,"choices":[{"index":0,"delta":{"reasoning_content":"',
    b'{"id":"cmpl-%s","created":%s,"choices":[{"index":0,"text":"',
    b'{"id":"%s","created":%s,"choices":[{"delta":{"content": "',
)
_TAILS = (
    b'"},"logprobs":null,"finish_reason":null}]}',
    b'"},"finish_reason":null}]}',
    b'","finish_reason":null}]}',
    b'"},"finish_reason":"stop"}]}',
    b'"},"finish_reason":null}],"usage":{"completion_tokens":3}}',
    b'"},"finish_reason":null}],"usage":null}',
    b'"},"finish_reason":null}],"usage":null,"x":{"usage":{"completion_tokens":3}}}',
    b'"}}],"error":{"message":"x"}}',
    b'"}}]',
)
_TEXTS = st.text(alphabet='ab "\\\n\u00e9{}:,', max_size=6).map(
    lambda t: t.encode().replace(b"\n", b"\\n")
)


_EVENTS = st.lists(  # payloads: a head with its id and time, a text, a tail
    st.tuples(
        st.sampled_from(_HEADS),
        st.sampled_from([b"1", b"22"]),
        st.sampled_from([b"1700000000", b"1700000001"]),
        _TEXTS,
        st.sampled_from(_TAILS),
    ).map(lambda e: e[0] % (e[1], e[2]) + e[3] + e[4]),
    max_size=12,
)


@given(_EVENTS)
def test_a_learned_chunk_template_answers_as_the_full_test_does(payloads: list) -> None:
    """``PlainChunks`` skips the substring searches for events that fit the template it
    learned; it must say exactly what ``is_plain`` says of every event, in any sequence."""
    from qpsweep.http.plain_chunk import PlainChunks, is_plain

    plain = PlainChunks()
    for payload in payloads:
        assert plain(payload) == is_plain(payload), payload


@given(_EVENTS)
def test_what_is_taken_as_plain_decodes_to_content_and_nothing_else(payloads: list) -> None:
    """Soundness against full decoding: an event ``is_plain`` accepts, when it is JSON, has a
    choice with non-empty content, no finish reason, no error and no usage (or a null one);
    ``leading`` counts only such events, in a row."""
    from qpsweep.http.plain_chunk import PlainChunks, is_plain

    for payload in payloads:
        if not is_plain(payload):
            continue
        try:
            data = json.loads(payload)
        except ValueError:
            continue  # not JSON: counted as content, as the module says
        (choice,) = data["choices"]
        delta = choice.get("delta") or {}
        text = choice.get("text") or delta.get("content") or delta.get("reasoning_content")
        assert text and choice.get("finish_reason") is None, payload
        assert "error" not in data and data.get("usage") is None, payload
    plain = PlainChunks()
    for start in range(len(payloads)):
        run = plain.leading(payloads, start)
        assert all(is_plain(p) for p in payloads[start : start + run])
        plain(payloads[start])  # learn as the client does


def test_a_template_never_admits_what_changes_the_json() -> None:
    from qpsweep.http.plain_chunk import PlainChunks

    head = b'{"id":"a","choices":[{"delta":{"content":"'
    tail = b'"},"finish_reason":null}]}'
    plain = PlainChunks()
    assert plain(head + b"hello" + tail)  # learned here
    assert plain(head + b" world \\n" + tail)
    assert not plain(head + b"" + tail)  # empty text: not content
    assert not plain(head + b'x"},"usage":{"completion_tokens":1},"y":{"z":"' + tail)
    assert plain(head + b"ends in \\\\" + tail)  # an escaped backslash: full test, still content
    assert not plain(head[:-5] + b"cut")


_LINES = st.sampled_from(
    [b"data: x", b"data:y", b"data: ", b"data: [DONE]", b": ping", b"event: e", b"id: 1",
     b"retry: 5", b"junk", b"", b"data: {\"a\": 1}"]
)  # fmt: skip


def _line_walk(stream: bytes) -> tuple[list[bytes], int]:
    """The events and the count of other lines of ``stream``, by a plain walk over lines."""
    lines = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    events, data, other = [], [], 0
    for line in [*lines, b""]:
        if not line:
            if data:
                events.append(b"\n".join(data))
                data = []
        elif line.startswith(b"data:"):
            data.append(line[6:] if line.startswith(b"data: ") else line[5:])
        elif not line.startswith((b":", b"event:", b"id:", b"retry:")):
            other += 1
    return events, other


def _parse_cut(stream: bytes, cuts: list[int]) -> tuple[list[bytes], int]:
    points = [0, *sorted(c for c in cuts if c <= len(stream)), len(stream)]
    parser = SseParser()
    events = [e for a, b in itertools.pairwise(points) for e in parser.feed(stream[a:b])]
    return events + parser.close(), parser.other_lines


@given(
    st.lists(st.tuples(_LINES, st.sampled_from([b"\n", b"\r\n", b"\r"])), max_size=30),
    st.lists(st.integers(0, 400), max_size=8),
)
def test_any_stream_cut_anywhere_gives_the_line_walks_events(lines: list, cuts: list) -> None:
    stream = b"".join(line + end for line, end in lines)
    assert _parse_cut(stream, cuts) == _line_walk(stream)


_EVENTS = st.sampled_from(
    [b"data: a\n\n", b"data: [DONE]\n\n", b"data: \n\n", b"data:x\n\n", b"data: a\r\n\r\n",
     b"data: a\ndata: b\n\n", b": c\n\n", b"\n", b"data: q\n", b"data: data: x\n\n"]
)  # fmt: skip


@given(st.lists(_EVENTS, max_size=20), st.lists(st.integers(0, 200), max_size=4))
def test_the_whole_event_shortcut_yields_what_the_line_walk_does(events: list, cuts: list) -> None:
    """Streams made mostly of whole ``data: `` events, which the parser splits in one go
    when a chunk is nothing else: the same events and other lines as the line walk."""
    stream = b"".join(events)
    assert _parse_cut(stream, cuts) == _line_walk(stream)
