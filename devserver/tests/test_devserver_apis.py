"""The dev server's other APIs through the real SDKs: legacy completions, embeddings, the
Responses API, Azure OpenAI, Databricks serving endpoints and Anthropic Messages."""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from llm_devserver import DevServer
from openai import AzureOpenAI, OpenAI

CLAUDE = "claude-sonnet-4-6"
INSTRUCT = "gpt-3.5-turbo-instruct"
FUNCTION_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CLAUDE_TOOL: Any = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": FUNCTION_TOOL["parameters"],
}
RANDOM_KEYS = {"id", "created", "created_at", "completed_at", "call_id", "sequence_number"}


def stable(value: Any) -> Any:
    """``value`` without the fields the server draws at random (ids, timestamps)."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in RANDOM_KEYS}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def sse(text: str) -> list[tuple[str | None, Any]]:
    """``(event, data)`` pairs of an SSE body (``data`` parsed as JSON unless ``[DONE]``)."""
    events: list[tuple[str | None, Any]] = []
    for block in text.strip().split("\n\n"):
        name: str | None = None
        data = ""
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
        events.append((name, data if data == "[DONE]" else json.loads(data)))
    return events


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    """One dev server for the whole module."""
    with DevServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def oai(server: DevServer) -> Iterator[OpenAI]:
    """The openai SDK's default client, pointed at the server."""
    with OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def claude(server: DevServer) -> Iterator[anthropic.Anthropic]:
    """The anthropic SDK's default client, pointed at the server root."""
    with anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture()
