"""What the caller's thread does per chunk (issue 14): a stream's chunks are kept, then parsed
in batches; the first chunk is parsed only after it was handed on, but timed when it arrived;
a chunk that may end the stream is parsed at once, so an error event still ends the span while
the response stays open; the request is described when the call ends. The span is the same,
field for field, however the bytes are cut."""

from __future__ import annotations

import itertools
import json
import time
import zlib
from typing import Any

import brotli
import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llm_devserver import DevServer
from openai import OpenAI
from rawserver import RawServer, head
from rawserver import chunk as http_chunk
from readback import only_llm_span

from tracer import TracedClient, routes, spans
from tracer.config import TracerConfig
from tracer.recorder import BATCH_BYTES, Recorder, RequestInfo
from tracer.transport import HTTPX

SSE = "text/event-stream"


def sse(*events: tuple[str | None, Any]) -> list[bytes]:
    """One SSE frame per ``(event name, data)``; data that is not a string is JSON."""
    frames = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        frames.append(((f"event: {name}\n" if name else "") + f"data: {text}\n\n").encode())
    return frames


def chat_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


CHAT_BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def recorder_for(path: str, body: Any) -> Recorder:
    route = routes.match("POST", path)
    assert route is not None, path
    content = json.dumps(body).encode()
    info = RequestInfo(
        "POST", f"http://llm.test{path}", "llm.test", None, httpx.Headers(), content, path
    )
    recorder = Recorder.begin(route, info, TracerConfig(strict=True))
    assert recorder is not None
    return recorder


def record_stream(
    path: str,
    body: Any,
    chunks: list[bytes],
    content_type: str = SSE,
    *,
    end: bool = True,
    encoding: str | None = None,
) -> list[spans.SpanRecord]:
    """Feed ``chunks`` to a recorder as a transport would; with ``end`` false the response is
    neither read to its end nor closed; with an ``encoding`` the chunks are compressed (and
    decoded by httpx's own decoder, as the transport has it)."""
    records: list[spans.SpanRecord] = []
    headers = httpx.Headers({"content-type": content_type})
    decoder = None
    if encoding is not None:
        headers["content-encoding"] = encoding
        chunks = compressed(chunks, encoding)
        decoder = HTTPX.decoder_factory(headers)
    with spans.listening(records.append, mlflow=False):
        recorder = recorder_for(path, body)
        recorder.on_response(200, headers, decoder)
        for chunk in chunks:
            recorder.on_chunk(chunk)
        if end:
            recorder.on_eof()
            recorder.on_close()
    return records


def compressed(chunks: list[bytes], encoding: str) -> list[bytes]:
    """Each chunk compressed and flushed on its own, as a server compressing a stream sends
    it (each network chunk decodes to its events)."""
    if encoding == "gzip":
        gzip = zlib.compressobj(wbits=31)
        return [gzip.compress(chunk) + gzip.flush(zlib.Z_SYNC_FLUSH) for chunk in chunks]
    assert encoding == "br", encoding
    br = brotli.Compressor()
    return [br.process(chunk) + br.flush() for chunk in chunks]


# --- an event that ends the stream ends the span, with the response still open --------------

