"""``tracer.instrument()``: one line, and every LLM call of the process is traced, whatever
client made it. Each SDK here builds its own default client (no ``http_client`` passed),
against the local server; the spans are read back from the MLflow store: exactly one LLM
span per call, holding the answer the caller got.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anthropic
import httpx
import httpx2
import openai
import pytest
from conftest import read_spans
from google import genai
from google.genai import types
from sdk import API_KEY

import tracer
from tracer.devserver import DevServer

MODEL = "gpt-4o-mini"
QUESTION = "What is the capital of France?"
ASK = [{"role": "user", "content": QUESTION}]
CLAUDE = "claude-sonnet-4-5"
LLM_TYPES = ("CHAT_MODEL", "LLM", "EMBEDDING")


@pytest.fixture
def instrumented() -> Iterator[None]:
    tracer.instrument()
    try:
        yield
    finally:
        tracer.uninstrument()


def llm_spans(experiment: str) -> list:
    return [s for s in read_spans(experiment) if s.span_type in LLM_TYPES]


def one_llm_span(experiment: str):
    spans = llm_spans(experiment)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


# --------------------------------------------------------------------------------------------
# openai: sync, stream, async, a client built before the line
# --------------------------------------------------------------------------------------------


def test_openai_client_built_before_the_line(server: DevServer, experiment: str) -> None:
    client = openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    tracer.instrument()
    try:
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": QUESTION}], temperature=0.2
        )
    finally:
        tracer.uninstrument()
    span = one_llm_span(experiment)
    assert span.name == f"chat {MODEL}"
    assert span.inputs["messages"][0]["content"] == QUESTION
    assert span.outputs["choices"][0]["message"]["content"] == reply.choices[0].message.content
    assert span.attributes["temperature"] == 0.2


def test_openai_stream(server: DevServer, experiment: str, instrumented: None) -> None:
    client = openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    span = one_llm_span(experiment)
    assert span.outputs["choices"][0]["message"]["content"] == text
    assert span.attributes["stream.completed"] is True
    assert span.attributes["mlflow.chat.tokenUsage"]["total_tokens"] > 0


def test_openai_async(server: DevServer, experiment: str, instrumented: None) -> None:
    async def call() -> str:
        async with openai.AsyncOpenAI(
            api_key=API_KEY, base_url=server.base_url, max_retries=0
        ) as client:
            reply = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": QUESTION}]
            )
            return reply.choices[0].message.content or ""

    text = asyncio.run(call())
    span = one_llm_span(experiment)
    assert span.outputs["choices"][0]["message"]["content"] == text


def test_openai_with_httpx_client(server: DevServer, experiment: str, instrumented: None) -> None:
    """openai>=3 builds on httpx2 by default; an httpx client handed in is reached too."""
    client = openai.OpenAI(
        api_key=API_KEY, base_url=server.base_url, max_retries=0, http_client=httpx.Client()
    )
    reply = client.embeddings.create(model="text-embedding-3-small", input="hello")
    span = one_llm_span(experiment)
    assert span.span_type == "EMBEDDING"
    assert span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] == reply.usage.prompt_tokens


# --------------------------------------------------------------------------------------------
# anthropic: plain and messages.stream
# --------------------------------------------------------------------------------------------


def test_anthropic(server: DevServer, experiment: str, instrumented: None) -> None:
    with anthropic.Anthropic(api_key="sk-ant-x", base_url=server.url, max_retries=0) as client:
        message = client.messages.create(model=CLAUDE, max_tokens=128, messages=ASK)
    span = one_llm_span(experiment)
    assert span.outputs["content"][0]["text"] == message.content[0].text
    assert span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] == message.usage.input_tokens


def test_anthropic_messages_stream(server: DevServer, experiment: str, instrumented: None) -> None:
    client = anthropic.Anthropic(api_key="sk-ant-x", base_url=server.url, max_retries=0)
    with client, client.messages.stream(model=CLAUDE, max_tokens=128, messages=ASK) as stream:
        message = stream.get_final_message()
    span = one_llm_span(experiment)
    assert span.outputs["content"][0]["text"] == message.content[0].text
    assert span.attributes["stream.completed"] is True


# --------------------------------------------------------------------------------------------
# google-genai: sync (httpx), stream, async over aiohttp
# --------------------------------------------------------------------------------------------

FLASH = "gemini-2.5-flash"


def gemini(server: DevServer) -> genai.Client:
    return genai.Client(api_key="AIza-key", http_options=types.HttpOptions(base_url=server.url))


def test_gemini_sync(server: DevServer, experiment: str, instrumented: None) -> None:
    client = gemini(server)  # kept: a genai.Client closes its HTTP client when collected
    response = client.models.generate_content(model=FLASH, contents=QUESTION)
    span = one_llm_span(experiment)
    assert span.name == f"chat {FLASH}"
    assert span.outputs["candidates"][0]["content"]["parts"][-1]["text"] == response.text


def test_gemini_stream(server: DevServer, experiment: str, instrumented: None) -> None:
    client = gemini(server)
    chunks = list(client.models.generate_content_stream(model=FLASH, contents=QUESTION))
    text = "".join(c.text or "" for c in chunks)
    span = one_llm_span(experiment)
    parts = span.outputs["candidates"][0]["content"]["parts"]
    assert "".join(p.get("text", "") for p in parts) == text
    assert span.attributes["stream.completed"] is True


def test_gemini_async_over_aiohttp(server: DevServer, experiment: str, instrumented: None) -> None:
    client = gemini(server)
    assert client._api_client._use_aiohttp()  # the SDK's own choice: aiohttp is installed

    async def call() -> tuple[str, str]:
        plain = await client.aio.models.generate_content(model=FLASH, contents=QUESTION)
        streamed = [
            c.text or ""
            async for c in await client.aio.models.generate_content_stream(
                model=FLASH, contents=QUESTION
            )
        ]
        return plain.text or "", "".join(streamed)

    plain, streamed = asyncio.run(call())
    spans = llm_spans(experiment)
    assert len(spans) == 2, [s.name for s in spans]
    first, second = spans
    assert first.outputs["candidates"][0]["content"]["parts"][-1]["text"] == plain
    parts = second.outputs["candidates"][0]["content"]["parts"]
    assert "".join(p.get("text", "") for p in parts) == streamed
    assert second.attributes["stream.completed"] is True
    assert second.attributes["stream.chunk_count"] >= 2


# --------------------------------------------------------------------------------------------
# one span, never two; nothing else touched
# --------------------------------------------------------------------------------------------


def test_traced_client_gives_one_span(
    server: DevServer, experiment: str, instrumented: None
) -> None:
    client = openai.OpenAI(
        api_key=API_KEY, base_url=server.base_url, max_retries=0, http_client=tracer.TracedClient()
    )
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    assert len(llm_spans(experiment)) == 1


def test_non_llm_requests_pass_untraced(
    server: DevServer, experiment: str, instrumented: None
) -> None:
    with httpx2.Client() as client:
        assert client.get(f"{server.url}/v1/models").status_code == 200
    assert read_spans(experiment) == []


def test_uninstrument_restores_exactly() -> None:
    originals = {
        (cls, name): cls.__dict__.get(name)
        for cls, name in [
            (httpx.Client, "_transport_for_url"),
            (httpx.AsyncClient, "_transport_for_url"),
            (httpx2.Client, "_transport_for_url"),
            (httpx2.AsyncClient, "_transport_for_url"),
        ]
    }
    tracer.instrument()
    tracer.instrument()
    assert tracer.instrumented()
    assert all(cls.__dict__.get(name) is not f for (cls, name), f in originals.items())
    tracer.uninstrument()
    tracer.uninstrument()
    assert not tracer.instrumented()
    assert all(cls.__dict__.get(name) is f for (cls, name), f in originals.items())