def http(server: DevServer) -> Iterator[httpx.Client]:
    """A plain httpx client pointed at the server."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


# ------------------------------------------------------------------------------------------
# Legacy completions
# ------------------------------------------------------------------------------------------


def test_completions_list_prompt_n2(server: DevServer, oai: OpenAI) -> None:
    """Each prompt yields ``n`` choices, indexed ``prompt_index * n + i``."""
    server.clear()
    prompts = ["What is the capital of France?", "Say hi"]
    completion = oai.completions.create(model=INSTRUCT, prompt=prompts, n=2, max_tokens=30)
    assert server.requests[-1].path == "/v1/completions"
    assert re.fullmatch(r"cmpl-[A-Za-z0-9]{29}", completion.id)
    assert completion.object == "text_completion"
    assert completion.model == INSTRUCT
    assert [c.index for c in completion.choices] == [0, 1, 2, 3]
    texts = [c.text for c in completion.choices]
    assert texts[0] == "\n\nThe capital of France is Paris."
    assert texts[1] == "\n\n(choice 1) The capital of France is Paris."
    assert texts[2].startswith('\n\nYou asked: "Say hi"')
    assert all(c.finish_reason == "stop" and c.logprobs is None for c in completion.choices)
    usage = completion.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens_details is None  # the legacy endpoint reports no details


def test_completions_defaults_logprobs_echo_and_best_of(oai: OpenAI) -> None:
    """max_tokens defaults to 16; logprobs, echo and best_of behave like the real endpoint."""
    short = oai.completions.create(model=INSTRUCT, prompt="Explain quantum tunnelling please")
    assert short.choices[0].finish_reason == "length"
    assert short.usage is not None and short.usage.completion_tokens <= 16

    prompt = "What is the capital of France?"
    echoed = oai.completions.create(model=INSTRUCT, prompt=prompt, logprobs=2, echo=True)
    choice = echoed.choices[0]
    assert choice.text == prompt + "\n\nThe capital of France is Paris."
    lp = choice.logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert "".join(lp.tokens) == choice.text
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None  # nothing precedes it
    assert lp.text_offset == [sum(map(len, lp.tokens[:k])) for k in range(len(lp.tokens))]
    assert all(len(top) == 2 for top in lp.top_logprobs[1:])

    plain = oai.completions.create(model=INSTRUCT, prompt=prompt, logprobs=0)
    assert plain.choices[0].logprobs is not None
    offsets = plain.choices[0].logprobs.text_offset or []
    assert offsets[:3] == [len(prompt), len(prompt) + 3, len(prompt) + 5]
    assert plain.choices[0].logprobs.top_logprobs == [{}] * len(offsets)

    best = oai.completions.create(model=INSTRUCT, prompt=prompt, best_of=3)
    assert len(best.choices) == 1 and best.usage is not None
    assert best.usage.completion_tokens == 3 * 8  # all best_of candidates are billed

    with pytest.raises(openai.BadRequestError, match="best_of"):
        oai.completions.create(model=INSTRUCT, prompt=prompt, n=3, best_of=2)


def test_completions_stream_include_usage(oai: OpenAI) -> None:
    """Streamed chunks share one id, interleave choices and end with a usage chunk."""
    request: dict[str, Any] = {"model": INSTRUCT, "prompt": ["Say hi", "Say bye"], "n": 2}
    expected = oai.completions.create(**request)
    chunks = list(
        oai.completions.create(**request, stream=True, stream_options={"include_usage": True})
    )
    assert len({c.id for c in chunks}) == 1
    assert all(c.object == "text_completion" and c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage == expected.usage
    assert [c.choices[0].index for c in chunks[:4]] == [0, 1, 2, 3]
    for choice in expected.choices:
        pieces = [c.choices[0] for c in chunks[:-1] if c.choices[0].index == choice.index]
        assert "".join(p.text for p in pieces) == choice.text
        assert [p.finish_reason for p in pieces][-1] == choice.finish_reason
        assert all(p.finish_reason is None for p in pieces[:-1])


def test_completions_raw_stream_ends_with_done(http: httpx.Client) -> None:
    """The wire format: ``data:`` lines, ``usage`` only with include_usage, then ``[DONE]``."""
    body = {"model": INSTRUCT, "prompt": "Hi", "stream": True}
    events = sse(http.post("/v1/completions", json=body).text)
    assert events[-1] == (None, "[DONE]")
    assert all(name is None and "usage" not in data for name, data in events[:-1])


# ------------------------------------------------------------------------------------------
# Embeddings
# ------------------------------------------------------------------------------------------


def test_embeddings_default_base64(server: DevServer, oai: OpenAI) -> None:
    """The SDK asks for base64 by default and decodes float32 vectors of the dimension."""
    response = oai.embeddings.create(model="text-embedding-3-small", input=["hello", "world"])
    sent = server.requests[-1].json()
    assert sent["encoding_format"] == "base64"
    assert response.object == "list" and response.model == "text-embedding-3-small"
    assert [d.index for d in response.data] == [0, 1]
    assert all(d.object == "embedding" and len(d.embedding) == 8 for d in response.data)
    norm = sum(v * v for v in response.data[0].embedding)
    assert abs(norm - 1.0) < 1e-5
    assert response.data[0].embedding != response.data[1].embedding
    assert response.usage.prompt_tokens == response.usage.total_tokens == 2

    again = oai.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=12)
    assert len(again.data[0].embedding) == 12
    assert again.data[0].embedding[:2] != response.data[0].embedding[:2]  # renormalised prefix


def test_embeddings_float_format_matches_base64(http: httpx.Client, oai: OpenAI) -> None:
    """``float`` returns the same (float32) values the base64 encoding carries."""
    floats = oai.embeddings.create(
        model="text-embedding-3-small", input="hello", encoding_format="float"
    )
    raw = http.post(
        "/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "hello", "encoding_format": "base64"},
    ).json()
    encoded = raw["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = list(struct.unpack("<8f", base64.b64decode(encoded)))
    assert floats.data[0].embedding == decoded

    tokens = oai.embeddings.create(
        model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]], encoding_format="float"
    )
    assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 5
    with pytest.raises(openai.BadRequestError, match="input"):
        oai.embeddings.create(model="text-embedding-3-small", input="")


# ------------------------------------------------------------------------------------------
# Responses API
# ------------------------------------------------------------------------------------------


def test_responses_text(oai: OpenAI) -> None:
    """A full ``response`` object with a message item and the SDK type's top-level fields."""
    response = oai.responses.create(
        model="gpt-4o",
        input="What is the capital of France?",
        instructions="Be brief.",
        extra_headers={"x-devserver-cached-tokens": "8"},
    )
    assert re.fullmatch(r"resp_[0-9a-f]{50}", response.id)
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "The capital of France is Paris."
    (message,) = response.output
    assert message.type == "message" and message.id.startswith("msg_")
    assert message.status == "completed" and message.role == "assistant"
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    assert response.instructions == "Be brief."
    assert response.parallel_tool_calls is True and response.tool_choice == "auto"
    assert response.tools == [] and response.truncation == "disabled"
    assert response.error is None and response.incomplete_details is None
    assert response.text is not None and response.text.format is not None
    usage = response.usage
    assert usage is not None and usage.input_tokens_details.cached_tokens == 8
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_responses_function_call_round_trip(oai: OpenAI) -> None:
    """``function_call`` items per city; ``function_call_output`` items get a text answer."""
    question = "What's the weather in Tokyo and Paris?"
    first = oai.responses.create(model="gpt-4o", input=question, tools=[FUNCTION_TOOL])
    calls = [item for item in first.output if item.type == "function_call"]
    assert [json.loads(c.arguments) for c in calls] == [{"city": "Tokyo"}, {"city": "Paris"}]
    for call in calls:
        assert call.id is not None and call.id.startswith("fc_")
        assert re.fullmatch(r"call_[A-Za-z0-9]{24}", call.call_id)
        assert call.name == "get_weather" and call.status == "completed"
    assert first.tools[0].type == "function"

    history: list[Any] = [{"role": "user", "content": question}]
    history += [c.model_dump(exclude_none=True) for c in calls]
    history += [
        {"type": "function_call_output", "call_id": c.call_id, "output": f"sunny #{i}"}
        for i, c in enumerate(calls)
    ]
    answer = oai.responses.create(model="gpt-4o", input=history, tools=[FUNCTION_TOOL])
    assert answer.output_text == "Based on the tools: sunny #0; sunny #1"