# Per API: its route, a request, the events before the end, and the event that ends it.
ENDINGS: dict[str, tuple[str, Any, list[bytes], str]] = {
    "chat [DONE]": (
        "/v1/chat/completions",
        CHAT_BODY,
        sse((None, chat_chunk({"role": "assistant", "content": "Hi"})), (None, "[DONE]")),
        SSE,
    ),
    "chat error": (
        "/v1/chat/completions",
        CHAT_BODY,
        sse(
            (None, chat_chunk({"role": "assistant", "content": "Hi"})),
            (None, {"error": {"message": "overloaded", "type": "server_error"}}),
        ),
        SSE,
    ),
    "chat error first": (
        "/v1/chat/completions",
        CHAT_BODY,
        sse((None, {"error": {"message": "overloaded", "type": "server_error"}})),
        SSE,
    ),
    "anthropic message_stop": (
        "/v1/messages",
        {"model": "claude", "max_tokens": 5, "messages": [], "stream": True},
        sse(
            ("message_start", {"type": "message_start", "message": {"id": "m", "content": []}}),
            ("message_stop", {"type": "message_stop"}),
        ),
        SSE,
    ),
    "anthropic error": (
        "/v1/messages",
        {"model": "claude", "max_tokens": 5, "messages": [], "stream": True},
        sse(
            ("message_start", {"type": "message_start", "message": {"id": "m", "content": []}}),
            ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}),
        ),
        SSE,
    ),
    "responses completed": (
        "/v1/responses",
        {"model": "m", "input": "hi", "stream": True},
        sse(
            ("response.created", {"type": "response.created", "response": {"id": "r"}}),
            (
                "response.completed",
                {"type": "response.completed", "response": {"id": "r", "output": []}},
            ),
        ),
        SSE,
    ),
    "cohere message-end": (
        "/v2/chat",
        {"model": "command", "messages": [], "stream": True},
        sse(
            ("message-start", {"type": "message-start", "id": "x", "delta": {}}),
            ("message-end", {"type": "message-end", "delta": {"finish_reason": "COMPLETE"}}),
        ),
        SSE,
    ),
    "ollama done": (
        "/api/chat",
        {"model": "llama", "messages": []},
        [
            b'{"model":"llama","message":{"role":"assistant","content":"Hi"},"done":false}\n',
            b'{"model":"llama","message":{"role":"assistant","content":""},"done": true}\n',
        ],
        "application/x-ndjson",
    ),
    "gemini error": (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        {"contents": []},
        sse(
            (None, {"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "index": 0}]}),
            (None, {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}),
        ),
        SSE,
    ),
    "transcription done": (
        "/v1/audio/transcriptions",
        {"model": "gpt-4o-transcribe", "stream": True},
        sse(
            (None, {"type": "transcript.text.delta", "delta": "Hi"}),
            (None, {"type": "transcript.text.done", "text": "Hi"}),
        ),
        SSE,
    ),
    "speech done": (
        "/v1/audio/speech",
        {"model": "gpt-4o-mini-tts", "input": "hi", "voice": "alloy", "stream_format": "sse"},
        sse(
            (None, {"type": "speech.audio.delta", "audio": "AAAA"}),
            (None, {"type": "speech.audio.done", "usage": {"total_tokens": 3}}),
        ),
        SSE,
    ),
}


@pytest.mark.parametrize("case", list(ENDINGS))
def test_the_event_that_ends_a_stream_ends_its_span_at_once(case: str) -> None:
    path, body, chunks, content_type = ENDINGS[case]
    # Enough chunks before the end that the first event has been parsed: from then on the
    # recorder batches, and only the ending event's bytes can make it parse at once.
    records = record_stream(path, body, chunks, content_type, end=False)
    assert len(records) == 1, case
    assert records[0].attributes["stream.chunk_count"] >= 1


@pytest.mark.parametrize("encoding", ["gzip", "br"])
@pytest.mark.parametrize("case", list(ENDINGS))
def test_the_event_that_ends_a_compressed_stream_ends_its_span_at_once(
    case: str, encoding: str
) -> None:
    """The end markers are looked for in what the caller reads (the decoded bytes), not in
    the compressed ones, where they never appear."""
    path, body, chunks, content_type = ENDINGS[case]
    records = record_stream(path, body, chunks, content_type, end=False, encoding=encoding)
    assert len(records) == 1, case
    assert records[0].attributes["stream.chunk_count"] >= 1
    assert "tracer.problems" not in records[0].attributes


@pytest.mark.parametrize("case", list(ENDINGS))
def test_an_end_marker_cut_across_two_chunks_ends_the_span_at_once(case: str) -> None:
    """The ending event cut at every byte, the marker (``[DONE]``, ``error``,
    ``message_stop``, ...) included: the span ends when its second half arrives."""
    path, body, chunks, content_type = ENDINGS[case]
    *before, last = chunks
    for at in range(1, len(last)):
        pieces = [*before, last[:at], last[at:]]
        records = record_stream(path, body, pieces, content_type, end=False)
        assert len(records) == 1, (case, last[:at], last[at:])


def test_without_an_ending_event_chunks_wait_for_a_batch_or_the_end() -> None:
    frames = sse(*((None, chat_chunk({"content": "x" * 40})) for _ in range(50)))
    assert sum(map(len, frames)) < BATCH_BYTES
    records: list[spans.SpanRecord] = []
    with spans.listening(records.append, mlflow=False):
        recorder = recorder_for("/v1/chat/completions", CHAT_BODY)
        recorder.on_response(200, httpx.Headers({"content-type": SSE}), None)
        for frame in frames:
            recorder.on_chunk(frame)
        # Only the first event was parsed (to time it); the rest wait, nothing is recorded.
        assert (recorder._chunk_count, len(recorder._pending)) == (1, 49)
        assert records == []
        recorder.on_eof()
    assert records[0].attributes["stream.chunk_count"] == 50
    assert records[0].outputs["choices"][0]["message"]["content"] == "x" * 40 * 50


def test_a_batch_is_parsed_once_it_reaches_its_size() -> None:
    records: list[spans.SpanRecord] = []
    frame = sse((None, chat_chunk({"content": "y" * 1000})))[0]
    with spans.listening(records.append, mlflow=False):
        recorder = recorder_for("/v1/chat/completions", CHAT_BODY)
        recorder.on_response(200, httpx.Headers({"content-type": SSE}), None)
        held = []
        for _ in range(3 * BATCH_BYTES // len(frame)):
            recorder.on_chunk(frame)
            held.append(len(recorder._pending))
        recorder.on_close()
    assert max(held) <= BATCH_BYTES // len(frame) + 1  # memory stays bounded
    assert records[0].attributes["stream.chunk_count"] == 3 * BATCH_BYTES // len(frame)


def test_the_first_chunk_is_timed_when_it_arrives_not_when_it_is_parsed() -> None:
    records: list[spans.SpanRecord] = []
    first, second = sse(
        (None, chat_chunk({"role": "assistant", "content": "Hi"})), (None, "[DONE]")
    )
    with spans.listening(records.append, mlflow=False):
        recorder = recorder_for("/v1/chat/completions", CHAT_BODY)
        recorder.on_response(200, httpx.Headers({"content-type": SSE}), None)
        started = time.perf_counter()
        recorder.on_chunk(first)
        assert recorder._chunk_count == 0  # kept, not parsed: the caller gets it first
        time.sleep(0.2)
        recorder.on_chunk(second)
        waited_ms = (time.perf_counter() - started) * 1000
    ttfc = records[0].attributes["stream.time_to_first_chunk_ms"]
    assert waited_ms >= 200
    assert 0 <= ttfc < 150, ttfc  # the first chunk's arrival, not the parse after the sleep


def test_a_stream_read_before_the_tracer_saw_it_is_timed_when_it_arrived(
    experiment: str,
) -> None:
    """A response built with its body already read (``httpx.MockTransport``, as in users'
    tests) has no chunks to time: its first chunk arrived with the response."""
    body = b"".join(
        sse((None, chat_chunk({"role": "assistant", "content": "Hi"}, "stop")), (None, "[DONE]"))
    )
    inner = httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"content-type": SSE}, content=body)
    )
    started = time.perf_counter()
    client = OpenAI(
        base_url="http://127.0.0.1:9/v1",
        api_key="k",
        http_client=TracedClient(transport=inner),
    )
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == "Hi"
    elapsed_ms = (time.perf_counter() - started) * 1000
    span = only_llm_span(experiment)
    assert 0 <= span.attributes["stream.time_to_first_chunk_ms"] <= elapsed_ms
    assert span.attributes["stream.chunk_count"] == 1


