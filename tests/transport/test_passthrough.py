"""Byte-identical passthrough, as properties: whatever the request, the response, how the
network cuts it and how it is compressed, the tracer changes nothing the server or the caller
sees, and the span holds what a reference reassembly of the generated response gives.

Each example sends the same two requests (one read with ``iter_raw``, one with ``read``) with a
plain ``httpx`` client and with the traced one. pytest-httpx replaces
``httpx.HTTPTransport.handle_request``, which is *below* the tracing transport, so
``httpx_mock.get_requests()`` holds exactly what the tracer handed on to the real transport.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import random
import ssl
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import brotli
import httpx
import mlflow
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, composite
from pytest_httpx import HTTPXMock, IteratorStream
from readback import read_spans, read_traces

from tracer import TracedAsyncClient, TracedClient

# Building a default SSL context costs ~20 ms; both clients get this same one (same arguments).
SSL_CONTEXT = ssl.create_default_context()
CLIENT_KWARGS: dict[str, Any] = {
    "verify": SSL_CONTEXT,
    "timeout": httpx.Timeout(600.0, connect=5.0),
    "follow_redirects": True,
}
SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
    report_multiple_bugs=False,  # shrink one failure, not each distinct one (each costs minutes)
)

# --- strategies: requests -------------------------------------------------------------------

# Text that stresses UTF-8 and line handling: any code point, plus multi-byte characters and
# the characters other line splitters treat as line ends (NEL, LS, PS), and raw CR/LF.
TEXT_CHARS = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(
        ["é", "ß", "你", "好", "☀", "🌍", "\u200d", "\x85", "\u2028", "\u2029", "\r", "\n"]
    ),
)
TEXT = st.text(TEXT_CHARS, max_size=24)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
HEADER_VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)


@composite
def tools(draw: DrawFn) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": draw(TOKEN),
                "description": draw(TEXT),
                "parameters": {
                    "type": "object",
                    "properties": draw(
                        st.dictionaries(TOKEN, st.just({"type": "string"}), max_size=3)
                    ),
                },
            },
        }
        for _ in range(draw(st.integers(1, 2)))
    ]


@composite
def chat_requests(draw: DrawFn) -> dict[str, Any]:
    """The keyword arguments of one ``client.stream("POST", ...)`` call."""
    body: dict[str, Any] = {
        "model": draw(st.text(max_size=16)),
        "messages": [
            {"role": draw(st.sampled_from(["system", "user", "assistant"])), "content": draw(TEXT)}
            for _ in range(draw(st.integers(1, 3)))
        ],
        "stream": draw(st.booleans()),
    }
    optional = {
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "max_tokens": st.integers(1, 10**6),
        "n": st.integers(1, 3),
        "seed": st.integers(-(2**31), 2**31),
        "stop": st.lists(TEXT, max_size=2),
        "tools": tools(),
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "stream_options": st.just({"include_usage": True}),
        "metadata": st.dictionaries(TOKEN, JSON_VALUES, max_size=3),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=5)):
        body[key] = draw(optional[key])

    kwargs: dict[str, Any] = {}
    how = draw(st.sampled_from(["json", "content"]))
    if how == "json":
        kwargs["json"] = body
    else:  # the bytes an SDK might serialise itself
        kwargs["content"] = json.dumps(
            body,
            ensure_ascii=draw(st.booleans()),
            indent=draw(st.sampled_from([None, 2])),
            separators=draw(st.sampled_from([None, (",", ":")])),
        ).encode()
    headers = draw(st.dictionaries(TOKEN.map(lambda t: "x-" + t), HEADER_VALUE, max_size=3))
    headers["Authorization"] = "Bearer sk-" + draw(TOKEN)
    if draw(st.booleans()):
        headers["x-stainless-retry-count"] = str(draw(st.integers(0, 3)))
    if how == "content":
        headers["content-type"] = "application/json"
    kwargs["headers"] = headers
    kwargs["params"] = draw(st.dictionaries(TOKEN, TEXT, max_size=2))
    path = draw(
        st.sampled_from(
            [
                "/v1/chat/completions",
                "/openai/deployments/gpt-4o/chat/completions",
                "/serving-endpoints/chat/completions",
            ]
        )
    )
    kwargs["url"] = "http://llm.test" + path
    return kwargs


def request_body(kwargs: dict[str, Any]) -> Any:
    return kwargs["json"] if "json" in kwargs else json.loads(kwargs["content"])


# --- strategies: chat completion streams ----------------------------------------------------


@dataclass
class ChoiceRef:
    """What a reference reassembly of one choice gives."""

    content: list[str] = field(default_factory=list)
    tools: list[list[Any]] = field(default_factory=list)  # [id, name, [argument pieces]]
    finish_reason: str | None = None


@dataclass
class StreamRef:
    body: bytes
    choices: dict[int, ChoiceRef]
    data_events: int
    done: bool
    usage: dict[str, int] | None
    model: str
    id: str


LINE_ENDS = st.sampled_from([b"\r\n", b"\n", b"\r"])


@composite
def sse_streams(draw: DrawFn) -> StreamRef:
    """A chat.completion.chunk stream, serialised with mixed line endings, comments, ids,
    multi-line data and spacing variants, and the reference reassembly of it."""
    model = draw(st.sampled_from(["gpt-4o-mini-2024-07-18", "m", "llama-3-😀"]))
    cid = "chatcmpl-" + draw(TOKEN)
    n = draw(st.integers(1, 2))
    refs = {i: ChoiceRef() for i in range(n)}
    events: list[dict[str, Any]] = []

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": choices,
            **extra,
        }

    for i in range(n):
        events.append(chunk([{"index": i, "delta": {"role": "assistant", "content": ""}}]))
    for _ in range(draw(st.integers(0, 8))):
        i = draw(st.integers(0, n - 1))
        ref = refs[i]
        kind = draw(st.sampled_from(["content", "content", "tool_start", "tool_args"]))
        if kind == "tool_args" and not ref.tools:
            kind = "tool_start"
        if kind == "content":
            text = draw(TEXT)
            ref.content.append(text)
            delta: dict[str, Any] = {"content": text}
        elif kind == "tool_start":
            position = len(ref.tools)
            call_id, name, args = "call_" + draw(TOKEN), draw(TOKEN), draw(TEXT)
            ref.tools.append([call_id, name, [args]])
            delta = {
                "tool_calls": [
                    {
                        "index": position,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": args},
                    }
                ]
            }
        else:
            position = draw(st.integers(0, len(ref.tools) - 1))
            args = draw(TEXT)
            ref.tools[position][2].append(args)
            delta = {"tool_calls": [{"index": position, "function": {"arguments": args}}]}
        events.append(chunk([{"index": i, "delta": delta, "finish_reason": None}]))
    for i in range(n):
        reason = draw(st.sampled_from(["stop", "length", "tool_calls"]))
        refs[i].finish_reason = reason
        events.append(chunk([{"index": i, "delta": {}, "finish_reason": reason}]))
    usage = None
    if draw(st.booleans()):
        usage = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
        events.append(chunk([], usage=usage))
    done = draw(st.booleans())

    # Serialise: a list of lines, each with its own terminator.
    lines: list[bytes] = []
    for number, event in enumerate(events):
        if draw(st.integers(0, 5)) == 0:
            lines.append(
                b": " + draw(TEXT.map(lambda t: t.replace("\r", "").replace("\n", ""))).encode()
            )
        if draw(st.integers(0, 5)) == 0:
            lines.append(f"id: {number}".encode())
        multiline = draw(st.integers(0, 4)) == 0
        text = json.dumps(event, ensure_ascii=draw(st.booleans()), indent=1 if multiline else None)
        prefix = draw(st.sampled_from([b"data: ", b"data:"]))
        lines.extend(prefix + part.encode() for part in text.split("\n"))
        lines.extend([b""] * draw(st.integers(1, 2)))  # the blank line(s) that dispatch
    if done:
        lines.extend([b"data: [DONE]", b""])
    if draw(st.integers(0, 4)) == 0:
        lines.pop()  # a server that forgets the final blank line

    out = bytearray(b"\xef\xbb\xbf" if draw(st.integers(0, 5)) == 0 else b"")  # a BOM
    previous_end = b""
    for line in lines:
        end = draw(LINE_ENDS)
        if previous_end == b"\r" and not line and end == b"\n":
            end = b"\r\n"  # CR + LF would read as one CRLF: not the stream we mean
        out += line + end
        previous_end = end
    data_events = len(events)
    return StreamRef(bytes(out), refs, data_events, done, usage, model, cid)


@composite
def chat_completions(draw: DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A non-streaming chat.completion body (bytes as a server might write them) and its
    parsed value."""
    choices = []
    for i in range(draw(st.integers(1, 2))):
        message: dict[str, Any] = {"role": "assistant", "content": draw(TEXT), "refusal": None}
        if draw(st.booleans()):
            message["tool_calls"] = [
                {
                    "id": "call_" + draw(TOKEN),
                    "type": "function",
                    "function": {"name": draw(TOKEN), "arguments": draw(TEXT)},
                }
            ]
        choices.append({"index": i, "message": message, "logprobs": None, "finish_reason": "stop"})
    value = {
        "id": "chatcmpl-" + draw(TOKEN),
        "object": "chat.completion",
        "created": 1700000000,
        "model": draw(st.text(max_size=12)),
        "choices": choices,
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
    }
    if draw(st.booleans()):
        value["extra"] = draw(JSON_VALUES)
    body = json.dumps(
        value,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 2])),
        separators=draw(st.sampled_from([None, (",", ":")])),
    ).encode()
    return body, json.loads(body)


