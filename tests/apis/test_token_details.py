"""Reasoning and cache tokens as span attributes (issue 23): the OpenTelemetry GenAI names
(``gen_ai.usage.reasoning.output_tokens``, ``gen_ai.usage.cache_read.input_tokens``,
``gen_ai.usage.cache_creation.input_tokens``) and MLflow's cache keys of
``mlflow.chat.tokenUsage``, for every API that reports them, through the real SDKs, the same
for a call and its stream; read back from the MLflow store."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
from google import genai
from google.genai import types
from llm_devserver import DevServer
from readback import read_spans

import tracer.httpx2
from tracer import TracedClient

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
REASONING = "gen_ai.usage.reasoning.output_tokens"
CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
CACHE_WRITE = "gen_ai.usage.cache_creation.input_tokens"


def details(span: Any) -> dict[str, Any]:
    attributes = span.attributes
    return {
        "reasoning": attributes.get(REASONING),
        "cache_read": attributes.get(CACHE_READ),
        "cache_write": attributes.get(CACHE_WRITE),
        "usage": attributes.get("mlflow.chat.tokenUsage"),
    }


def test_openai_chat_reasoning_and_cached_tokens(server: DevServer, experiment: str) -> None:
    client = openai.OpenAI(
        base_url=server.base_url,
        api_key="k",
        http_client=TracedClient(),
        default_headers={"x-devserver-reasoning-tokens": "64", "x-devserver-cached-tokens": "8"},
    )
    whole = client.chat.completions.create(model="o4-mini", messages=QUESTION)  # type: ignore[arg-type]
    list(
        client.chat.completions.create(
            model="o4-mini",
            messages=QUESTION,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert whole.usage is not None and whole.usage.completion_tokens_details is not None
    assert whole.usage.completion_tokens_details.reasoning_tokens == 64
    plain, streamed = (details(s) for s in read_spans(experiment, "CHAT_MODEL"))
    assert plain == streamed
    assert plain["reasoning"] == 64 and plain["cache_read"] == 8
    assert plain["usage"]["cache_read_input_tokens"] == 8
    assert plain["usage"]["output_tokens"] == whole.usage.completion_tokens  # reasoning included


def test_responses_reasoning_tokens(server: DevServer, experiment: str) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="k", http_client=TracedClient())
    whole = client.responses.create(model="o4-mini", input="Hi", reasoning={"effort": "high"})
    list(
        client.responses.create(
            model="o4-mini", input="Hi", reasoning={"effort": "high"}, stream=True
        )
    )
    assert whole.usage is not None
    reported = whole.usage.output_tokens_details.reasoning_tokens
    assert reported > 0
    plain, streamed = (details(s) for s in read_spans(experiment, "CHAT_MODEL"))
    assert plain == streamed and plain["reasoning"] == reported


def test_gemini_thoughts_tokens(server: DevServer, experiment: str) -> None:
    client = genai.Client(
        api_key="k",
        http_options=types.HttpOptions(base_url=server.url, httpx_client=TracedClient()),
    )
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=True)
    )
    whole = client.models.generate_content(model="gemini-2.5-flash", contents="Hi", config=config)
    list(
        client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Hi", config=config
        )
    )
    assert whole.usage_metadata is not None
    thoughts = whole.usage_metadata.thoughts_token_count
    assert thoughts
    plain, streamed = (details(s) for s in read_spans(experiment, "CHAT_MODEL"))
    assert plain == streamed and plain["reasoning"] == thoughts


def test_anthropic_cache_reads_and_writes(server: DevServer, experiment: str) -> None:
    client = anthropic.Anthropic(
        base_url=server.url,
        api_key="k",
        http_client=tracer.httpx2.TracedClient(),
        default_headers={
            "x-devserver-cached-tokens": "40",
            "x-devserver-cache-creation-tokens": "7",
        },
    )
    client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=QUESTION)  # type: ignore[arg-type]
    list(
        client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=100,
            messages=QUESTION,  # type: ignore[arg-type]
            stream=True,
        )
    )
    plain, streamed = (details(s) for s in read_spans(experiment, "CHAT_MODEL"))
    assert plain == streamed
    assert (plain["cache_read"], plain["cache_write"]) == (40, 7)
    assert plain["reasoning"] is None  # Anthropic reports no count of thinking tokens
    assert plain["usage"]["cache_read_input_tokens"] == 40
    assert plain["usage"]["cache_creation_input_tokens"] == 7


def test_cohere_cached_tokens(server: DevServer, experiment: str) -> None:
    import cohere

    client = cohere.ClientV2(
        api_key="k",
        base_url=server.url,
        httpx_client=TracedClient(headers={"x-devserver-cached-tokens": "12"}),
    )
    client.chat(model="command-a-03-2025", messages=QUESTION)  # type: ignore[arg-type]
    list(client.chat_stream(model="command-a-03-2025", messages=QUESTION))  # type: ignore[arg-type]
    plain, streamed = (details(s) for s in read_spans(experiment, "CHAT_MODEL"))
    assert plain == streamed and plain["cache_read"] == 12
    assert plain["usage"]["cache_read_input_tokens"] == 12


# --- Responses built-in tools in MLflow's chat-tool schema (issue 23, item 5) -------------------

BUILT_IN = [
    {"type": "web_search_preview"},
    {"type": "file_search", "vector_store_ids": ["vs_1"]},
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {"type": "mcp", "server_label": "wiki", "server_url": "https://mcp.example.com/mcp"},
]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_built_in_tools_are_recorded_as_autolog_records_them(
    server: DevServer, experiment: str
) -> None:
    import httpx
    from readback import autolog, is_wire

    tools: Any = [WEATHER, *BUILT_IN]
    traced = openai.OpenAI(base_url=server.base_url, api_key="k", http_client=TracedClient())
    traced.responses.create(model="gpt-4o", input="Hi", tools=tools)
    with autolog("openai"):
        bare = openai.OpenAI(base_url=server.base_url, api_key="k", http_client=httpx.Client())
        bare.responses.create(model="gpt-4o", input="Hi", tools=tools)
    spans = read_spans(experiment)
    ours = next(s for s in spans if is_wire(s))
    theirs = next(s for s in spans if not is_wire(s) and s.get_attribute("mlflow.chat.tools"))
    assert ours.get_attribute("mlflow.chat.tools") == theirs.get_attribute("mlflow.chat.tools")
    assert [t["function"]["name"] for t in ours.get_attribute("mlflow.chat.tools")] == [
        "get_weather",
        "web_search_preview",
        "file_search",
        "code_interpreter",
        "mcp",
    ]
    assert ours.inputs["tools"] == tools  # the request as sent