# --- the same span however the bytes are cut ----------------------------------------------

TOOL_STREAM = b"".join(
    sse(
        (None, chat_chunk({"role": "assistant", "content": ""})),
        *(
            (None, chat_chunk({"content": piece}))
            for piece in ["Le ", "soleil ☀ ", "brille", " sur Paris."]
        ),
        (
            None,
            chat_chunk({"tool_calls": [{"index": 0, "id": "t1", "function": {"name": "f"}}]}),
        ),
        (None, chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]})),
        (None, chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]})),
        (None, chat_chunk({}, "tool_calls")),
        (None, "[DONE]"),
    )
)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def comparable(record: spans.SpanRecord) -> tuple[Any, dict[str, Any]]:
    attributes = dict(record.attributes)
    attributes.pop("stream.time_to_first_chunk_ms")
    return record.outputs, attributes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_the_span_is_the_same_however_the_stream_is_cut(points: list[int]) -> None:
    whole = record_stream("/v1/chat/completions", CHAT_BODY, [TOOL_STREAM])
    pieces = record_stream("/v1/chat/completions", CHAT_BODY, cut(TOOL_STREAM, points))
    assert comparable(pieces[0]) == comparable(whole[0])
    assert whole[0].attributes["stream.chunk_count"] == 9