# --- strategies: compression and network pieces --------------------------------------------

ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "identity": lambda b: b,
    "gzip": lambda b: gzip.compress(b, mtime=0),  # deterministic, so examples replay
    "deflate": zlib.compress,
    "br": brotli.compress,
}


def awkward_cuts(body: bytes) -> list[int]:
    """Cut points after every CR and LF (so inside every CRLF, and a lone line end is a piece
    of its own) and inside every multi-byte UTF-8 character."""
    cuts = [i + 1 for i in range(len(body)) if body[i] in b"\r\n"]
    cuts += [i for i in range(1, len(body)) if body[i] & 0xC0 == 0x80]  # continuation bytes
    return cuts


@composite
def network_pieces(draw: DrawFn, body: bytes, encoding: str) -> list[bytes]:
    """``body`` (already compressed) cut into pieces; empty pieces included now and then."""
    mode = draw(st.sampled_from(["awkward", "bytes", "random", "whole"]))
    if mode == "whole":
        cuts: list[int] = []
    elif mode == "bytes":
        cuts = list(range(1, len(body)))
    elif mode == "awkward" and encoding == "identity":
        cuts = awkward_cuts(body) + draw(st.lists(st.integers(0, len(body)), max_size=5))
    else:
        cuts = draw(st.lists(st.integers(0, len(body)), max_size=40))
    points = [0, *sorted(cuts), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(points)]


