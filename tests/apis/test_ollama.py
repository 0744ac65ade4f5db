"""Ollama's native API through the real ``ollama`` SDK, with the tracer as its transport
(``ollama.Client(transport=TracingTransport(...))``, or ``wrap()`` of the client it built):
chat, generate and embed, streamed (newline-delimited JSON) or not."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import ollama
import pytest
from llm_devserver import DevServer
from readback import only_span, read_spans
from sdk import QUESTION
from sdk import WEATHER_TOOL as WEATHER

from tracer import AsyncTracingTransport, TracingTransport, wrap

LLAMA = "llama3.2"


@pytest.fixture(params=["transport", "wrap"])
def olla(request: pytest.FixtureRequest, server: DevServer) -> Iterator[ollama.Client]:
    """An ollama client traced either way users hand the tracer over."""
    if request.param == "transport":
        client = ollama.Client(host=server.url, transport=TracingTransport(httpx.HTTPTransport()))
    else:
        client = ollama.Client(host=server.url)
        wrap(client._client)
    yield client
    client._client.close()  # ollama 0.5 clients are no context managers


def test_chat(olla: ollama.Client, experiment: str) -> None:
    response = olla.chat(model=LLAMA, messages=QUESTION, options={"temperature": 0.2, "seed": 3})
    span = only_span(experiment)
    assert span.name == f"chat {LLAMA}"
    assert span.inputs["messages"] == QUESTION
    assert span.outputs["message"]["content"] == response.message.content
    assert span.attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": response.prompt_eval_count,
        "output_tokens": response.eval_count,
        "total_tokens": (response.prompt_eval_count or 0) + (response.eval_count or 0),
    }
    attributes = span.attributes
    assert attributes["tracer.api"] == "ollama.chat"
    assert attributes["mlflow.llm.provider"] == "ollama"
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["gen_ai.request.seed"] == 3
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["ollama.total_duration_ms"] == round((response.total_duration or 0) / 1e6, 3)


def test_stream_equals_the_non_streaming_response(olla: ollama.Client, experiment: str) -> None:
    whole = olla.chat(model=LLAMA, messages=QUESTION)
    parts = list(olla.chat(model=LLAMA, messages=QUESTION, stream=True))
    plain, streamed = read_spans(experiment, "CHAT_MODEL")
    assert len(parts) > 3
    assert streamed.attributes["stream.completed"] is True
    assert streamed.attributes["stream.chunk_count"] == len(parts)
    assert streamed.outputs["message"] == plain.outputs["message"]
    assert streamed.outputs["message"]["content"] == whole.message.content
    assert streamed.outputs["done_reason"] == "stop" and streamed.outputs["done"] is True
    assert streamed.attributes["mlflow.chat.tokenUsage"]["output_tokens"] == parts[-1].eval_count


def test_tool_calls_are_recorded_whole(olla: ollama.Client, experiment: str) -> None:
    question = [{"role": "user", "content": "What's the weather in Paris and London?"}]
    olla.chat(model=LLAMA, messages=question, tools=[WEATHER])
    list(olla.chat(model=LLAMA, messages=question, tools=[WEATHER], stream=True))
    for span in read_spans(experiment, "CHAT_MODEL"):
        calls = span.outputs["message"]["tool_calls"]
        assert [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
            ("get_weather", {"city": "Paris"}),
            ("get_weather", {"city": "London"}),
        ]
        assert span.attributes["mlflow.chat.tools"][0]["function"]["name"] == "get_weather"


def test_generate(olla: ollama.Client, experiment: str) -> None:
    whole = olla.generate(model=LLAMA, prompt="Say hello", system="Be brief")
    parts = list(olla.generate(model=LLAMA, prompt="Say hello", system="Be brief", stream=True))
    plain, streamed = read_spans(experiment, "LLM")
    assert plain.name == f"text_completion {LLAMA}"
    assert plain.inputs["prompt"] == "Say hello"
    assert plain.outputs["response"] == whole.response
    assert streamed.outputs["response"] == "".join(p.response for p in parts) == whole.response
    assert streamed.attributes["stream.completed"] is True
    assert streamed.attributes["mlflow.chat.tokenUsage"]["output_tokens"] == parts[-1].eval_count


def test_embed_records_dimensions_not_vectors(olla: ollama.Client, experiment: str) -> None:
    result = olla.embed(model="nomic-embed-text", input=["first", "second"])
    span = only_span(experiment, "EMBEDDING")
    size = len(result.embeddings[0])
    assert span.attributes["embeddings.count"] == 2
    assert span.attributes["embeddings.dimensions"] == size
    assert span.outputs["dimensions"] == [size, size]
    assert "embeddings" not in span.outputs
    assert span.inputs["input"] == ["first", "second"]


def test_async_client(server: DevServer, experiment: str) -> None:
    async def run() -> tuple[str | None, str]:
        client = ollama.AsyncClient(
            host=server.url, transport=AsyncTracingTransport(httpx.AsyncHTTPTransport())
        )
        whole = await client.chat(model=LLAMA, messages=QUESTION)
        pieces = [
            p.message.content or ""
            async for p in await client.chat(model=LLAMA, messages=QUESTION, stream=True)
        ]
        return whole.message.content, "".join(pieces)

    whole, streamed = asyncio.run(run())
    spans = read_spans(experiment, "CHAT_MODEL")
    assert len(spans) == 2 and whole == streamed
    assert [s.outputs["message"]["content"] for s in spans] == [whole, whole]


def test_error_is_an_error_span(server: DevServer, experiment: str) -> None:
    client = ollama.Client(
        host=server.url,
        transport=TracingTransport(httpx.HTTPTransport()),
        headers={"x-devserver-status": "404"},  # the server answers as for a missing model
    )
    with pytest.raises(ollama.ResponseError) as raised:
        client.chat(model="no-such-model", messages=QUESTION)
    span = only_span(experiment)
    assert span.status.status_code == "ERROR"
    assert raised.value.error == "model 'no-such-model' not found" == span.status.description
    assert span.attributes["http.response.status_code"] == 404


def test_a_stream_error_line_ends_the_span_in_error(server: DevServer, experiment: str) -> None:
    client = ollama.Client(
        host=server.url,
        transport=TracingTransport(httpx.HTTPTransport()),
        headers={"x-devserver-stream-error-after": "2"},  # the server fails after two lines
    )
    with pytest.raises(ollama.ResponseError):
        list(client.chat(model=LLAMA, messages=QUESTION, stream=True))
    span = only_span(experiment)
    assert span.status.status_code == "ERROR"
    assert span.attributes["stream.completed"] is False
    assert span.outputs["message"]["content"]  # what arrived before the error


def test_the_reply_is_shown_as_a_conversation_turn(olla: ollama.Client, experiment: str) -> None:
    # MLflow's trace UI shows OpenAI-style chat.messages as the assistant's turn; Ollama's own
    # output shape it does not know.
    text = olla.chat(model=LLAMA, messages=QUESTION).message.content
    question = [{"role": "user", "content": "What's the weather in Paris and London?"}]
    olla.chat(model=LLAMA, messages=question, tools=[WEATHER])
    plain, tools = read_spans(experiment, "CHAT_MODEL")
    assert plain.attributes["mlflow.chat.messages"] == [{"role": "assistant", "content": text}]
    (reply,) = tools.attributes["mlflow.chat.messages"]
    assert [c["function"] for c in reply["tool_calls"]] == [
        {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"name": "get_weather", "arguments": '{"city": "London"}'},
    ]