# --- through the openai SDK ---------------------------------------------------------------


def test_a_long_stream_through_the_sdk_is_recorded_whole(experiment: str) -> None:
    """More than a batch of chunks, read with the real SDK: every piece is in the span, and
    the request (described only when the call ended) is recorded as sent."""
    reply = "".join(f"word{i} " for i in range(6000)).strip()
    with DevServer() as server:
        client = OpenAI(base_url=server.base_url, api_key="k", http_client=TracedClient())
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Go"},
            ],
            temperature=0.5,
            max_tokens=50_000,
            stream=True,
            extra_headers={"x-devserver-reply": reply},
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == reply
    span = only_llm_span(experiment)
    assert span.outputs["choices"][0]["message"]["content"] == reply
    assert span.inputs["messages"][0] == {"role": "system", "content": "Be brief."}
    assert span.attributes["gen_ai.request.temperature"] == 0.5
    assert span.attributes["stream.chunk_count"] > BATCH_BYTES // 200  # several batches
    assert span.name == "chat gpt-4o-mini"


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_an_error_event_in_a_compressed_stream_ends_the_span_when_the_sdk_raises(
    experiment: str, encoding: str
) -> None:
    """A compressed stream whose error event the SDK raises on, the connection left open by
    the server: the span is ended (``ERROR``, the API's message) by the time the caller
    catches the error, before anything is closed."""
    events = sse(
        (None, chat_chunk({"role": "assistant", "content": "Hi"})),
        (None, {"error": {"message": "The model is overloaded", "type": "server_error"}}),
    )
    headers = [
        ("Content-Type", SSE),
        ("Content-Encoding", encoding),
        ("Transfer-Encoding", "chunked"),
    ]
    pieces = [http_chunk(piece) for piece in compressed(events, encoding)]
    records: list[spans.SpanRecord] = []
    with RawServer() as server, spans.listening(records.append):
        server.respond([head(200, headers=headers), *pieces], close="wait")
        client = OpenAI(base_url=server.url + "/v1", api_key="k", http_client=TracedClient())
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        with pytest.raises(openai.APIError, match="overloaded"):
            for _ in stream:
                pass
        ended_when_raised = list(records)
        stream.close()
    (record,) = ended_when_raised
    assert record.status == "ERROR"
    assert record.error == "The model is overloaded"
    assert only_llm_span(experiment).status.status_code == "ERROR"


def test_an_error_event_in_a_compressed_stream_ends_the_span_while_the_body_is_open() -> None:
    """The same at the HTTP level, for any client: the span ends when the error event's line
    is read, while the response is still open (the end markers are looked for in what the
    caller reads, not in the compressed bytes)."""
    events = sse(
        (None, chat_chunk({"role": "assistant", "content": "Hi"})),
        (None, {"error": {"message": "overloaded", "type": "server_error"}}),
    )
    headers = [
        ("Content-Type", SSE),
        ("Content-Encoding", "gzip"),
        ("Transfer-Encoding", "chunked"),
    ]
    pieces = [http_chunk(piece) for piece in compressed(events, "gzip")]
    records: list[spans.SpanRecord] = []
    with RawServer() as server, spans.listening(records.append, mlflow=False):
        server.respond([head(200, headers=headers), *pieces], close="wait")
        with (
            TracedClient() as client,
            client.stream("POST", server.url + "/v1/chat/completions", json=CHAT_BODY) as response,
        ):
            for line in response.iter_lines():
                if "overloaded" in line:
                    break
            open_while_recorded = list(records)
    (record,) = open_while_recorded
    assert record.status == "ERROR" and record.error == "overloaded"
