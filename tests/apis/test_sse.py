"""The stream decoders (SSE, and NDJSON for Ollama): every split of the byte stream gives the
same events; a line over the limit is dropped, not buffered."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracer.sse import NDJSONDecoder, SSEDecoder, SSEEvent

STREAM = (
    b": keep-alive comment\r\n"
    b"retry: 1000\r\n"
    b'data: {"text": "h\xc3\xa9llo \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x8c\x8d"}\r\n'
    b"\r\n"
    b"event: message_delta\n"
    b"id: 7\n"
    b"data: first line\n"
    b"data:second line\n"
    b"\n"
    b"data: cr only\r"
    b"\r"
    b"\n\n"  # blank lines with no data dispatch nothing
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent("", '{"text": "héllo 你好 🌍"}', None),
    SSEEvent("message_delta", "first line\nsecond line", "7"),
    SSEEvent("", "cr only", "7"),
    SSEEvent("", "[DONE]", "7"),
]


def decode(pieces: list[bytes], **kwargs: int) -> list[SSEEvent]:
    decoder = SSEDecoder(**kwargs)
    events = [event for piece in pieces for event in decoder.feed(piece)]
    return events + decoder.flush()


def test_whole_stream() -> None:
    assert decode([STREAM]) == EXPECTED


def test_every_single_cut() -> None:
    for i in range(len(STREAM) + 1):
        assert decode([STREAM[:i], STREAM[i:]]) == EXPECTED, i


def test_every_pair_of_cuts() -> None:
    for i in range(len(STREAM) + 1):
        for j in range(i, len(STREAM) + 1):
            assert decode([STREAM[:i], STREAM[i:j], STREAM[j:]]) == EXPECTED, (i, j)


def test_byte_at_a_time() -> None:
    assert decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_arbitrary_cuts(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    pieces = [STREAM[a:b] for a, b in itertools.pairwise(points)]
    assert decode(pieces) == EXPECTED


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    assert decode([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]) == [
        SSEEvent("", "a"),
        SSEEvent("", "b"),
    ]


def test_missing_final_blank_line_still_yields_the_event() -> None:
    assert decode([b"data: [DONE]"]) == [SSEEvent("", "[DONE]")]


def test_invalid_utf8_is_replaced_and_counted() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"data: \xff\xfe ok\n\n")
    assert events == [SSEEvent("", "\ufffd\ufffd ok")]
    assert decoder.invalid_utf8_lines == 1


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_oversized_line_is_dropped_not_buffered(piece: int) -> None:
    big = b"data: " + b"x" * 10_000 + b"\n\n"
    stream = big + b"data: small\n\n"
    pieces = [stream[i : i + piece] for i in range(0, len(stream), piece)]
    decoder = SSEDecoder(max_line_bytes=1000)
    events = [e for p in pieces for e in decoder.feed(p)] + decoder.flush()
    assert events == [SSEEvent("", "small")]
    assert decoder.oversized_lines == 1
    assert len(decoder._partial) == 0


def test_oversized_event_made_of_short_lines_is_dropped() -> None:
    decoder = SSEDecoder(max_line_bytes=1000)
    events = []
    for _ in range(100):
        events += decoder.feed(b"data: " + b"x" * 900 + b"\n")
    events += decoder.feed(b"\ndata: after\n\n")
    assert events == [SSEEvent("", "after")]
    assert decoder.oversized_events == 1
    assert decoder._data == []


# --- newline-delimited JSON (Ollama) ----------------------------------------------------------

NDJSON = (
    '{"message":{"content":"Bon"},"done":false}\n'
    '{"message":{"content":"jour \\u00e9t\\u00e9 — é"},"done":false}\r\n'
    "\n"
    '{"done":true,"eval_count":2}'
).encode()


def ndjson_lines(pieces: list[bytes]) -> list[str]:
    decoder = NDJSONDecoder()
    return [e.data for p in pieces for e in decoder.feed(p)] + [e.data for e in decoder.flush()]


@given(st.lists(st.integers(min_value=0, max_value=len(NDJSON)), max_size=12))
def test_ndjson_any_cut_gives_the_same_lines(cuts: list[int]) -> None:
    points = sorted({0, len(NDJSON), *cuts})
    pieces = [NDJSON[a:b] for a, b in itertools.pairwise(points)]
    assert ndjson_lines(pieces) == [
        '{"message":{"content":"Bon"},"done":false}',
        '{"message":{"content":"jour \\u00e9t\\u00e9 — é"},"done":false}',
        '{"done":true,"eval_count":2}',
    ]


def test_ndjson_oversized_line_is_dropped_not_buffered() -> None:
    decoder = NDJSONDecoder(max_line_bytes=10)
    events = decoder.feed(b'{"a":"' + b"x" * 50) + decoder.feed(b'"}\n{"b":1}\n')
    assert [e.data for e in events] == ['{"b":1}']
    assert decoder.oversized_lines == 1
    assert len(decoder._partial) == 0
