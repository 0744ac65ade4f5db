"""Anthropic Messages through the real anthropic SDK (which requires an httpx2 client) and the
tracer's httpx2 clients, sync and async, against the local server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import pytest
from llm_devserver import DevServer
from readback import only_llm_span, read_spans

from tracer.httpx2 import TracedAsyncClient, TracedClient

SECRET = "sk-ant-SECRET-31337"
MODEL = "claude-sonnet-4-5"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
RANDOM_KEYS = {"id"}


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in RANDOM_KEYS}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


class Claude:
    """Calls ``messages.create`` (or the ``messages.stream`` helper) sync or async."""

    def __init__(self, mode: str, url: str) -> None:
        self.mode, self.url = mode, url

    def create(self, **kwargs: Any) -> Any:
        kwargs.setdefault("model", MODEL)
        kwargs.setdefault("max_tokens", 256)
        kwargs.setdefault("messages", QUESTION)
        options = {"api_key": SECRET, "base_url": self.url, "max_retries": 0}
        if self.mode == "sync":
            with anthropic.Anthropic(http_client=TracedClient(), **options) as client:
                if kwargs.pop("helper", False):
                    with client.messages.stream(**kwargs) as stream:
                        return stream.get_final_message()
                result = client.messages.create(**kwargs)
                return list(result) if kwargs.get("stream") else result

        async def run() -> Any:
            async with anthropic.AsyncAnthropic(http_client=TracedAsyncClient(), **options) as c:
                if kwargs.pop("helper", False):
                    async with c.messages.stream(**kwargs) as stream:
                        return await stream.get_final_message()
                result = await c.messages.create(**kwargs)
                if kwargs.get("stream"):
                    return [event async for event in result]
                return result

        return asyncio.run(run())


@pytest.fixture(params=["sync", "async"])
def claude(request: pytest.FixtureRequest, server: DevServer) -> Claude:
    return Claude(request.param, server.url)


def test_message(claude: Claude, experiment: str) -> None:
    message = claude.create(system="Be brief.", stop_sequences=["###"])
    span = only_llm_span(experiment)
    assert span.name == f"chat {MODEL}"
    assert span.span_type == "CHAT_MODEL"
    assert span.inputs["messages"] == QUESTION
    assert span.inputs["system"] == "Be brief."
    assert span.outputs == message.to_dict()
    attrs = span.attributes
    assert attrs["mlflow.message.format"] == "anthropic"
    assert attrs["tracer.api"] == "anthropic.messages"
    assert "messages" not in attrs and "system" not in attrs
    assert attrs["stop_sequences"] == ["###"]
    assert attrs["mlflow.llm.model"] == message.model
    assert attrs["http.response.header.request-id"] == message._request_id
    assert attrs["mlflow.chat.tokenUsage"]["output_tokens"] == message.usage.output_tokens
    assert SECRET not in json.dumps(span.to_dict())


def test_cache_tokens_are_counted_like_mlflow_does(claude: Claude, experiment: str) -> None:
    message = claude.create(
        extra_headers={"x-devserver-cached-tokens": "40", "x-devserver-cache-creation-tokens": "7"}
    )
    usage = only_llm_span(experiment).attributes["mlflow.chat.tokenUsage"]
    assert usage["cache_read_input_tokens"] == 40
    assert usage["cache_creation_input_tokens"] == 7
    assert usage["input_tokens"] == message.usage.input_tokens + 47
    assert usage["total_tokens"] == usage["input_tokens"] + message.usage.output_tokens


def test_stream_helper_final_message_equals_the_span(claude: Claude, experiment: str) -> None:
    request = {
        "messages": [{"role": "user", "content": "Weather in Paris and Tokyo?"}],
        "tools": [WEATHER],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "max_tokens": 2048,
    }
    expected = claude.create(**request)
    final = claude.create(**request, helper=True)
    plain, streamed = read_spans(experiment, "CHAT_MODEL")
    assert streamed.attributes["stream.completed"] is True
    assert stable(streamed.outputs) == stable(final.to_dict())
    assert stable(streamed.outputs["content"]) == stable(expected.to_dict()["content"])
    kinds = [block["type"] for block in streamed.outputs["content"]]
    assert "thinking" in kinds and kinds.count("tool_use") == 2
    inputs = [b["input"] for b in streamed.outputs["content"] if b["type"] == "tool_use"]
    assert inputs == [{"city": "Paris"}, {"city": "Tokyo"}]
    assert streamed.attributes["mlflow.chat.tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    assert (
        streamed.attributes["mlflow.chat.tokenUsage"] == plain.attributes["mlflow.chat.tokenUsage"]
    )


def test_raw_stream_events(claude: Claude, experiment: str) -> None:
    events = claude.create(stream=True)
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    span = only_llm_span(experiment)
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert span.outputs["content"] == [{"type": "text", "text": text, "citations": None}]
    assert span.outputs["stop_reason"] == "end_turn"
    # The SDK drops the server's keep-alive "ping" events; the span counts every event.
    assert span.attributes["stream.chunk_count"] >= len(events)


def test_tool_result_round_trip(claude: Claude, experiment: str) -> None:
    first = claude.create(
        messages=[{"role": "user", "content": "Weather in Berlin?"}], tools=[WEATHER]
    )
    call = next(b for b in first.content if b.type == "tool_use")
    claude.create(
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Berlin?"},
            {"role": "assistant", "content": [b.to_dict() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny"}],
            },
        ],
    )
    asked, answered = read_spans(experiment, "CHAT_MODEL")
    assert asked.outputs["stop_reason"] == "tool_use"
    assert answered.outputs["stop_reason"] == "end_turn"
    assert answered.inputs["messages"][2]["content"][0]["tool_use_id"] == call.id


def test_errors(claude: Claude, experiment: str) -> None:
    with pytest.raises(anthropic.InternalServerError):
        claude.create(extra_headers={"x-devserver-status": "529"})
    with pytest.raises(anthropic.APIStatusError):
        claude.create(stream=True, extra_headers={"x-devserver-stream-error-after": "3"})
    http_error, stream_error = read_spans(experiment, "CHAT_MODEL")
    assert http_error.status.status_code == "ERROR"
    assert http_error.outputs["type"] == "error"
    assert http_error.status.description == http_error.outputs["error"]["message"]
    assert stream_error.status.status_code == "ERROR"
    assert stream_error.status.description == "Overloaded"
    assert stream_error.attributes["stream.completed"] is False