def test_responses_reasoning_and_limits(oai: OpenAI) -> None:
    """A reasoning item when asked; max_output_tokens cuts the answer (incomplete)."""
    response = oai.responses.create(
        model="o3-mini",
        input="Why is the sky blue?",
        reasoning={"effort": "low", "summary": "auto"},
    )
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert reasoning.summary[0].type == "summary_text" and reasoning.summary[0].text
    assert message.type == "message"
    assert response.reasoning is not None and response.reasoning.effort == "low"
    assert (
        response.usage is not None and response.usage.output_tokens_details.reasoning_tokens == 64
    )

    cut = oai.responses.create(
        model="gpt-4o", input="Explain quantum tunnelling in detail", max_output_tokens=16
    )
    assert cut.status == "incomplete"
    assert cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output[0].type == "message" and cut.output[0].status == "incomplete"
    with pytest.raises(openai.BadRequestError, match="max_output_tokens"):
        oai.responses.create(model="gpt-4o", input="hi", max_output_tokens=4)


def test_responses_stream_events(oai: OpenAI) -> None:
    """Typed events with sequence numbers; ``response.completed`` carries the final response."""
    events: list[Any] = list(oai.responses.create(model="gpt-4o", input="Hi there", stream=True))
    types = [e.type for e in events]
    assert types[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.status == "in_progress"
    final = events[-1].response
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 5
    assert "".join(d.delta for d in deltas) == final.output_text
    assert all(d.item_id == final.output[0].id and d.output_index == 0 for d in deltas)
    assert final.status == "completed" and final.usage is not None


def test_responses_stream_function_call_and_wire_format(http: httpx.Client) -> None:
    """``event:`` lines match each data's ``type``; arguments stream as deltas; no [DONE]."""
    body = {"model": "gpt-4o", "input": "Weather in Paris?", "tools": [FUNCTION_TOOL]}
    events = sse(http.post("/v1/responses", json={**body, "stream": True}).text)
    assert all(name == data["type"] for name, data in events)
    assert all(data != "[DONE]" for _, data in events)
    args = "".join(
        d["delta"] for _, d in events if d["type"] == "response.function_call_arguments.delta"
    )
    (done,) = [d for _, d in events if d["type"] == "response.function_call_arguments.done"]
    assert args == done["arguments"] == '{"city":"Paris"}'
    added = next(d for _, d in events if d["type"] == "response.output_item.added")
    assert added["item"]["status"] == "in_progress" and added["item"]["arguments"] == ""
    expected = http.post("/v1/responses", json=body).json()
    assert stable(events[-1][1]["response"]) == stable(expected)


def test_responses_stream_helper(oai: OpenAI) -> None:
    """The SDK's ``responses.stream()`` helper accumulates the events into the final response."""
    with oai.responses.stream(model="gpt-4o", input="What is the capital of France?") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == "The capital of France is Paris."


@pytest.mark.parametrize(
    ("ending", "last_type", "status"),
    [
        ("failed", "response.failed", "failed"),
        ("incomplete", "response.incomplete", "incomplete"),
        ("none", "response.output_item.done", None),
    ],
)
def test_responses_stream_endings(
    oai: OpenAI, ending: str, last_type: str, status: str | None
) -> None:
    """``x-devserver-responses-end`` picks the terminal event (or none at all)."""
    events: list[Any] = list(
        oai.responses.create(
            model="gpt-4o",
            input="Hi",
            stream=True,
            extra_headers={"x-devserver-responses-end": ending},
        )
    )
    last = events[-1]
    assert last.type == last_type
    assert not any(e.type == "response.completed" for e in events)
    if status == "failed":
        assert last.response.status == "failed"
        assert last.response.error is not None and last.response.error.code == "server_error"
    elif status == "incomplete":
        details = last.response.incomplete_details
        assert details is not None and details.reason == "max_output_tokens"


def test_responses_stream_error_event(oai: OpenAI, http: httpx.Client) -> None:
    """An ``event: error`` after K events; the SDK raises ``APIError``."""
    headers = {"x-devserver-stream-error-after": "3"}
    with pytest.raises(openai.APIError, match="server had an error"):
        list(oai.responses.create(model="gpt-4o", input="Hi", stream=True, extra_headers=headers))
    body = {"model": "gpt-4o", "input": "Hi", "stream": True}
    events = sse(http.post("/v1/responses", json=body, headers=headers).text)
    name, data = events[-1]
    assert len(events) == 4 and name == "error"
    assert data["type"] == "error" and data["code"] == "server_error"
    assert data["param"] is None and data["sequence_number"] == 3


# ------------------------------------------------------------------------------------------
# Azure OpenAI
# ------------------------------------------------------------------------------------------


def test_azure_deployment_chat(server: DevServer) -> None:
    """Deployment paths need api-version, report the real model and content-filter results."""
    server.clear()
    with AzureOpenAI(
        azure_endpoint=server.url,
        api_key="k",
        api_version="2024-10-21",
        azure_deployment="my-gpt4o-deploy",
        max_retries=0,
    ) as client:
        messages: Any = [{"role": "user", "content": "What is the capital of France?"}]
        raw = client.chat.completions.with_raw_response.create(
            model="my-gpt4o-deploy", messages=messages
        )
        completion = raw.parse()
        chunks = list(
            client.chat.completions.create(model="my-gpt4o-deploy", messages=messages, stream=True)
        )
    request = server.requests[0]
    assert (
        request.path
        == "/openai/deployments/my-gpt4o-deploy/chat/completions?api-version=2024-10-21"
    )
    assert request.headers["api-key"] == "k"
    assert re.fullmatch(r"[0-9a-f-]{36}", raw.headers["apim-request-id"])
    assert completion.model == "gpt-4o-2024-08-06"
    assert completion.choices[0].message.content == "The capital of France is Paris."
    extra = completion.model_extra or {}
    assert extra["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False
    choice_extra = completion.choices[0].model_extra or {}
    assert "content_filter_results" in choice_extra

    first = chunks[0]
    assert first.choices == [] and first.id == "" and first.model == ""
    assert "prompt_filter_results" in (first.model_extra or {})
    assert all(c.model == "gpt-4o-2024-08-06" and c.usage is None for c in chunks[1:])
    text = "".join(c.choices[0].delta.content or "" for c in chunks[1:])
    assert text == "The capital of France is Paris."
    assert all("content_filter_results" in (c.choices[0].model_extra or {}) for c in chunks[1:])


def test_azure_errors_and_v1(server: DevServer, http: httpx.Client) -> None:
    """Missing api-version is a 400; Azure error bodies; ``/openai/v1`` takes the body's model."""
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    resp = http.post("/openai/deployments/d/chat/completions", json=chat)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "MissingApiVersionParameter"
    resp = http.post(
        "/openai/deployments/d/chat/completions?api-version=2024-10-21",
        json=chat,
        headers={"x-devserver-status": "429"},
    )
    assert resp.status_code == 429 and resp.json()["error"]["code"] == "429"
    assert "ChatCompletions_Create" in resp.json()["error"]["message"]
    assert http.post("/openai/deployments/d/images?api-version=1", json={}).status_code == 404

    with OpenAI(base_url=server.url + "/openai/v1", api_key="k", max_retries=0) as client:
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        response = client.responses.create(model="gpt-4o", input="hi")
        vectors = client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert response.model == "gpt-4o-2024-08-06" and response.output_text
    assert vectors.model == "text-embedding-3-small" and len(vectors.data[0].embedding) == 8


# ------------------------------------------------------------------------------------------
# Databricks serving endpoints
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "obj"),
    [
        ({"messages": [{"role": "user", "content": "What is the capital of France?"}]}, "chat"),
        ({"prompt": "Once upon a time", "max_tokens": 40}, "text_completion"),
        ({"input": ["a", "b"]}, "list"),
    ],
)
def test_databricks_invocations(server: DevServer, body: dict[str, Any], obj: str) -> None:
    """The body picks the API; the endpoint name is the model."""
    url = server.url + "/serving-endpoints/my-endpoint/invocations"
    data = httpx.post(url, json=body, headers={"Authorization": "Bearer dapi-x"}).json()
    assert data["model"] == "my-endpoint"
    assert data["object"].startswith(obj)
    if obj == "chat":
        assert data["choices"][0]["message"]["content"] == "The capital of France is Paris."
    elif obj == "list":
        assert [d["index"] for d in data["data"]] == [0, 1]
        assert all(isinstance(d["embedding"], list) for d in data["data"])
    else:
        assert data["choices"][0]["text"].startswith('\n\nYou asked: "Once upon a time"')


