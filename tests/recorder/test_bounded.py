"""Memory and size bounds: bodies above ``TRACER_MAX_BODY_BYTES`` pass through whole and
unparsed, and what the tracer holds grows with the reassembled output, not the raw bytes.

Memory is measured with ``tracemalloc`` on the caller's reading loop only (the request is sent
and MLflow warmed up before), for the traced client minus the same loop with a plain client;
the figures are printed (``pytest -s``) and quoted in the assertion messages.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock, IteratorStream
from readback import only_llm_span, read_spans

from tracer import TracedAsyncClient, TracedClient, TracerConfig

URL = "http://llm.test/v1/chat/completions"
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
SSE_HEADERS = {"content-type": "text/event-stream"}
JSON_HEADERS = {"content-type": "application/json"}
MB = 1024 * 1024


def chunk_event(content: str, finish: str | None = None) -> bytes:
    """One ``data:`` event framed as OpenAI frames it (most of its bytes are framing)."""
    event = {
        "id": "chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0123456789",
        "choices": [
            {
                "index": 0,
                "delta": {"content": content},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
    }
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }


def pieces_of(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def read_raw(client: httpx.Client | httpx.AsyncClient, request: dict[str, Any]) -> list[bytes]:
    """Every raw piece the caller reads from a streamed request."""
    if isinstance(client, httpx.Client):
        with client, client.stream("POST", URL, json=request) as response:
            return list(response.iter_raw())

    async def main() -> list[bytes]:
        async with client, client.stream("POST", URL, json=request) as response:
            return [piece async for piece in response.aiter_raw()]

    return asyncio.run(main())


# --- bodies above the limit ------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_json_body_over_the_limit_passes_through_unparsed(
    httpx_mock: HTTPXMock, experiment: str, encoding: str, use_async: bool
) -> None:
    body = json.dumps(completion("x" * 5000)).encode()
    wire = gzip.compress(body) if encoding == "gzip" else body  # the limit is on decoded bytes
    headers = JSON_HEADERS | ({"content-encoding": "gzip"} if encoding == "gzip" else {})
    pieces = pieces_of(wire, 100)
    httpx_mock.add_response(url=URL, headers=headers, stream=IteratorStream(pieces))
    httpx_mock.add_response(url=URL, headers=headers, stream=IteratorStream(pieces))
    config = TracerConfig(max_body_bytes=1000)
    factory = TracedAsyncClient if use_async else TracedClient
    assert read_raw(factory(config=config), REQUEST) == pieces

    if use_async:

        async def post() -> httpx.Response:
            async with TracedAsyncClient(config=config) as client:
                return await client.post(URL, json=REQUEST)

        response = asyncio.run(post())
    else:
        with TracedClient(config=config) as client:
            response = client.post(URL, json=REQUEST)
    assert response.content == body

    spans = read_spans(experiment)
    assert len(spans) == 2
    for span in spans:
        assert span.outputs is None
        assert span.attributes["tracer.problems"] == [
            "response body exceeds TRACER_MAX_BODY_BYTES (1000); not parsed"
        ]
        assert span.status.status_code == "OK"


@pytest.mark.parametrize("piece", [1, 7, 100, 100_000])
def test_sse_line_over_the_limit_is_skipped_and_counted(
    httpx_mock: HTTPXMock, experiment: str, piece: int
) -> None:
    stream = chunk_event("Hel") + chunk_event("x" * 5000) + chunk_event("lo", "stop") + DONE
    pieces = pieces_of(stream, piece)
    httpx_mock.add_response(url=URL, headers=SSE_HEADERS, stream=IteratorStream(pieces))
    received = read_raw(TracedClient(config=TracerConfig(max_body_bytes=1000)), REQUEST)
    assert received == pieces  # the caller gets every byte, the oversized line included

    span = only_llm_span(experiment)
    assert span.outputs["choices"][0]["message"]["content"] == "Hello"
    assert span.outputs["choices"][0]["finish_reason"] == "stop"
    assert span.attributes["stream.chunk_count"] == 2
    assert span.attributes["stream.completed"] is True
    assert span.attributes["tracer.problems"] == [
        "1 stream line(s) exceeded TRACER_MAX_BODY_BYTES and were skipped"
    ]


def test_sse_event_over_the_limit_in_many_short_lines_is_not_parsed(
    httpx_mock: HTTPXMock, experiment: str
) -> None:
    """README and TracerConfig: "single stream events above this are passed through unparsed".
    An event may be spread over many ``data:`` lines, each below the limit: here one whose
    content comes as a list of content items (as Databricks sends it), one per line."""
    event = json.loads(chunk_event("")[len(b"data: ") :])
    event["choices"][0]["delta"]["content"] = [{"type": "text", "text": "x" * 500}] * 10
    lines = json.dumps(event, indent=1).split("\n")
    many_lines = b"".join(b"data: " + line.encode() + b"\n" for line in lines) + b"\n"
    stream = chunk_event("Hel") + many_lines + chunk_event("lo", "stop") + DONE
    assert len(many_lines) > 5000 and max(map(len, lines)) < 1000
    httpx_mock.add_response(url=URL, headers=SSE_HEADERS, stream=IteratorStream([stream]))
    assert read_raw(TracedClient(config=TracerConfig(max_body_bytes=1000)), REQUEST) == [stream]

    span = only_llm_span(experiment)
    assert span.outputs["choices"][0]["message"]["content"] == "Hello"
    problems = span.attributes.get("tracer.problems", [])
    assert any("TRACER_MAX_BODY_BYTES" in p for p in problems), problems


# --- memory -----------------------------------------------------------------------------------


def warm_up(httpx_mock: HTTPXMock) -> None:
    """One traced call: MLflow's first span in a process does one-time set-up."""
    httpx_mock.add_response(url=URL, headers=SSE_HEADERS, stream=IteratorStream([DONE]))
    read_raw(TracedClient(), REQUEST)


