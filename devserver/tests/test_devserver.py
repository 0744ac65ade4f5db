"""Tests for the local OpenAI-compatible dev server (httpx and the real openai SDK)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest
from llm_devserver import DevServer, RecordedRequest
from openai import OpenAI

MODEL = "gpt-4o-mini"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
MULTIBYTE = "héllo wörld 你好 🌍"


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    """One dev server for the whole module."""
    with DevServer() as srv:
        yield srv


@pytest.fixture()
def http(server: DevServer) -> Iterator[httpx.Client]:
    """A plain httpx client pointed at the server."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture()
def sdk(server: DevServer) -> Iterator[OpenAI]:
    """A real OpenAI SDK client pointed at the server (no retries)."""
    with OpenAI(base_url=server.base_url, api_key="test", max_retries=0) as client:
        yield client


def _chat(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    }
    body.update(extra)
    return body


def _sse_events(text: str) -> list[Any]:
    events: list[Any] = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


# ------------------------------------------------------------------------------------------
# Basics
# ------------------------------------------------------------------------------------------


def test_url_properties(server: DevServer) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
    assert server.base_url == server.url + "/v1"
    assert server.port > 0


def test_non_streaming_realistic_fields(server: DevServer, http: httpx.Client) -> None:
    server.clear()
    resp = http.post("/v1/chat/completions", json=_chat())
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["content-encoding"] == "gzip"  # httpx sends Accept-Encoding: gzip
    assert int(resp.headers["content-length"]) > 0
    assert re.fullmatch(r"req_[0-9a-f]{32}", resp.headers["x-request-id"])
    assert resp.headers["openai-version"] == "2020-10-01"
    assert int(resp.headers["openai-processing-ms"]) >= 0

    data = resp.json()
    assert re.fullmatch(r"chatcmpl-[A-Za-z0-9]+", data["id"])
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == MODEL
    assert re.fullmatch(r"fp_[0-9a-f]+", data["system_fingerprint"])
    assert data["service_tier"] == "default"
    (choice,) = data["choices"]
    assert choice == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": "The capital of France is Paris.",
            "refusal": None,
            "annotations": [],
        },
        "logprobs": None,
        "finish_reason": "stop",
    }
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert usage["completion_tokens_details"] == {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    }

    (recorded,) = server.requests
    assert isinstance(recorded, RecordedRequest)
    assert recorded.method == "POST"
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["content-type"] == "application/json"
    assert recorded.json()["model"] == MODEL


def test_sdk_non_streaming_echo_and_controls(sdk: OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Why is the sky blue?"}],
        n=2,
        logprobs=True,
        top_logprobs=2,
        extra_headers={"x-devserver-cached-tokens": "128"},
    )
    first, second = completion.choices
    assert first.message.content == (
        'You asked: "Why is the sky blue?". Here is a thoughtful answer from the local server.'
    )
    assert second.message.content == "(choice 1) " + (first.message.content or "")
    assert first.logprobs is not None and first.logprobs.content
    assert "".join(t.token for t in first.logprobs.content) == first.message.content
    assert len(first.logprobs.content[0].top_logprobs) == 2
    assert completion.usage is not None
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 128
    assert completion.usage.prompt_tokens >= 128


def test_long_prompt_reports_cached_tokens(sdk: OpenAI) -> None:
    long_question = "Tell me everything about " + "the history of computing " * 40
    completion = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": long_question}]
    )
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    cached = completion.usage.prompt_tokens_details.cached_tokens
    assert cached and cached % 64 == 0 and cached <= completion.usage.prompt_tokens


def test_max_tokens_truncates(sdk: OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Explain quantum tunnelling in detail"}],
        max_tokens=4,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content == 'You asked: "Explain'
    assert completion.usage is not None and completion.usage.completion_tokens <= 4


def test_refusal(sdk: OpenAI, http: httpx.Client) -> None:
    headers = {"x-devserver-refusal": "I can't help with that."}
    completion = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], extra_headers=headers
    )
    assert completion.choices[0].message.content is None
    assert completion.choices[0].message.refusal == "I can't help with that."

    resp = http.post("/v1/chat/completions", json=_chat(stream=True), headers=headers)
    events = _sse_events(resp.text)
    refusal = "".join(e["choices"][0]["delta"].get("refusal") or "" for e in events[:-1])
    assert refusal == "I can't help with that."


# ------------------------------------------------------------------------------------------
# Tools
# ------------------------------------------------------------------------------------------