def test_databricks_stream_and_errors(server: DevServer) -> None:
    """Streams for chat/completions; errors as ``{"error_code", "message"}``."""
    url = server.url + "/serving-endpoints/my-endpoint/invocations"
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    events = sse(httpx.post(url, json=body).text)
    assert events[-1] == (None, "[DONE]")
    assert {e[1]["model"] for e in events[:-1]} == {"my-endpoint"}
    events = sse(httpx.post(url, json={"prompt": "hi", "stream": True}).text)
    assert events[0][1]["object"] == "text_completion"

    resp = httpx.post(url, json={"prompt": "hi"}, headers={"x-devserver-status": "429"})
    assert resp.status_code == 429
    assert resp.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    resp = httpx.post(url, json={"dataframe_records": []})
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"


# ------------------------------------------------------------------------------------------
# Anthropic Messages
# ------------------------------------------------------------------------------------------


def test_anthropic_text(server: DevServer, claude: anthropic.Anthropic) -> None:
    """A ``Message`` with a text block, usage with cache fields and a ``request-id``."""
    raw = claude.messages.with_raw_response.create(
        model=CLAUDE,
        max_tokens=256,
        system="Be brief.",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        extra_headers={
            "x-devserver-cached-tokens": "40",
            "x-devserver-cache-creation-tokens": "7",
        },
    )
    message = raw.parse()
    assert server.requests[-1].path == "/v1/messages"
    assert re.fullmatch(r"req_011C[A-Za-z0-9]{20}", raw.headers["request-id"])
    assert re.fullmatch(r"msg_01[A-Za-z0-9]{22}", message.id)
    assert message.type == "message" and message.role == "assistant" and message.model == CLAUDE
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    (block,) = message.content
    assert block.type == "text" and block.text == "The capital of France is Paris."
    assert block.citations is None
    usage = message.usage
    assert usage.cache_read_input_tokens == 40 and usage.cache_creation_input_tokens == 7
    assert usage.cache_creation is not None and usage.cache_creation.ephemeral_5m_input_tokens == 7
    assert usage.input_tokens > 0 and usage.output_tokens > 0

    cut = claude.messages.create(
        model=CLAUDE,
        max_tokens=4,
        messages=[{"role": "user", "content": "Explain quantum tunnelling in detail"}],
    )
    assert cut.stop_reason == "max_tokens"
    stop = claude.messages.create(
        model=CLAUDE,
        max_tokens=100,
        stop_sequences=["France"],
        messages=[{"role": "user", "content": "What is the capital of France?"}],
    )
    assert stop.stop_reason == "stop_sequence" and stop.stop_sequence == "France"
    assert stop.content[0].type == "text" and stop.content[0].text == "The capital of "


