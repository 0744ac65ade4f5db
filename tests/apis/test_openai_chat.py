"""Chat completions through the real openai SDK (sync and async) against the local server,
asserted on spans read back from the MLflow store."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from llm_devserver import DevServer
from readback import only_llm_span
from sdk import API_KEY, QUESTION, WEATHER_TOOL, Chat, joined_content


@pytest.fixture(params=["sync", "async", "sync-httpx2", "async-httpx2"])
def chat(request: pytest.FixtureRequest, server: DevServer) -> Chat:
    return Chat(request.param, server.base_url)


def span_json(span: Any) -> str:
    return json.dumps(span.to_dict())


def test_non_streaming_span_is_complete(chat: Chat, experiment: str, server: DevServer) -> None:
    response = chat.create(temperature=0.1, max_tokens=100)
    span = only_llm_span(experiment)

    assert span.name == "chat gpt-4o-mini"
    assert span.span_type == "CHAT_MODEL"
    assert span.status.status_code == "OK"
    assert span.parent_id is None
    assert span.inputs == {
        "messages": QUESTION,
        "model": "gpt-4o-mini",
        "temperature": 0.1,
        "max_tokens": 100,
    }
    assert span.outputs == response.to_dict()
    assert response.choices[0].message.content == "The capital of France is Paris."
    attrs = span.attributes
    assert attrs["model"] == "gpt-4o-mini"
    assert attrs["temperature"] == 0.1
    assert attrs["max_tokens"] == 100
    assert "messages" not in attrs
    assert attrs["mlflow.message.format"] == "openai"
    assert attrs["mlflow.llm.model"] == "gpt-4o-mini"
    assert attrs["mlflow.chat.tokenUsage"] == {
        "input_tokens": response.usage.prompt_tokens,
        "output_tokens": response.usage.completion_tokens,
        "total_tokens": response.usage.total_tokens,
        "cache_read_input_tokens": 0,
    }
    assert attrs["http.request.method"] == "POST"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.full"] == f"{server.base_url}/chat/completions"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["http.response.header.x-request-id"] == response._request_id
    assert attrs["http.request.resend_count"] == 0
    assert "stream.completed" not in attrs
    assert "tracer.problems" not in attrs
    assert API_KEY not in span_json(span)
    assert span.end_time_ns > span.start_time_ns


def test_root_span_times_the_whole_call(chat: Chat, experiment: str) -> None:
    # A root span reaches MLflow when the call ends; its start is still the request's.
    before = time.time_ns()
    chunks = chat.create(stream=True, extra_headers={"x-devserver-chunk-delay-ms": "20"})
    after = time.time_ns()
    span = only_llm_span(experiment)

    first_chunk_ms = span.attributes["stream.time_to_first_chunk_ms"]
    assert before <= span.start_time_ns < span.start_time_ns + first_chunk_ms * 1e6
    assert span.start_time_ns + first_chunk_ms * 1e6 <= span.end_time_ns <= after
    # The server waits 20 ms between chunks: all of it lies between the span's start and end.
    assert (span.end_time_ns - span.start_time_ns) / 1e6 >= 20 * (len(chunks) - 1)


def test_streaming_is_reassembled(chat: Chat, experiment: str) -> None:
    chunks = chat.create(stream=True, stream_options={"include_usage": True})
    span = only_llm_span(experiment)

    text = joined_content(chunks)
    assert text == "The capital of France is Paris."
    assert len(chunks) > 5
    out = span.outputs
    assert out["object"] == "chat.completion"
    assert out["id"] == chunks[0].id
    assert out["model"] == chunks[0].model
    assert out["system_fingerprint"] == chunks[0].system_fingerprint
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    usage = chunks[-1].usage
    assert out["usage"] == usage.to_dict()
    attrs = span.attributes
    assert attrs["mlflow.chat.tokenUsage"]["input_tokens"] == usage.prompt_tokens
    assert attrs["mlflow.chat.tokenUsage"]["output_tokens"] == usage.completion_tokens
    assert attrs["stream"] is True
    assert attrs["stream_options"] == {"include_usage": True}
    assert attrs["stream.completed"] is True
    assert attrs["stream.chunk_count"] == len(chunks)
    assert (
        0 < attrs["stream.time_to_first_chunk_ms"] < (span.end_time_ns - span.start_time_ns) / 1e6
    )
    assert span.status.status_code == "OK"


def test_streamed_tool_calls_have_full_arguments(chat: Chat, experiment: str) -> None:
    messages = [{"role": "user", "content": "What's the weather in Paris and Tokyo?"}]
    chunks = chat.create(stream=True, messages=messages, tools=[WEATHER_TOOL])
    span = only_llm_span(experiment)

    starts = [
        call
        for chunk in chunks
        for choice in chunk.choices
        for call in choice.delta.tool_calls or ()
        if call.id
    ]
    message = span.outputs["choices"][0]["message"]
    assert span.outputs["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] is None
    calls = message["tool_calls"]
    assert [c["id"] for c in calls] == [s.id for s in starts]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_weather"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris"},
        {"city": "Tokyo"},
    ]
    assert span.attributes["mlflow.chat.tools"] == [WEATHER_TOOL]
    assert span.attributes["tools"] == [WEATHER_TOOL]


def test_non_streaming_tool_calls(chat: Chat, experiment: str) -> None:
    messages = [{"role": "user", "content": "Weather in London?"}]
    response = chat.create(messages=messages, tools=[WEATHER_TOOL], tool_choice="auto")
    span = only_llm_span(experiment)
    assert span.outputs == response.to_dict()
    call = span.outputs["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "London"}
    assert span.attributes["mlflow.chat.tools"] == [WEATHER_TOOL]
    assert span.attributes["tool_choice"] == "auto"


def test_every_choice_of_a_stream(chat: Chat, experiment: str) -> None:
    chunks = chat.create(stream=True, n=3, logprobs=True)
    span = only_llm_span(experiment)
    choices = span.outputs["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2]
    for choice in choices:
        assert choice["message"]["content"] == joined_content(chunks, choice["index"])
        assert choice["finish_reason"] == "stop"
        tokens = [
            lp.token
            for chunk in chunks
            for c in chunk.choices
            if c.index == choice["index"] and c.logprobs
            for lp in c.logprobs.content or ()
        ]
        assert [t["token"] for t in choice["logprobs"]["content"]] == tokens
    assert len({c["message"]["content"] for c in choices}) == 3


def test_cached_tokens_are_reported(chat: Chat, experiment: str) -> None:
    chat.create(extra_headers={"x-devserver-cached-tokens": "12"})
    usage = only_llm_span(experiment).attributes["mlflow.chat.tokenUsage"]
    assert usage["cache_read_input_tokens"] == 12


def test_refusal_is_reassembled(chat: Chat, experiment: str) -> None:
    chunks = chat.create(
        stream=True, extra_headers={"x-devserver-refusal": "I can't help with that."}
    )
    refusal = "".join(c.delta.refusal or "" for chunk in chunks for c in chunk.choices)
    message = only_llm_span(experiment).outputs["choices"][0]["message"]
    assert message["refusal"] == refusal == "I can't help with that."


def test_multibyte_text_survives_any_chunking(chat: Chat, experiment: str) -> None:
    reply = "héllo wörld 你好 🌍 — ça va?"
    from urllib.parse import quote

    chunks = chat.create(stream=True, extra_headers={"x-devserver-reply": quote(reply)})
    assert joined_content(chunks) == reply
    span = only_llm_span(experiment)
    assert span.outputs["choices"][0]["message"]["content"] == reply
    assert "tracer.problems" not in span.attributes


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
@pytest.mark.parametrize("stream", [False, True])
def test_compressed_responses(chat: Chat, experiment: str, encoding: str, stream: bool) -> None:
    result = chat.create(stream=stream, extra_headers={"x-devserver-encoding": encoding})
    span = only_llm_span(experiment)
    if stream:
        assert joined_content(result) == "The capital of France is Paris."
        assert span.attributes["stream.completed"] is True
    else:
        assert span.outputs == result.to_dict()
    content = span.outputs["choices"][0]["message"]["content"]
    assert content == "The capital of France is Paris."
    assert "tracer.problems" not in span.attributes


def test_databricks_list_content_is_joined(experiment: str, server: DevServer) -> None:
    chat = Chat("sync", f"{server.url}/serving-endpoints")
    chunks = chat.create(
        model="databricks-llama-4-maverick",
        stream=True,
        extra_headers={"x-devserver-content-format": "list"},
    )
    assert len(chunks) > 3
    span = only_llm_span(experiment)
    assert span.name == "chat databricks-llama-4-maverick"
    assert span.attributes["url.full"] == f"{server.url}/serving-endpoints/chat/completions"
    assert span.outputs["choices"][0]["message"]["content"] == "The capital of France is Paris."


@pytest.mark.parametrize("library", ["httpx", "httpx2"])
def test_wrapped_existing_client(library: str, experiment: str, server: DevServer) -> None:
    import httpx
    import httpx2
    from openai import OpenAI

    from tracer import wrap

    module: Any = httpx if library == "httpx" else httpx2
    client = OpenAI(api_key=API_KEY, base_url=server.base_url, http_client=wrap(module.Client()))
    response = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    span = only_llm_span(experiment)
    assert span.outputs == response.to_dict()
    assert span.attributes["http.response.header.x-request-id"] == response._request_id
