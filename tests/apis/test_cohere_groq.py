"""Cohere v2 through the real ``cohere`` SDK (``ClientV2(httpx_client=TracedClient())``), Groq
through the real ``groq`` SDK (``Groq(http_client=TracedClient())``) and Mistral through the
real ``mistralai`` SDK (``Mistral(client=tracer.httpx2.TracedClient())``): the same span
contract as every other API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import cohere
import groq
import pytest
from llm_devserver import DevServer
from readback import only_span, read_spans
from sdk import QUESTION as CAPITAL
from sdk import WEATHER_TOOL as WEATHER

from tracer import TracedAsyncClient, TracedClient

COMMAND = "command-a-03-2025"
WEATHER_QUESTION = [{"role": "user", "content": "What's the weather in Paris and London?"}]


@pytest.fixture
def co(server: DevServer) -> cohere.ClientV2:
    return cohere.ClientV2(api_key="co-key", base_url=server.url, httpx_client=TracedClient())


def text_of(message: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in message.get("content") or [] if c["type"] == "text")


def test_cohere_chat(co: cohere.ClientV2, experiment: str) -> None:
    response = co.chat(model=COMMAND, messages=CAPITAL, temperature=0.3, p=0.9)
    span = only_span(experiment)
    assert span.name == f"chat {COMMAND}"
    assert span.inputs["messages"] == CAPITAL
    assert text_of(span.outputs["message"]) == "The capital of France is Paris."
    usage = response.usage
    assert usage is not None and usage.tokens is not None
    assert span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] == usage.tokens.input_tokens
    assert span.attributes["mlflow.chat.tokenUsage"]["output_tokens"] == (
        usage.tokens.output_tokens
    )
    assert span.attributes["mlflow.llm.provider"] == "cohere"
    assert span.attributes["mlflow.llm.model"] == COMMAND
    assert span.attributes["gen_ai.request.top_p"] == 0.9
    assert span.attributes["gen_ai.response.finish_reasons"] == ["COMPLETE"]
    assert span.attributes["gen_ai.response.id"] == response.id


def test_cohere_stream_equals_the_non_streaming_response(
    co: cohere.ClientV2, experiment: str
) -> None:
    whole = co.chat(model=COMMAND, messages=CAPITAL)
    events = list(co.chat_stream(model=COMMAND, messages=CAPITAL))
    plain, streamed = read_spans(experiment, "CHAT_MODEL")
    assert streamed.attributes["stream.completed"] is True
    assert streamed.attributes["stream.chunk_count"] == len(events)
    assert text_of(streamed.outputs["message"]) == text_of(plain.outputs["message"])
    assert whole.message.content is not None
    assert text_of(streamed.outputs["message"]) == whole.message.content[0].text  # type: ignore[union-attr]
    assert streamed.outputs["finish_reason"] == "COMPLETE"
    assert (
        streamed.attributes["mlflow.chat.tokenUsage"] == plain.attributes["mlflow.chat.tokenUsage"]
    )


def test_cohere_streamed_tool_calls_are_whole(co: cohere.ClientV2, experiment: str) -> None:
    whole = co.chat(model=COMMAND, messages=WEATHER_QUESTION, tools=[WEATHER])
    list(co.chat_stream(model=COMMAND, messages=WEATHER_QUESTION, tools=[WEATHER]))
    expected = [
        (c.function.name, json.loads(c.function.arguments or "{}"))  # type: ignore[union-attr]
        for c in whole.message.tool_calls or []
    ]
    assert expected == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "London"})]
    plain, streamed = read_spans(experiment, "CHAT_MODEL")
    for span in (plain, streamed):
        calls = span.outputs["message"]["tool_calls"]
        assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == (
            expected
        )
        assert span.outputs["message"]["tool_plan"] == whole.message.tool_plan
        assert span.attributes["mlflow.chat.tools"][0]["function"]["name"] == "get_weather"
    assert streamed.outputs["finish_reason"] == "TOOL_CALL"


def test_cohere_embed_and_rerank(co: cohere.ClientV2, experiment: str) -> None:
    embedded = co.embed(
        model="embed-v4.0",
        texts=["first", "second"],
        input_type="search_document",
        embedding_types=["float"],
    )
    ranked = co.rerank(model="rerank-v3.5", query="capital of France", documents=["Paris", "Rome"])
    embedding = only_span(experiment, "EMBEDDING")
    assert embedded.embeddings.float_ is not None
    size = len(embedded.embeddings.float_[0])
    assert embedding.attributes["embeddings.count"] == 2
    assert embedding.attributes["embeddings.dimensions"] == size
    assert embedding.outputs["dimensions"] == {"float": [size, size]}
    assert "embeddings" not in embedding.outputs
    rerank = only_span(experiment, "RERANKER")
    assert rerank.name == "rerank rerank-v3.5"
    assert rerank.attributes["rerank.count"] == len(ranked.results)
    assert rerank.outputs["results"][0]["index"] == ranked.results[0].index


def test_cohere_async_and_errors(server: DevServer, experiment: str) -> None:
    async def run() -> str:
        client = cohere.AsyncClientV2(
            api_key="co-key", base_url=server.url, httpx_client=TracedAsyncClient()
        )
        pieces = [
            event.delta.message.content.text  # type: ignore[union-attr]
            async for event in client.chat_stream(model=COMMAND, messages=CAPITAL)
            if event.type == "content-delta"
        ]
        return "".join(pieces)

    text = asyncio.run(run())
    failing = cohere.ClientV2(
        api_key="co-key",
        base_url=server.url,
        httpx_client=TracedClient(headers={"x-devserver-status": "400"}),
    )
    with pytest.raises(cohere.errors.BadRequestError):
        failing.chat(model=COMMAND, messages=CAPITAL)
    streamed, failed = read_spans(experiment, "CHAT_MODEL")
    assert text_of(streamed.outputs["message"]) == text
    assert failed.status.status_code == "ERROR"
    assert failed.attributes["http.response.status_code"] == 400
    assert failed.status.description == failed.outputs["message"]  # Cohere's own message


@pytest.fixture
def gq(server: DevServer) -> groq.Groq:
    return groq.Groq(api_key="gsk_test", base_url=server.url, http_client=TracedClient())


def test_groq_chat_is_groq_not_azure(gq: groq.Groq, experiment: str) -> None:
    response = gq.chat.completions.create(model="llama-3.3-70b-versatile", messages=CAPITAL)  # type: ignore[arg-type]
    span = only_span(experiment)
    assert span.attributes["mlflow.llm.provider"] == "groq"
    assert "azure.openai.deployment" not in span.attributes
    assert span.outputs["choices"][0]["message"]["content"] == response.choices[0].message.content
    assert response.usage is not None
    assert span.attributes["mlflow.chat.tokenUsage"]["total_tokens"] == response.usage.total_tokens


def test_groq_streamed_usage_from_x_groq(gq: groq.Groq, experiment: str) -> None:
    chunks = list(
        gq.chat.completions.create(
            model="llama-3.3-70b-versatile",
            messages=CAPITAL,  # type: ignore[arg-type]
            stream=True,
        )
    )
    final = chunks[-1].x_groq
    assert final is not None and final.usage is not None  # Groq's own place for it
    span = only_span(experiment)
    assert span.attributes["stream.completed"] is True
    assert span.attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": final.usage.prompt_tokens,
        "output_tokens": final.usage.completion_tokens,
        "total_tokens": final.usage.total_tokens,
    }
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert span.outputs["choices"][0]["message"]["content"] == text


def test_groq_async_tool_call(server: DevServer, experiment: str) -> None:
    async def run() -> Any:
        client = groq.AsyncGroq(
            api_key="gsk_test", base_url=server.url, http_client=TracedAsyncClient()
        )
        return await client.chat.completions.create(
            model="llama-3.3-70b-versatile",
            messages=WEATHER_QUESTION,  # type: ignore[arg-type]
            tools=[WEATHER],
        )

    response = asyncio.run(run())
    span = only_span(experiment)
    calls = span.outputs["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == [
        c.function.arguments for c in response.choices[0].message.tool_calls or []
    ]
    assert span.attributes["mlflow.llm.provider"] == "groq"


def test_mistral_sdk_with_the_httpx2_client(server: DevServer, experiment: str) -> None:
    from mistralai.client import Mistral

    import tracer.httpx2

    client = Mistral(api_key="k", server_url=server.url, client=tracer.httpx2.TracedClient())
    response = client.chat.complete(model="mistral-small-latest", messages=CAPITAL)  # type: ignore[arg-type]
    text = "".join(
        event.data.choices[0].delta.content or ""  # type: ignore[operator]
        for event in client.chat.stream(model="mistral-small-latest", messages=CAPITAL)  # type: ignore[arg-type]
    )
    plain, streamed = read_spans(experiment, "CHAT_MODEL")
    assert response.choices is not None
    assert plain.outputs["choices"][0]["message"]["content"] == response.choices[0].message.content
    assert streamed.outputs["choices"][0]["message"]["content"] == text
    assert streamed.attributes["stream.completed"] is True
    assert {
        plain.attributes["mlflow.llm.provider"],
        streamed.attributes["mlflow.llm.provider"],
    } == {"mistral"}


def test_cohere_reply_is_shown_as_a_conversation_turn(co: cohere.ClientV2, experiment: str) -> None:
    co.chat(model=COMMAND, messages=CAPITAL)
    span = only_span(experiment)
    assert span.attributes["mlflow.chat.messages"] == [
        {"role": "assistant", "content": "The capital of France is Paris."}
    ]