def test_anthropic_tool_use_round_trip(claude: anthropic.Anthropic) -> None:
    """``tool_use`` blocks per city; ``tool_result`` blocks get a text answer."""
    question: Any = {"role": "user", "content": "Weather in Paris and Tokyo?"}
    first = claude.messages.create(
        model=CLAUDE,
        max_tokens=256,
        messages=[question],
        tools=[CLAUDE_TOOL],
    )
    assert first.stop_reason == "tool_use"
    assert first.content[0].type == "text"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [u.input for u in uses] == [{"city": "Paris"}, {"city": "Tokyo"}]
    assert all(re.fullmatch(r"toolu_01[A-Za-z0-9]{22}", u.id) for u in uses)

    results: Any = [
        {"type": "tool_result", "tool_use_id": u.id, "content": f"sunny in {u.input['city']}"}
        for u in uses
    ]
    history: Any = [
        question,
        {"role": "assistant", "content": [b.to_dict() for b in first.content]},
        {"role": "user", "content": results},
    ]
    answer = claude.messages.create(
        model=CLAUDE, max_tokens=256, tools=[CLAUDE_TOOL], messages=history
    )
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text"
    assert answer.content[0].text == "Based on the tools: sunny in Paris; sunny in Tokyo"


def test_anthropic_thinking_and_stream_helper(claude: anthropic.Anthropic) -> None:
    """Thinking blocks (with signature); the stream helper's final message equals create()."""
    request: dict[str, Any] = {
        "model": CLAUDE,
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": "Weather in Paris and Tokyo?"}],
        "tools": [CLAUDE_TOOL],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    message = claude.messages.create(**request)
    kinds = [b.type for b in message.content]
    assert kinds == ["thinking", "text", "tool_use", "tool_use"]
    thinking = message.content[0]
    assert thinking.type == "thinking" and thinking.thinking and thinking.signature
    assert message.usage.output_tokens_details is not None
    assert message.usage.output_tokens_details.thinking_tokens > 0

    with claude.messages.stream(**request) as stream:
        final = stream.get_final_message()
    assert stable(final.to_dict()) == stable(message.to_dict())

    plain: Any = {
        "model": CLAUDE,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with claude.messages.stream(**plain) as stream:
        text = "".join(stream.text_stream)
        streamed = stream.get_final_message()
    assert stable(streamed.to_dict()) == stable(claude.messages.create(**plain).to_dict())
    block: Any = streamed.content[0]
    assert text == block.text

    with pytest.raises(anthropic.BadRequestError, match="budget_tokens"):
        claude.messages.create(**{**request, "max_tokens": 256})


def test_anthropic_raw_stream(claude: anthropic.Anthropic, http: httpx.Client) -> None:
    """Raw events in the documented order; ``ping`` on the wire, skipped by the SDK."""
    stream = claude.messages.create(
        model=CLAUDE,
        max_tokens=256,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        stream=True,
    )
    events: list[Any] = list(stream)
    types = [e.type for e in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert set(types[2:-3]) == {"content_block_delta"}
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = events[0]
    assert start.type == "message_start" and start.message.content == []
    assert start.message.stop_reason is None and start.message.usage.input_tokens > 0
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == "The capital of France is Paris."
    delta = events[-2]
    assert delta.type == "message_delta" and delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens > 1

    body = {
        "model": CLAUDE,
        "max_tokens": 2048,
        "stream": True,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [CLAUDE_TOOL],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    wire = sse(http.post("/v1/messages", json=body, headers=headers).text)
    assert all(name == data["type"] for name, data in wire)
    names = [name for name, _ in wire]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    delta_types = [d["delta"]["type"] for n, d in wire if n == "content_block_delta"]
    assert delta_types[0] == "thinking_delta" and "signature_delta" in delta_types
    partial = [d["delta"]["partial_json"] for n, d in wire if d.get("index") == 2 and "delta" in d]
    assert partial[0] == "" and json.loads("".join(partial)) == {"city": "Paris"}


def test_anthropic_errors(claude: anthropic.Anthropic, http: httpx.Client) -> None:
    """Anthropic's error format maps onto the SDK's exception classes."""
    kwargs: dict[str, Any] = {
        "model": CLAUDE,
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "hi"}],
    }
    for status, error_class, error_type in (
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ):
        with pytest.raises(error_class) as info:
            claude.messages.create(**kwargs, extra_headers={"x-devserver-status": str(status)})
        assert info.value.status_code == status and info.value.type == error_type
        assert info.value.request_id is not None

    headers = {"x-devserver-stream-error-after": "3"}
    with pytest.raises(anthropic.APIStatusError) as stream_info:
        list(claude.messages.create(**kwargs, stream=True, extra_headers=headers))
    assert stream_info.value.type == "overloaded_error"

    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        claude.messages.create(model=CLAUDE, messages=kwargs["messages"], max_tokens=0)

    resp = http.post("/v1/messages", json=kwargs)
    assert resp.status_code == 401
    assert resp.json()["error"] == {
        "type": "authentication_error",
        "message": "x-api-key header is required",
    }
    resp = http.post("/v1/messages", json=kwargs, headers={"x-api-key": "k"})
    assert resp.status_code == 400 and resp.json()["type"] == "error"
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_anthropic_retries_and_count_tokens(server: DevServer) -> None:
    """fail-attempts works with the SDK's retries; ``count_tokens`` is served too."""
    server.clear()
    with anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=2) as client:
        message = client.messages.create(
            model=CLAUDE,
            max_tokens=32,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-devserver-fail-attempts": "2"},
        )
        counted = client.messages.count_tokens(
            model=CLAUDE, messages=[{"role": "user", "content": "hi"}]
        )
    assert message.content and len(server.requests) == 4
    assert counted.input_tokens > 0


# ------------------------------------------------------------------------------------------
# Control headers across APIs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/completions", {"model": INSTRUCT, "prompt": "hi", "stream": True}),
        ("/v1/responses", {"model": "gpt-4o", "input": "hi", "stream": True}),
        (
            "/v1/messages",
            {
                "model": CLAUDE,
                "max_tokens": 64,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
        ),
    ],
)
def test_stream_controls(http: httpx.Client, path: str, body: dict[str, Any]) -> None:
    """Encoding, reply and disconnect controls apply to every streaming API."""
    headers = {
        "x-api-key": "k",
        "anthropic-version": "2023-06-01",
        "x-devserver-encoding": "gzip",
        "x-devserver-reply": "Hello%20world%20from%20the%20test",
    }
    resp = http.post(path, json=body, headers=headers)
    assert resp.headers["content-encoding"] == "gzip"
    pieces: list[str] = []
    for _, data in sse(resp.text):
        if isinstance(data, dict):
            if data.get("object") == "text_completion" and data["choices"]:
                pieces.append(data["choices"][0]["text"])
            elif data.get("type") == "response.output_text.delta":
                pieces.append(data["delta"])
            elif data.get("type") == "content_block_delta":
                pieces.append(data["delta"]["text"])
    assert "".join(pieces) == "Hello world from the test"

    with pytest.raises(httpx.RemoteProtocolError):
        http.post(path, json=body, headers={**headers, "x-devserver-disconnect-after": "2"})