# --- running the same requests through a plain and a traced client --------------------------


@dataclass
class Run:
    raw_pieces: list[bytes]
    content: bytes
    text: str
    status: int
    headers: list[tuple[bytes, bytes]]


def run_sync(client: httpx.Client, request: dict[str, Any]) -> Run:
    kwargs = {k: v for k, v in request.items() if k != "url"}
    with client:
        with client.stream("POST", request["url"], **kwargs) as response:
            pieces = list(response.iter_raw())
        read = client.post(request["url"], **kwargs)
    return Run(pieces, read.content, read.text, read.status_code, read.headers.raw)


def run_async(client: httpx.AsyncClient, request: dict[str, Any]) -> Run:
    kwargs = {k: v for k, v in request.items() if k != "url"}

    async def main() -> Run:
        async with client:
            async with client.stream("POST", request["url"], **kwargs) as response:
                pieces = [piece async for piece in response.aiter_raw()]
            read = await client.post(request["url"], **kwargs)
            await read.aread()
        return Run(pieces, read.content, read.text, read.status_code, read.headers.raw)

    return asyncio.run(main())


def request_view(request: httpx.Request) -> tuple[Any, ...]:
    return (
        request.method,
        str(request.url),
        request.url.raw_path,
        request.headers.raw,
        request.content,
        request.extensions.get("timeout"),
    )


def compare_plain_and_traced(
    httpx_mock: HTTPXMock,
    request: dict[str, Any],
    pieces: list[bytes],
    headers: dict[str, str],
    use_async: bool,
) -> tuple[Run, str]:
    """Run ``request`` twice with a plain and twice with a traced client against a server that
    answers ``pieces``; assert everything the caller and the server see is identical.
    Returns the traced run and the experiment its spans went to."""
    httpx_mock.reset()
    httpx_mock.add_callback(
        lambda _: httpx.Response(200, headers=headers, stream=IteratorStream(pieces)),
        is_reusable=True,
    )
    # Hypothesis seeds the global random generator the same way for every example, and
    # OpenTelemetry draws trace ids from it: without this, every example's traces had the same
    # ids, which the store refuses in a second experiment.
    random.seed(uuid.uuid4().int)
    experiment = mlflow.set_experiment(f"passthrough-{uuid.uuid4().hex}").experiment_id
    if use_async:
        plain = run_async(httpx.AsyncClient(**CLIENT_KWARGS), request)
        traced = run_async(TracedAsyncClient(**CLIENT_KWARGS), request)
    else:
        plain = run_sync(httpx.Client(**CLIENT_KWARGS), request)
        traced = run_sync(TracedClient(**CLIENT_KWARGS), request)

    sent = [request_view(r) for r in httpx_mock.get_requests()]
    assert len(sent) == 4
    assert sent[2:] == sent[:2], "the tracer changed the request its inner transport received"
    assert traced.raw_pieces == plain.raw_pieces == [p for p in pieces if p]
    assert traced.content == plain.content
    assert traced.text == plain.text
    assert (traced.status, traced.headers) == (plain.status, plain.headers)
    return traced, experiment


