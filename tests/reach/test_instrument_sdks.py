"""``tracer.instrument()`` with more SDKs and frameworks, each on the HTTP client it builds for
itself (no ``http_client`` / ``httpx_client`` / ``transport`` passed): Cohere v2, Groq and Ollama
(``httpx``), Mistral (``httpx2``), LangChain's ``ChatOpenAI`` and the OpenAI Agents SDK (the
OpenAI SDK's ``httpx2`` clients), against the local server. Each HTTP call is exactly one LLM
span whose outputs hold the answer the caller got; with MLflow's own autolog on as well, the
wire span nests under the framework's span and the trace counts each call's tokens once.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Iterator
from typing import Any

import cohere
import groq
import mlflow
import ollama
import openai
import pytest
from llm_devserver import DevServer
from mlflow.entities import Span, Trace
from pydantic import SecretStr
from readback import Calls, autolog, is_wire, llm_spans, read_traces, responses_text
from sdk import API_KEY

MODEL = "gpt-4o-mini"
QUESTION = "What is the capital of France?"
ASK = [{"role": "user", "content": QUESTION}]
ANSWER = "The capital of France is Paris."  # the server's
WEATHER = "What's the weather in Paris and Tokyo?"
WEATHER_ANSWER = "Based on the tools: Sunny in Paris; Sunny in Tokyo"  # the server's


def one_llm_span(experiment: str, calls: Calls) -> Span:
    """The single LLM span of the test, recorded by the tracer, for the single LLM request the
    server received; its inputs are the body sent."""
    spans = llm_spans(experiment)
    assert len(spans) == 1, [(s.name, s.span_type) for s in spans]
    (span,) = spans
    (body,) = calls.bodies()
    assert is_wire(span)
    assert span.status.status_code == "OK"
    assert span.inputs == body
    assert API_KEY not in json.dumps(span.to_dict())
    return span


def usage(span: Span) -> dict[str, int]:
    """The span's token usage (kept as ``tracer.tokenUsage`` when MLflow's autolog for the SDK
    records the call too)."""
    recorded = span.attributes.get("mlflow.chat.tokenUsage") or span.attributes["tracer.tokenUsage"]
    return {key: recorded[key] for key in ("input_tokens", "output_tokens", "total_tokens")}


def chat_text(span: Span) -> str:
    """The assistant text of a chat completion span."""
    return str(span.outputs["choices"][0]["message"]["content"])


def cohere_text(message: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in message.get("content") or [] if c["type"] == "text")


# --------------------------------------------------------------------------------------------
# Cohere v2, Groq, Mistral: each SDK's own client
# --------------------------------------------------------------------------------------------

COMMAND = "command-a-03-2025"


def test_cohere_v2_chat(
    server: DevServer, experiment: str, calls: Calls, instrumented: None
) -> None:
    client = cohere.ClientV2(api_key="co-key", base_url=server.url)
    response = client.chat(model=COMMAND, messages=ASK, temperature=0.3)  # type: ignore[arg-type]
    span = one_llm_span(experiment, calls)
    assert span.span_type == "CHAT_MODEL"
    assert span.name == f"chat {COMMAND}"
    assert response.message.content is not None
    text = response.message.content[0].text  # type: ignore[union-attr]
    assert text == ANSWER
    assert cohere_text(span.outputs["message"]) == text
    tokens = response.usage.tokens if response.usage else None
    assert tokens is not None
    assert span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] == tokens.input_tokens
    assert span.attributes["mlflow.chat.tokenUsage"]["output_tokens"] == tokens.output_tokens
    assert span.attributes["mlflow.llm.provider"] == "cohere"
    assert span.attributes["gen_ai.response.id"] == response.id


def test_cohere_v2_chat_stream(
    server: DevServer, experiment: str, calls: Calls, instrumented: None
) -> None:
    client = cohere.ClientV2(api_key="co-key", base_url=server.url)
    events: list[Any] = list(client.chat_stream(model=COMMAND, messages=ASK))  # type: ignore[arg-type]
    text = "".join(e.delta.message.content.text for e in events if e.type == "content-delta")
    span = one_llm_span(experiment, calls)
    assert text == ANSWER
    assert cohere_text(span.outputs["message"]) == text
    assert span.attributes["stream.completed"] is True
    assert span.attributes["stream.chunk_count"] == len(events)


def test_groq_chat(server: DevServer, experiment: str, calls: Calls, instrumented: None) -> None:
    with groq.Groq(api_key="gsk_test", base_url=server.url, max_retries=0) as client:
        response = client.chat.completions.create(
            model="llama-3.3-70b-versatile",
            messages=ASK,  # type: ignore[arg-type]
        )
    span = one_llm_span(experiment, calls)
    assert span.span_type == "CHAT_MODEL"
    assert chat_text(span) == response.choices[0].message.content == ANSWER
    assert span.attributes["mlflow.llm.provider"] == "groq"
    assert response.usage is not None
    assert span.attributes["mlflow.chat.tokenUsage"]["total_tokens"] == response.usage.total_tokens


def test_groq_stream(server: DevServer, experiment: str, calls: Calls, instrumented: None) -> None:
    with groq.Groq(api_key="gsk_test", base_url=server.url, max_retries=0) as client:
        chunks: list[Any] = list(
            client.chat.completions.create(
                model="llama-3.3-70b-versatile",
                messages=ASK,  # type: ignore[arg-type]
                stream=True,
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    span = one_llm_span(experiment, calls)
    assert chat_text(span) == text == ANSWER
    assert span.attributes["stream.completed"] is True
    final = chunks[-1].x_groq
    assert final is not None and final.usage is not None
    assert span.attributes["mlflow.chat.tokenUsage"]["total_tokens"] == final.usage.total_tokens


def test_mistral_chat_complete(
    server: DevServer, experiment: str, calls: Calls, instrumented: None
) -> None:
    from mistralai.client import Mistral

    client = Mistral(api_key="mistral-key", server_url=server.url)
    response = client.chat.complete(model="mistral-small-latest", messages=ASK)  # type: ignore[arg-type]
    span = one_llm_span(experiment, calls)
    assert span.span_type == "CHAT_MODEL"
    assert response.choices is not None
    message = response.choices[0].message
    assert message is not None
    assert chat_text(span) == message.content == ANSWER
    assert span.attributes["mlflow.llm.provider"] == "mistral"
    assert response.usage is not None
    assert usage(span) == {
        "input_tokens": response.usage.prompt_tokens,
        "output_tokens": response.usage.completion_tokens,
        "total_tokens": response.usage.total_tokens,
    }


# --------------------------------------------------------------------------------------------
# Ollama: plain and streamed
# --------------------------------------------------------------------------------------------

LLAMA = "llama3.2"


def test_ollama_chat(server: DevServer, experiment: str, calls: Calls, instrumented: None) -> None:
    with ollama.Client(host=server.url) as client:
        response = client.chat(model=LLAMA, messages=ASK)
    span = one_llm_span(experiment, calls)
    assert span.span_type == "CHAT_MODEL"
    assert span.attributes["tracer.api"] == "ollama.chat"
    assert span.outputs["message"]["content"] == response.message.content == ANSWER
    assert span.attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": response.prompt_eval_count,
        "output_tokens": response.eval_count,
        "total_tokens": (response.prompt_eval_count or 0) + (response.eval_count or 0),
    }


def test_ollama_chat_stream(
    server: DevServer, experiment: str, calls: Calls, instrumented: None
) -> None:
    with ollama.Client(host=server.url) as client:
        parts = list(client.chat(model=LLAMA, messages=ASK, stream=True))
    text = "".join(p.message.content or "" for p in parts)
    span = one_llm_span(experiment, calls)
    assert len(parts) > 3
    assert span.outputs["message"]["content"] == text == ANSWER
    assert span.attributes["stream.completed"] is True
    assert span.attributes["stream.chunk_count"] == len(parts)
    assert span.attributes["mlflow.chat.tokenUsage"]["output_tokens"] == parts[-1].eval_count


# --------------------------------------------------------------------------------------------
# LangChain: ChatOpenAI with the OpenAI clients it builds
# --------------------------------------------------------------------------------------------


def chat_openai(server: DevServer, **options: Any) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=MODEL,
        base_url=server.base_url,
        api_key=SecretStr(API_KEY),
        max_retries=0,
        **options,
    )


def langchain_usage(reply: Any) -> dict[str, int]:
    return {
        key: reply.usage_metadata[key] for key in ("input_tokens", "output_tokens", "total_tokens")
    }


def test_langchain_invoke(
    server: DevServer, experiment: str, calls: Calls, instrumented: None
) -> None:
    reply = chat_openai(server, temperature=0.2).invoke(QUESTION)
    span = one_llm_span(experiment, calls)
    assert span.span_type == "CHAT_MODEL"
    assert span.inputs["messages"] == ASK
    assert span.inputs["temperature"] == 0.2
    assert chat_text(span) == reply.content == ANSWER
    assert span.outputs["id"] == reply.response_metadata["id"]
    assert usage(span) == langchain_usage(reply)


def test_langchain_stream(
    server: DevServer, experiment: str, calls: Calls, instrumented: None
) -> None:
    chunks = list(chat_openai(server, stream_usage=True).stream(QUESTION))
    text = "".join(str(c.content) for c in chunks)
    span = one_llm_span(experiment, calls)
    assert len(chunks) > 3
    assert span.inputs["stream"] is True
    assert chat_text(span) == text == ANSWER
    assert span.attributes["stream.completed"] is True
    assert usage(span) == langchain_usage(functools.reduce(operator.add, chunks))


# --------------------------------------------------------------------------------------------
# OpenAI Agents SDK: its default client, a plain AsyncOpenAI
# --------------------------------------------------------------------------------------------


def get_weather(city: str) -> str:
    """Current weather in a city"""
    return f"Sunny in {city}"


@pytest.fixture
def agents(server: DevServer) -> Iterator[Any]:
    """The Agents SDK with a plain (untraced) default client; its own tracing (an upload to
    the OpenAI platform) off."""
    import agents
    from agents.models import _openai_shared

    previous = _openai_shared.get_default_openai_client()
    agents.set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    agents.set_default_openai_client(client, use_for_tracing=False)
    try:
        yield agents
    finally:
        _openai_shared.set_default_openai_client(previous)  # type: ignore[arg-type]


def assert_agents_spans(experiment: str, calls: Calls, result: Any) -> list[Span]:
    """One wire LLM span per HTTP call the SDK made, in order, each holding the body it sent and
    the response (id, usage) it got."""
    spans = llm_spans(experiment)
    bodies = calls.bodies()
    assert len(bodies) == len(result.raw_responses) >= 1
    assert len(spans) == len(bodies), [s.name for s in spans]
    for span, body, response in zip(spans, bodies, result.raw_responses, strict=True):
        assert is_wire(span)
        assert span.span_type == "CHAT_MODEL"
        assert span.name == f"chat {MODEL}"
        assert span.inputs == body
        assert span.outputs["id"] == response.response_id
        assert usage(span) == {
            "input_tokens": response.usage.input_tokens,
            "output_tokens": response.usage.output_tokens,
            "total_tokens": response.usage.total_tokens,
        }
    return spans


def test_agents_run_sync(agents: Any, experiment: str, calls: Calls, instrumented: None) -> None:
    agent = agents.Agent(name="Assistant", model=MODEL, instructions="You are helpful.")
    result = agents.Runner.run_sync(agent, QUESTION)
    (span,) = assert_agents_spans(experiment, calls, result)
    assert result.final_output == ANSWER
    assert responses_text(span) == result.final_output
    assert span.inputs["input"] == ASK


def test_agents_run_sync_with_tools(
    agents: Any, experiment: str, calls: Calls, instrumented: None
) -> None:
    agent = agents.Agent(
        name="Assistant",
        model=MODEL,
        instructions="You are helpful.",
        tools=[agents.function_tool(get_weather)],
    )
    result = agents.Runner.run_sync(agent, WEATHER)
    first, second = assert_agents_spans(experiment, calls, result)
    asked = [item for item in first.outputs["output"] if item["type"] == "function_call"]
    assert [json.loads(item["arguments"]) for item in asked] == [
        {"city": "Paris"},
        {"city": "Tokyo"},
    ]
    answered = [i for i in second.inputs["input"] if i.get("type") == "function_call_output"]
    assert [i["output"] for i in answered] == ["Sunny in Paris", "Sunny in Tokyo"]
    assert result.final_output == WEATHER_ANSWER
    assert responses_text(second) == result.final_output


# --------------------------------------------------------------------------------------------
# With MLflow's own autolog on as well
# --------------------------------------------------------------------------------------------


def nested_and_counted_once(experiment: str, calls: Calls) -> tuple[Trace, Span, Span]:
    """One trace; one wire span (the one HTTP call), child of a span that is not the tracer's;
    the trace's token totals are the call's, counted once."""
    traces = read_traces(experiment)
    summary = [(s.span_id, s.parent_id, s.name, s.span_type) for t in traces for s in t.data.spans]
    assert len(traces) == 1, summary
    (trace,) = traces
    wire = [s for s in trace.data.spans if is_wire(s)]
    assert len(wire) == 1, summary
    (span,) = wire
    assert [span.inputs] == calls.bodies()
    parents = [s for s in trace.data.spans if s.span_id == span.parent_id]
    assert len(parents) == 1, summary
    (parent,) = parents
    assert not is_wire(parent)
    totals = trace.info.token_usage
    assert totals is not None
    counted = {key: totals[key] for key in usage(span)}
    carrying = [
        (s.name, s.attributes["mlflow.chat.tokenUsage"])
        for s in trace.data.spans
        if "mlflow.chat.tokenUsage" in s.attributes
    ]
    assert counted == usage(span), carrying
    return trace, span, parent


def test_langchain_autolog(
    server: DevServer, experiment: str, calls: Calls, instrumented: None
) -> None:
    llm = chat_openai(server)
    with autolog("langchain"):
        reply = llm.invoke(QUESTION)
    _, span, parent = nested_and_counted_once(experiment, calls)
    assert parent.name == "ChatOpenAI"
    assert parent.span_type == "CHAT_MODEL"
    assert chat_text(span) == reply.content == ANSWER
    assert usage(span) == langchain_usage(reply)


def test_openai_autolog(
    server: DevServer, experiment: str, calls: Calls, instrumented: None
) -> None:
    # MLflow's OpenAI autolog opens its span without making it the active one
    # (start_span_no_context), so the wire span cannot nest under it: both are children of the
    # caller's span. Two records of one call: the wire span, sent while autolog for the OpenAI
    # SDK is on, keeps its usage as tracer.tokenUsage, so the trace counts the call once.
    client = openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    with client, autolog("openai"), mlflow.start_span("ask"):
        reply = client.chat.completions.create(model=MODEL, messages=ASK)  # type: ignore[arg-type]
    trace, span, parent = nested_and_counted_once(experiment, calls)
    assert parent.name == "ask"
    (recorded,) = [s for s in trace.data.spans if s.name == "Completions"]
    assert recorded.parent_id == parent.span_id
    assert "mlflow.chat.tokenUsage" in recorded.attributes
    assert "mlflow.chat.tokenUsage" not in span.attributes
    assert chat_text(span) == reply.choices[0].message.content == ANSWER
    assert reply.usage is not None
    assert usage(span)["total_tokens"] == reply.usage.total_tokens