ANTHROPIC_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("/v1/embeddings", {"model": "m", "input": "x"}, {"type": "server_error"}),
        ("/v1/completions", {"model": "m", "prompt": "x"}, {"type": "server_error"}),
        ("/v1/responses", {"model": "m", "input": "x"}, {"type": "server_error"}),
        (
            "/openai/deployments/d/embeddings?api-version=2024-10-21",
            {"input": "x"},
            {"type": "server_error"},
        ),
        (
            "/serving-endpoints/e/invocations",
            {"input": "x"},
            {"error_code": "TEMPORARILY_UNAVAILABLE"},
        ),
        (
            "/v1/messages",
            {"model": CLAUDE, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
            {"type": "api_error"},
        ),
    ],
)
def test_json_controls(
    http: httpx.Client, path: str, body: dict[str, Any], error: dict[str, str]
) -> None:
    """Status and fail-attempts controls answer in each API's own error format."""
    resp = http.post(path, json=body, headers={**ANTHROPIC_HEADERS, "x-devserver-status": "503"})
    assert resp.status_code == 503 and resp.headers["retry-after"] == "0"
    data = resp.json()
    found = data.get("error") if isinstance(data.get("error"), dict) else data
    assert {k: found[k] for k in error} == error
    failing = {**ANTHROPIC_HEADERS, "x-devserver-fail-attempts": "1"}
    assert http.post(path, json=body, headers=failing).status_code == 500
    retried = {**failing, "x-stainless-retry-count": "1"}
    assert http.post(path, json=body, headers=retried).status_code == 200