def test_sdk_streaming_tool_calls(sdk: OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What's the weather in Tokyo and in paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish_reason = None
    n_chunks = 0
    ids = set()
    for chunk in stream:
        n_chunks += 1
        ids.add(chunk.id)
        choice = chunk.choices[0]
        finish_reason = choice.finish_reason or finish_reason
        for delta_call in choice.delta.tool_calls or []:
            call = calls.setdefault(delta_call.index, {"id": "", "name": "", "arguments": ""})
            if delta_call.id:
                call["id"] = delta_call.id
            if delta_call.function and delta_call.function.name:
                call["name"] = delta_call.function.name
            if delta_call.function and delta_call.function.arguments:
                call["arguments"] += delta_call.function.arguments
    assert len(ids) == 1
    assert n_chunks > 10
    assert finish_reason == "tool_calls"
    assert sorted(calls) == [0, 1]
    for call in calls.values():
        assert re.fullmatch(r"call_[A-Za-z0-9]{24}", call["id"])
        assert call["name"] == "get_weather"
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [
        {"city": "Tokyo", "unit": "celsius"},
        {"city": "Paris", "unit": "celsius"},
    ]


def test_non_streaming_generic_tool_and_tool_result(sdk: OpenAI) -> None:
    search_tool: Any = {
        "type": "function",
        "function": {
            "name": "search_docs",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["query", "limit"],
            },
        },
    }
    messages: list[Any] = [{"role": "user", "content": "Search the docs for tokenizers"}]
    completion = sdk.chat.completions.create(model=MODEL, messages=messages, tools=[search_tool])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "search_docs"  # type: ignore[union-attr]
    args = call.function.arguments  # type: ignore[union-attr]
    assert args == '{"query":"tokenizers","limit":1}'

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "3 results"},
    ]
    answer = sdk.chat.completions.create(model=MODEL, messages=messages, tools=[search_tool])
    assert answer.choices[0].message.content == "Based on the tools: 3 results"
    assert answer.choices[0].finish_reason == "stop"

    no_tools = sdk.chat.completions.create(
        model=MODEL, messages=messages[:1], tools=[search_tool], tool_choice="none"
    )
    assert no_tools.choices[0].message.tool_calls is None


# ------------------------------------------------------------------------------------------
# Streaming
# ------------------------------------------------------------------------------------------


def test_sdk_streaming_n2_interleaved(sdk: OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        n=2,
        stream=True,
    )
    texts = {0: "", 1: ""}
    order: list[int] = []
    finishes: dict[int, str] = {}
    for chunk in stream:
        for choice in chunk.choices:
            order.append(choice.index)
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts == {
        0: "The capital of France is Paris.",
        1: "(choice 1) The capital of France is Paris.",
    }
    assert finishes == {0: "stop", 1: "stop"}
    assert order[:4] == [0, 1, 0, 1]