def response_headers(draw: DrawFn, content_type: str, encoding: str) -> dict[str, str]:
    headers = {"content-type": content_type, "x-request-id": "req_" + draw(TOKEN)}
    if encoding != "identity":
        headers["content-encoding"] = encoding
    return headers


def assert_stream_span(span: Any, ref: StreamRef, inputs: Any) -> None:
    out = span.outputs
    assert span.inputs == inputs
    assert out["id"] == ref.id
    assert out["model"] == ref.model
    assert [c["index"] for c in out["choices"]] == sorted(ref.choices)
    for got, (_, want) in zip(out["choices"], sorted(ref.choices.items()), strict=True):
        message = got["message"]
        assert (message["content"] or "") == "".join(want.content)
        assert got["finish_reason"] == want.finish_reason
        calls = [
            (c["id"], c["function"]["name"], c["function"]["arguments"])
            for c in message.get("tool_calls") or []
        ]
        assert calls == [(i, name, "".join(args)) for i, name, args in want.tools]
    assert out.get("usage") == ref.usage
    assert span.attributes["stream.chunk_count"] == ref.data_events
    assert span.attributes["stream.completed"] is ref.done
    assert "tracer.problems" not in span.attributes, span.attributes["tracer.problems"]


# --- the properties -------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODERS)
@settings(SETTINGS, max_examples=20)
@given(data=st.data())
def test_sse_stream_passes_through_byte_identical(
    httpx_mock: HTTPXMock, experiment: str, encoding: str, data: st.DataObject
) -> None:
    request = data.draw(chat_requests(), label="request")
    ref = data.draw(sse_streams(), label="stream")
    pieces = data.draw(network_pieces(ENCODERS[encoding](ref.body), encoding), label="pieces")
    use_async = data.draw(st.booleans(), label="async")
    content_type = data.draw(
        st.sampled_from(["text/event-stream", "text/event-stream; charset=utf-8"])
    )
    headers = response_headers(data.draw, content_type, encoding)

    traced, spans_in = compare_plain_and_traced(httpx_mock, request, pieces, headers, use_async)
    assert traced.content == ref.body
    spans = read_spans(spans_in)
    assert [s.span_type for s in spans] == ["CHAT_MODEL", "CHAT_MODEL"]  # one per request
    for span in spans:
        assert_stream_span(span, ref, request_body(request))


@pytest.mark.parametrize("encoding", ENCODERS)
@settings(SETTINGS, max_examples=12)
@given(data=st.data())
def test_json_body_passes_through_byte_identical(
    httpx_mock: HTTPXMock, experiment: str, encoding: str, data: st.DataObject
) -> None:
    request = data.draw(chat_requests(), label="request")
    body, value = data.draw(chat_completions(), label="body")
    pieces = data.draw(network_pieces(ENCODERS[encoding](body), encoding), label="pieces")
    use_async = data.draw(st.booleans(), label="async")
    content_type = data.draw(
        st.sampled_from(["application/json", "application/json; charset=utf-8"])
    )
    headers = response_headers(data.draw, content_type, encoding)

    traced, spans_in = compare_plain_and_traced(httpx_mock, request, pieces, headers, use_async)
    assert traced.content == body
    assert json.loads(traced.text) == value
    spans = read_spans(spans_in)
    assert [s.span_type for s in spans] == ["CHAT_MODEL", "CHAT_MODEL"]
    for span in spans:
        assert span.inputs == request_body(request)
        assert span.outputs == value
        assert span.attributes["http.response.status_code"] == 200
        assert "tracer.problems" not in span.attributes, span.attributes["tracer.problems"]


@pytest.mark.parametrize("encoding", ENCODERS)
@settings(SETTINGS, max_examples=10)
@given(data=st.data())
def test_disabled_tracer_passes_through_and_records_nothing(
    httpx_mock: HTTPXMock,
    experiment: str,
    monkeypatch: pytest.MonkeyPatch,
    encoding: str,
    data: st.DataObject,
) -> None:
    monkeypatch.setenv("TRACER_ENABLED", "false")  # before the traced client is built
    request = data.draw(chat_requests(), label="request")
    if data.draw(st.booleans(), label="sse"):
        body = data.draw(sse_streams(), label="stream").body
        content_type = "text/event-stream"
    else:
        body = data.draw(chat_completions(), label="body")[0]
        content_type = "application/json"
    pieces = data.draw(network_pieces(ENCODERS[encoding](body), encoding), label="pieces")
    use_async = data.draw(st.booleans(), label="async")
    headers = response_headers(data.draw, content_type, encoding)

    traced, spans_in = compare_plain_and_traced(httpx_mock, request, pieces, headers, use_async)
    assert traced.content == body
    assert read_traces(spans_in) == []