def peak_while_reading(
    client: httpx.Client | httpx.AsyncClient, request: dict[str, Any]
) -> tuple[int, int]:
    """(peak bytes allocated, bytes read) during the caller's reading loop alone."""

    def start() -> None:
        tracemalloc.start()
        tracemalloc.reset_peak()

    def stop() -> int:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    count = 0
    if isinstance(client, httpx.Client):
        with client, client.stream("POST", URL, json=request) as response:
            start()
            for piece in response.iter_raw():
                count += len(piece)
            return stop(), count

    async def main() -> tuple[int, int]:
        nonlocal count
        async with client, client.stream("POST", URL, json=request) as response:
            start()
            async for piece in response.aiter_raw():
                count += len(piece)
            return stop(), count

    return asyncio.run(main())


def extra_peak(
    httpx_mock: HTTPXMock,
    stream: Callable[[], Iterator[bytes]],
    headers: dict[str, str],
    use_async: bool,
    config: TracerConfig | None = None,
) -> tuple[int, int, int]:
    """(traced peak, plain peak, bytes read) for the same lazily generated response."""
    httpx_mock.add_response(url=URL, headers=headers, stream=IteratorStream(stream()))
    httpx_mock.add_response(url=URL, headers=headers, stream=IteratorStream(stream()))
    plain_client = httpx.AsyncClient() if use_async else httpx.Client()
    plain, plain_bytes = peak_while_reading(plain_client, REQUEST)
    traced_client = TracedAsyncClient(config=config) if use_async else TracedClient(config=config)
    traced, traced_bytes = peak_while_reading(traced_client, REQUEST)
    assert traced_bytes == plain_bytes
    return traced, plain, traced_bytes


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_memory_of_a_10000_chunk_stream_grows_with_the_output_not_the_raw_bytes(
    httpx_mock: HTTPXMock, experiment: str, use_async: bool
) -> None:
    chunks = 10_000
    words = [f"w{i:08d} " for i in range(chunks)]  # 10 characters each
    text = "".join(words)

    def stream() -> Iterator[bytes]:  # lazily, one event per network piece
        for i, word in enumerate(words):
            yield chunk_event(word, "stop" if i == chunks - 1 else None)
        yield DONE

    raw_size = sum(map(len, stream()))
    warm_up(httpx_mock)
    traced, plain, read = extra_peak(httpx_mock, stream, SSE_HEADERS, use_async)
    extra = traced - plain
    bound = 16 * len(text) + 2 * MB
    figures = (
        f"{chunks} chunks, raw {raw_size / MB:.2f} MB, output text {len(text) / 1e3:.0f} kB: "
        f"peak traced {traced / MB:.2f} MB, plain {plain / MB:.2f} MB, "
        f"tracer's extra {extra / MB:.2f} MB ({extra / len(text):.1f} bytes per output "
        f"character; bound {bound / MB:.2f} MB)"
    )
    print(f"\n[{'async' if use_async else 'sync'}] {figures}")
    assert read == raw_size
    assert extra < bound, figures
    assert extra < 0.7 * raw_size, figures  # keeping the raw events would cost more than raw

    spans = read_spans(experiment)
    span = spans[-1]
    content = span.outputs["choices"][0]["message"]["content"]
    assert len(content) == len(text)
    assert content == text
    assert span.attributes["stream.chunk_count"] == chunks
    assert span.attributes["stream.completed"] is True


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_100_mb_body_reaches_the_caller_and_the_tracer_holds_a_bounded_part(
    httpx_mock: HTTPXMock, experiment: str, use_async: bool
) -> None:
    pieces = 100
    head = json.dumps(completion("@")).encode()
    cut = head.index(b"@")

    def stream() -> Iterator[bytes]:  # a 100 MB JSON body, produced lazily in 1 MB pieces
        yield head[:cut]
        for _ in range(pieces):
            yield b"a" * MB  # a fresh object each time, as a network read would be
        yield head[cut + 1 :]

    size = len(head) - 1 + pieces * MB
    warm_up(httpx_mock)
    traced, plain, read = extra_peak(httpx_mock, stream, JSON_HEADERS, use_async)
    extra = traced - plain
    figures = (
        f"body {size / MB:.0f} MB in 1 MB pieces (TRACER_MAX_BODY_BYTES 8 MiB): "
        f"peak traced {traced / MB:.2f} MB, plain {plain / MB:.2f} MB, "
        f"tracer's extra {extra / MB:.2f} MB"
    )
    print(f"\n[{'async' if use_async else 'sync'}] {figures}")
    assert read == size
    assert extra < 16 * MB, figures

    span = read_spans(experiment)[-1]
    assert span.outputs is None
    assert span.attributes["tracer.problems"] == [
        "response body exceeds TRACER_MAX_BODY_BYTES (8388608); not parsed"
    ]


def test_an_sse_event_that_never_ends_is_not_held_whole(
    httpx_mock: HTTPXMock, experiment: str
) -> None:
    """A stream of ``data:`` lines with no blank line to dispatch them (a broken proxy, a
    misbehaving server): every line is below the limit, but the event grows without end."""
    line = b"data: " + b"y" * 1000 + b"\n"
    lines_per_piece, pieces = 64, 300  # ~19 MB in 64 kB pieces

    def stream() -> Iterator[bytes]:
        for _ in range(pieces):
            yield line * lines_per_piece

    limit = 1 * MB
    warm_up(httpx_mock)
    traced, plain, read = extra_peak(
        httpx_mock, stream, SSE_HEADERS, False, TracerConfig(max_body_bytes=limit)
    )
    extra = traced - plain
    figures = (
        f"{read / MB:.1f} MB of data lines without a blank line, TRACER_MAX_BODY_BYTES "
        f"{limit / MB:.0f} MB: tracer's extra peak {extra / MB:.2f} MB"
    )
    print(f"\n{figures}")
    assert read == len(line) * lines_per_piece * pieces
    assert extra < 4 * limit, figures
    assert read_spans(experiment)  # the span still ends