def test_stream_include_usage(sdk: OpenAI, http: httpx.Client) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi there"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    resp = http.post(
        "/v1/chat/completions", json=_chat(stream=True, stream_options={"include_usage": True})
    )
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert resp.headers["transfer-encoding"] == "chunked"
    events = _sse_events(resp.text)
    assert events[-1] == "[DONE]"
    assert all("usage" in e and e["usage"] is None for e in events[:-2])
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert events[-2]["choices"] == [] and events[-2]["usage"]["total_tokens"] > 0

    plain = _sse_events(http.post("/v1/chat/completions", json=_chat(stream=True)).text)
    assert all("usage" not in e for e in plain[:-1])


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_forced_encoding_on_stream(http: httpx.Client, encoding: str) -> None:
    if encoding == "br":
        pytest.importorskip("brotli")
    headers = {"x-devserver-encoding": encoding, "x-devserver-chunk-delay-ms": "1"}
    with http.stream(
        "POST", "/v1/chat/completions", json=_chat(stream=True), headers=headers
    ) as resp:
        assert resp.headers["content-encoding"] == encoding
        assert resp.headers["transfer-encoding"] == "chunked"
        events = [line for line in resp.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    text = "".join(
        json.loads(e[6:])["choices"][0]["delta"].get("content") or "" for e in events[:-1]
    )
    assert text == "The capital of France is Paris."


def test_stream_events_arrive_incrementally(http: httpx.Client) -> None:
    headers = {"x-devserver-encoding": "gzip", "x-devserver-chunk-delay-ms": "2"}
    with http.stream(
        "POST", "/v1/chat/completions", json=_chat(stream=True), headers=headers
    ) as resp:
        raw_chunks = list(resp.iter_raw())
    assert len(raw_chunks) > 5


def test_forced_gzip_on_json(http: httpx.Client) -> None:
    resp = http.get("/health", headers={"x-devserver-encoding": "gzip"})
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.json() == {"status": "ok"}
    resp = http.post(
        "/v1/chat/completions", json=_chat(), headers={"x-devserver-encoding": "identity"}
    )
    assert "content-encoding" not in resp.headers
    assert resp.json()["choices"][0]["message"]["content"] == "The capital of France is Paris."


def test_list_content_format(http: httpx.Client) -> None:
    headers = {"x-devserver-content-format": "list"}
    resp = http.post("/v1/chat/completions", json=_chat(), headers=headers)
    content = resp.json()["choices"][0]["message"]["content"]
    assert content == [{"type": "text", "text": "The capital of France is Paris."}]

    resp = http.post("/v1/chat/completions", json=_chat(stream=True), headers=headers)
    events = _sse_events(resp.text)
    pieces = [e["choices"][0]["delta"].get("content") for e in events[1:-2]]
    assert all(isinstance(p, list) and p[0]["type"] == "text" for p in pieces)
    assert "".join(p[0]["text"] for p in pieces) == "The capital of France is Paris."


def test_multibyte_reply(sdk: OpenAI, http: httpx.Client) -> None:
    headers = {"x-devserver-reply": quote(MULTIBYTE)}
    completion = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], extra_headers=headers
    )
    assert completion.choices[0].message.content == MULTIBYTE

    stream = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True, extra_headers=headers
    )
    pieces = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert "".join(pieces) == MULTIBYTE
    assert len(pieces) > 3
    assert any(not p.isascii() for p in pieces)

    resp = http.post("/v1/chat/completions", json=_chat(stream=True), headers=headers)
    assert MULTIBYTE.encode() not in resp.content  # split across events
    assert "🌍".encode() in resp.content


# ------------------------------------------------------------------------------------------
# Errors, retries, broken streams
# ------------------------------------------------------------------------------------------


def test_status_401_raises_authentication_error(sdk: OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-devserver-status": "401"},
        )
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    assert "Incorrect API key provided" in info.value.message


def test_status_429_has_retry_after(http: httpx.Client) -> None:
    resp = http.post("/v1/chat/completions", json=_chat(), headers={"x-devserver-status": "429"})
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "0"
    error = resp.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["param"] is None


def test_fail_attempts_then_success(server: DevServer) -> None:
    server.clear()
    with OpenAI(base_url=server.base_url, api_key="test", max_retries=2) as client:
        completion = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            extra_headers={"x-devserver-fail-attempts": "2"},
        )
    assert completion.choices[0].message.content == "The capital of France is Paris."
    assert len(server.requests) == 3
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1", "2"]


def test_stream_error_after_raises_api_error(sdk: OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers={"x-devserver-stream-error-after": "3"},
    )
    received = 0
    with pytest.raises(openai.APIError, match="server had an error"):
        for _ in stream:
            received += 1
    assert received == 3


def test_disconnect_after(http: httpx.Client) -> None:
    headers = {"x-devserver-disconnect-after": "2"}
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/chat/completions", json=_chat(stream=True), headers=headers)
    assert http.get("/health").status_code == 200  # the server survives


def test_malformed_json_and_unknown_paths(http: httpx.Client) -> None:
    resp = http.post("/v1/chat/completions", content=b"{not json")
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"

    resp = http.get("/v1/nope?x=1")
    assert resp.status_code == 404
    assert resp.json()["error"]["message"] == "Invalid URL (GET /v1/nope)"

    models = http.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["object"] == "model"


def test_other_chat_paths(http: httpx.Client) -> None:
    for path in ("/serving-endpoints/chat/completions", "/openai/deployments/x/chat/completions"):
        resp = http.post(path + "?api-version=2024-06-01", json=_chat())
        assert resp.status_code == 200
        assert resp.json()["object"] == "chat.completion"


def test_keep_alive(server: DevServer, http: httpx.Client) -> None:
    for i in range(30):
        stream = i % 2 == 0
        resp = http.post("/v1/chat/completions", json=_chat(stream=stream))
        assert resp.status_code == 200
    pool = http._transport._pool  # type: ignore[attr-defined]
    assert len(pool.connections) == 1
