"""Frameworks that drive the OpenAI SDK, handed the tracer's client: LangChain, LiteLLM, the
OpenAI Agents SDK and pydantic-ai, against the local server, with the spans read back from the
MLflow store. Each HTTP call is one ``CHAT_MODEL`` span whose inputs are the body the framework
sent and whose outputs, usage and tool calls match what the framework got back. Then each with
its own MLflow autolog switched on as well: the wire span must nest under the framework's span,
and the trace's token totals must count every call once.

LiteLLM is not in the ``dev`` extra (it installs about 260 MB); its tests run where it is
installed and are skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import json
import operator
import os
from collections.abc import Callable, Iterator
from typing import Any

# LiteLLM fetches its model price list from the internet when imported (MLflow imports it to
# price spans); the copy it ships keeps the suite offline and deterministic.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import mlflow
import pytest
from llm_devserver import DevServer
from mlflow.entities import Span, Trace
from openai import AsyncOpenAI, OpenAI
from readback import Calls, autolog, is_wire, read_spans, read_traces, responses_text
from sdk import API_KEY, WEATHER_TOOL

from tracer import TracedAsyncClient, TracedClient

# LiteLLM's types, built on first use, carry a TypedDict qualifier pydantic warns it won't enforce.
pytestmark = pytest.mark.filterwarnings("ignore:Items? .*`ReadOnly` qualifier:UserWarning")

MODEL = "gpt-4o-mini"
QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."
WEATHER = "What's the weather in Paris and Tokyo?"
CITIES = [{"city": "Paris"}, {"city": "Tokyo"}]
WEATHER_ANSWER = "Based on the tools: Sunny in Paris; Sunny in Tokyo"  # the server's


def get_weather(city: str) -> str:
    """Current weather in a city"""
    return f"Sunny in {city}"


# --------------------------------------------------------------------------------------------
# What the server received, what the store holds
# --------------------------------------------------------------------------------------------


def wire_spans(experiment: str, calls: Calls) -> list[Span]:
    """The tracer's spans, one ``CHAT_MODEL`` span per HTTP call, each holding the body the
    framework sent as its inputs; and no other ``CHAT_MODEL`` span (no autolog here)."""
    spans = read_spans(experiment, "CHAT_MODEL")
    bodies = calls.bodies()
    assert bodies, "the framework sent nothing"
    assert [is_wire(s) for s in spans] == [True] * len(bodies), [s.name for s in spans]
    for span, body in zip(spans, bodies, strict=True):
        assert span.name == f"chat {MODEL}"
        assert span.status.status_code == "OK"
        assert span.inputs == body
        assert API_KEY not in json.dumps(span.to_dict())
    return spans


def usage(span: Span) -> dict[str, int]:
    """The span's token usage: input, output and total tokens (a wire span keeps it as
    ``tracer.tokenUsage`` when MLflow's autolog for its SDK records the call too)."""
    recorded = span.attributes.get("mlflow.chat.tokenUsage") or span.attributes["tracer.tokenUsage"]
    return {key: recorded[key] for key in ("input_tokens", "output_tokens", "total_tokens")}


def chat_message(span: Span) -> dict[str, Any]:
    """The assistant message of a chat completion span."""
    return span.outputs["choices"][0]["message"]


def tool_arguments(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = message["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather"] * len(calls)
    return [json.loads(c["function"]["arguments"]) for c in calls]


# --------------------------------------------------------------------------------------------
# With the framework's own MLflow autolog
# --------------------------------------------------------------------------------------------


def ancestors(span: Span, trace: Trace) -> list[Span]:
    by_id = {s.span_id: s for s in trace.data.spans}
    chain = []
    while span.parent_id is not None:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


def assert_nested_and_counted_once(
    experiment: str, calls: Calls, framework_span: Callable[[Span], bool]
) -> Trace:
    """One trace; each HTTP call one wire span below a span of the framework; the trace's token
    totals are those of the calls, each counted once."""
    traces = read_traces(experiment)
    bodies = calls.bodies()
    wire = [s for t in traces for s in t.data.spans if is_wire(s)]
    assert [s.inputs for s in sorted(wire, key=lambda s: s.start_time_ns)] == bodies
    summary = [(s.span_id, s.parent_id, s.name, s.span_type) for t in traces for s in t.data.spans]
    assert len(traces) == 1, summary
    (trace,) = traces
    expected = {
        key: sum(usage(s)[key] for s in wire)
        for key in ("input_tokens", "output_tokens", "total_tokens")
    }
    counted = {key: trace.info.token_usage[key] for key in expected}
    carrying = [
        (s.name, usage(s)) for s in trace.data.spans if "mlflow.chat.tokenUsage" in s.attributes
    ]
    assert counted == expected, carrying
    for span in wire:
        assert any(framework_span(a) for a in ancestors(span, trace)), summary
    return trace


# --------------------------------------------------------------------------------------------
# LangChain: ChatOpenAI(http_client=..., http_async_client=...)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def chat_openai(server: DevServer) -> Callable[..., Any]:
    from langchain_openai import ChatOpenAI

    def make(**options: Any) -> Any:
        return ChatOpenAI(
            model=MODEL,
            base_url=server.base_url,
            api_key=API_KEY,
            max_retries=0,
            http_client=TracedClient(),
            http_async_client=TracedAsyncClient(),
            **options,
        )

    return make


def langchain_usage(reply: Any) -> dict[str, int]:
    """The token usage LangChain reports for a reply (a stream's chunks added up)."""
    return {
        key: reply.usage_metadata[key] for key in ("input_tokens", "output_tokens", "total_tokens")
    }


def assert_langchain_reply(span: Span, reply: Any) -> None:
    """The span's completion is the one LangChain returned: id, text, usage."""
    assert span.outputs["id"] == reply.response_metadata["id"]
    assert chat_message(span)["content"] == reply.content
    assert usage(span) == langchain_usage(reply)


def test_langchain_invoke(chat_openai: Callable[..., Any], experiment: str, calls: Calls) -> None:
    reply = chat_openai(temperature=0.2).invoke(QUESTION)
    (span,) = wire_spans(experiment, calls)
    assert reply.content == ANSWER
    assert span.inputs["messages"] == [{"role": "user", "content": QUESTION}]
    assert span.inputs["temperature"] == 0.2
    assert_langchain_reply(span, reply)


def test_langchain_ainvoke(chat_openai: Callable[..., Any], experiment: str, calls: Calls) -> None:
    from langchain_core.messages import HumanMessage, SystemMessage

    llm = chat_openai()
    reply = asyncio.run(llm.ainvoke([SystemMessage("Be brief."), HumanMessage(QUESTION)]))
    (span,) = wire_spans(experiment, calls)
    assert span.inputs["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": QUESTION},
    ]
    assert_langchain_reply(span, reply)


def test_langchain_stream(chat_openai: Callable[..., Any], experiment: str, calls: Calls) -> None:
    chunks = list(chat_openai(stream_usage=True).stream(QUESTION))
    (span,) = wire_spans(experiment, calls)
    reply = functools.reduce(operator.add, chunks)
    assert reply.content == ANSWER
    assert span.inputs["stream"] is True
    assert span.attributes["stream.completed"] is True
    assert span.outputs["object"] == "chat.completion"
    assert chat_message(span)["content"] == reply.content
    assert usage(span) == langchain_usage(reply)


def test_langchain_asks_for_stream_usage_only_with_its_own_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ChatOpenAI defaults stream_usage to True (stream_options.include_usage) only when it makes
    # its own client for OpenAI's URL; with any http_client it is left off, so a stream's span
    # (and LangChain's usage_metadata) would have no token usage: the recipe passes it.
    from langchain_openai import ChatOpenAI

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    assert ChatOpenAI(model=MODEL, api_key=API_KEY).stream_usage is True
    assert ChatOpenAI(model=MODEL, api_key=API_KEY, http_client=TracedClient()).stream_usage is None


@pytest.mark.parametrize("mode", ["invoke", "astream"])
def test_langchain_tool_calls(
    chat_openai: Callable[..., Any], experiment: str, calls: Calls, mode: str
) -> None:
    llm = chat_openai(stream_usage=True).bind_tools([WEATHER_TOOL])
    if mode == "invoke":
        reply = llm.invoke(WEATHER)
    else:

        async def stream() -> list[Any]:
            return [chunk async for chunk in llm.astream(WEATHER)]

        reply = functools.reduce(operator.add, asyncio.run(stream()))
    (span,) = wire_spans(experiment, calls)
    assert span.inputs["tools"] == [WEATHER_TOOL]
    assert span.attributes["mlflow.chat.tools"] == [WEATHER_TOOL]
    message = chat_message(span)
    assert span.outputs["choices"][0]["finish_reason"] == "tool_calls"
    assert tool_arguments(message) == CITIES
    assert [c["id"] for c in message["tool_calls"]] == [c["id"] for c in reply.tool_calls]
    assert [c["args"] for c in reply.tool_calls] == CITIES
    assert usage(span) == langchain_usage(reply)


@pytest.mark.parametrize(
    "mode",
    [
        "invoke",
        "stream",
        "ainvoke-inline",
        pytest.param(
            "ainvoke",
            marks=pytest.mark.xfail(
                strict=True,
                raises=AssertionError,
                reason="MLflow's LangChain callback runs in a thread pool for async calls unless "
                "mlflow.langchain.autolog(run_tracer_inline=True): its span is not the active "
                "span during the HTTP call, so the wire span is a trace of its own",
            ),
        ),
    ],
)
def test_langchain_autolog(
    chat_openai: Callable[..., Any], experiment: str, calls: Calls, mode: str
) -> None:
    llm = chat_openai(stream_usage=True)
    with autolog("langchain", run_tracer_inline=mode == "ainvoke-inline"):
        if mode == "invoke":
            llm.invoke(QUESTION)
        elif mode == "stream":
            list(llm.stream(QUESTION))
        else:
            asyncio.run(llm.ainvoke(QUESTION))
    trace = assert_nested_and_counted_once(
        experiment, calls, lambda s: s.name == "ChatOpenAI" and not is_wire(s)
    )
    (wire,) = [s for s in trace.data.spans if is_wire(s)]
    (parent,) = [s for s in trace.data.spans if s.span_id == wire.parent_id]
    assert parent.name == "ChatOpenAI"
    assert parent.span_type == "CHAT_MODEL"


# --------------------------------------------------------------------------------------------
# LiteLLM: completion(..., client=OpenAI(http_client=TracedClient()))
# --------------------------------------------------------------------------------------------


@pytest.fixture
def litellm() -> Any:
    return pytest.importorskip("litellm")


@pytest.fixture
def openai_client(server: DevServer) -> Iterator[OpenAI]:
    client = OpenAI(
        base_url=server.base_url, api_key=API_KEY, max_retries=0, http_client=TracedClient()
    )
    with client:
        yield client


def async_openai_client(server: DevServer) -> AsyncOpenAI:
    return AsyncOpenAI(
        base_url=server.base_url, api_key=API_KEY, max_retries=0, http_client=TracedAsyncClient()
    )


def assert_litellm_reply(span: Span, response: Any) -> None:
    assert span.outputs["id"] == response.id
    assert chat_message(span)["content"] == response.choices[0].message.content
    assert usage(span) == {
        "input_tokens": response.usage.prompt_tokens,
        "output_tokens": response.usage.completion_tokens,
        "total_tokens": response.usage.total_tokens,
    }


def test_litellm_completion(
    litellm: Any, openai_client: OpenAI, experiment: str, calls: Calls
) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    response = litellm.completion(
        model=f"openai/{MODEL}", messages=messages, client=openai_client, max_tokens=50
    )
    (span,) = wire_spans(experiment, calls)
    assert response.choices[0].message.content == ANSWER
    assert span.inputs["messages"] == messages
    assert span.inputs["max_tokens"] == 50
    assert_litellm_reply(span, response)


def test_litellm_acompletion(
    litellm: Any, server: DevServer, experiment: str, calls: Calls
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]

    async def run() -> Any:
        async with async_openai_client(server) as client:
            return await litellm.acompletion(
                model=f"openai/{MODEL}", messages=messages, client=client
            )

    response = asyncio.run(run())
    (span,) = wire_spans(experiment, calls)
    assert span.inputs["messages"] == messages
    assert_litellm_reply(span, response)


def test_litellm_stream(litellm: Any, openai_client: OpenAI, experiment: str, calls: Calls) -> None:
    chunks = list(
        litellm.completion(
            model=f"openai/{MODEL}",
            messages=[{"role": "user", "content": QUESTION}],
            client=openai_client,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    (span,) = wire_spans(experiment, calls)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    assert span.attributes["stream.completed"] is True
    assert chat_message(span)["content"] == text
    (final,) = [c for c in chunks if getattr(c, "usage", None)]
    assert usage(span) == {
        "input_tokens": final.usage.prompt_tokens,
        "output_tokens": final.usage.completion_tokens,
        "total_tokens": final.usage.total_tokens,
    }


def test_litellm_tool_calls(
    litellm: Any, openai_client: OpenAI, experiment: str, calls: Calls
) -> None:
    response = litellm.completion(
        model=f"openai/{MODEL}",
        messages=[{"role": "user", "content": WEATHER}],
        tools=[WEATHER_TOOL],
        client=openai_client,
    )
    (span,) = wire_spans(experiment, calls)
    assert span.attributes["mlflow.chat.tools"] == [WEATHER_TOOL]
    message = chat_message(span)
    assert tool_arguments(message) == CITIES
    returned = response.choices[0].message.tool_calls
    assert [c["id"] for c in message["tool_calls"]] == [c.id for c in returned]
    assert [json.loads(c.function.arguments) for c in returned] == CITIES
    assert_litellm_reply(span, response)


def test_litellm_autolog(
    litellm: Any, openai_client: OpenAI, experiment: str, calls: Calls
) -> None:
    # LiteLLM's MLflow callback records its span after the call returned, so the wire span
    # cannot nest under it: both are children of the caller's span. The wire span, sent from
    # within LiteLLM while its autolog is on, keeps its usage as tracer.tokenUsage, so the
    # trace counts the call once.
    @mlflow.trace
    def ask() -> str:
        response = litellm.completion(
            model=f"openai/{MODEL}",
            messages=[{"role": "user", "content": QUESTION}],
            client=openai_client,
        )
        return str(response.choices[0].message.content)

    with autolog("litellm"):
        assert ask() == ANSWER
    (trace,) = read_traces(experiment)
    wire = [s for s in trace.data.spans if is_wire(s)]
    framework = [s for s in trace.data.spans if s.name.startswith("litellm-")]
    assert len(wire) == 1 and len(framework) == 1
    assert "mlflow.chat.tokenUsage" not in wire[0].attributes
    assert trace.info.token_usage["total_tokens"] == usage(wire[0])["total_tokens"]
    assert [s.inputs for s in wire] == calls.bodies()


# --------------------------------------------------------------------------------------------
# OpenAI Agents SDK: set_default_openai_client(AsyncOpenAI(http_client=TracedAsyncClient()))
# --------------------------------------------------------------------------------------------


@pytest.fixture
def agents(server: DevServer) -> Iterator[Any]:
    """The Agents SDK with a traced default client; its own tracing (an upload to the OpenAI
    platform) off."""
    import agents
    from agents.models import _openai_shared

    previous = _openai_shared.get_default_openai_client()
    agents.set_tracing_disabled(True)
    agents.set_default_openai_client(async_openai_client(server), use_for_tracing=False)
    try:
        yield agents
    finally:
        _openai_shared.set_default_openai_client(previous)


def assistant(agents: Any, api: str = "responses", **options: Any) -> Any:
    """An agent on the default client, through the Responses API (the SDK's default) or chat
    completions."""
    model: Any = MODEL
    if api == "chat_completions":
        client = agents.models._openai_shared.get_default_openai_client()
        model = agents.OpenAIChatCompletionsModel(model=MODEL, openai_client=client)
    options.setdefault("instructions", "You are helpful.")
    return agents.Agent(name="Assistant", model=model, **options)


def agents_usage(response: Any) -> dict[str, int]:
    """The token usage the Agents SDK counted for one model response."""
    return {
        "input_tokens": response.usage.input_tokens,
        "output_tokens": response.usage.output_tokens,
        "total_tokens": response.usage.total_tokens,
    }


def assert_agents_response(span: Span, result: Any, index: int = -1) -> None:
    """The Responses API span holds the response the Agents SDK got: id and usage."""
    response = result.raw_responses[index]
    assert span.outputs["object"] == "response"
    assert span.outputs["id"] == response.response_id
    assert usage(span) == agents_usage(response)


def test_agents_run_sync(agents: Any, experiment: str, calls: Calls) -> None:
    result = agents.Runner.run_sync(assistant(agents), QUESTION)
    (span,) = wire_spans(experiment, calls)
    assert result.final_output == ANSWER
    assert span.inputs["instructions"] == "You are helpful."
    assert span.inputs["input"] == [{"role": "user", "content": QUESTION}]
    assert responses_text(span) == result.final_output
    assert_agents_response(span, result)


def test_agents_run(agents: Any, experiment: str, calls: Calls) -> None:
    result = asyncio.run(agents.Runner.run(assistant(agents), QUESTION))
    (span,) = wire_spans(experiment, calls)
    assert span.inputs["input"] == [{"role": "user", "content": QUESTION}]
    assert responses_text(span) == result.final_output == ANSWER
    assert_agents_response(span, result)


def test_agents_run_streamed(agents: Any, experiment: str, calls: Calls) -> None:
    async def run() -> tuple[Any, str]:
        result = agents.Runner.run_streamed(assistant(agents), QUESTION)
        text = ""
        async for event in result.stream_events():
            if (
                event.type == "raw_response_event"
                and event.data.type == "response.output_text.delta"
            ):
                text += event.data.delta
        return result, text

    result, text = asyncio.run(run())
    (span,) = wire_spans(experiment, calls)
    assert span.inputs["stream"] is True
    assert span.attributes["stream.completed"] is True
    assert text == result.final_output == ANSWER
    assert responses_text(span) == text
    assert_agents_response(span, result)


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_agents_tool_calls(agents: Any, experiment: str, calls: Calls, api: str) -> None:
    agent = assistant(agents, api, tools=[agents.function_tool(get_weather)])
    result = agents.Runner.run_sync(agent, WEATHER)
    first, second = wire_spans(experiment, calls)
    assert result.final_output == WEATHER_ANSWER
    if api == "responses":
        asked = [item for item in first.outputs["output"] if item["type"] == "function_call"]
        assert [item["name"] for item in asked] == ["get_weather", "get_weather"]
        assert [json.loads(item["arguments"]) for item in asked] == CITIES
        answered = [i for i in second.inputs["input"] if i.get("type") == "function_call_output"]
        assert [i["call_id"] for i in answered] == [item["call_id"] for item in asked]
        assert [i["output"] for i in answered] == ["Sunny in Paris", "Sunny in Tokyo"]
        assert responses_text(second) == WEATHER_ANSWER
        for index, span in enumerate((first, second)):
            assert_agents_response(span, result, index)
    else:
        message = chat_message(first)
        assert tool_arguments(message) == CITIES
        answered = [m for m in second.inputs["messages"] if m["role"] == "tool"]
        assert [m["tool_call_id"] for m in answered] == [c["id"] for c in message["tool_calls"]]
        assert [m["content"] for m in answered] == ["Sunny in Paris", "Sunny in Tokyo"]
        assert chat_message(second)["content"] == WEATHER_ANSWER
        for span, response in zip((first, second), result.raw_responses, strict=True):
            assert usage(span) == agents_usage(response)


@pytest.mark.parametrize(
    "api",
    ["responses", "chat_completions"],
)
def test_agents_autolog(agents: Any, experiment: str, calls: Calls, api: str) -> None:
    # mlflow.openai.autolog() also patches the OpenAI SDK: its AsyncResponses span and the wire
    # span are two records of one call, siblings under the Agents SDK's Response span. The
    # wire span then keeps its usage as tracer.tokenUsage, so the trace counts each call once.
    # MLflow's Agents SDK integration is OpenAI's autolog; the tracer leaves it off unless the
    # user configures it, as here. The SDK's tracing must be on for MLflow to see its spans.
    agents.set_tracing_disabled(False)
    agent = assistant(agents, api, tools=[agents.function_tool(get_weather)])
    try:
        with autolog("openai"):
            result = agents.Runner.run_sync(agent, WEATHER)
    finally:
        agents.set_tracing_disabled(True)
    assert result.final_output == WEATHER_ANSWER
    trace = assert_nested_and_counted_once(
        experiment, calls, lambda s: s.name == "AgentRunner.run" and s.span_type == "AGENT"
    )
    wire = [s for s in trace.data.spans if is_wire(s)]
    assert len(wire) == 2
    assert all("mlflow.chat.tokenUsage" not in s.attributes for s in wire)


# --------------------------------------------------------------------------------------------
# pydantic-ai: OpenAIProvider(openai_client=AsyncOpenAI(http_client=TracedAsyncClient()))
# --------------------------------------------------------------------------------------------


@pytest.fixture
def pydantic_agent(server: DevServer) -> Callable[..., Any]:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    def make(**options: Any) -> Any:
        provider = OpenAIProvider(openai_client=async_openai_client(server))
        options.setdefault("instructions", "You are helpful.")
        return Agent(OpenAIChatModel(MODEL, provider=provider), **options)

    return make


def assert_pydantic_ai_response(span: Span, response: Any) -> None:
    assert span.outputs["id"] == response.provider_response_id
    assert usage(span) == {
        "input_tokens": response.usage.input_tokens,
        "output_tokens": response.usage.output_tokens,
        "total_tokens": response.usage.input_tokens + response.usage.output_tokens,
    }


def test_pydantic_ai_run_sync(
    pydantic_agent: Callable[..., Any], experiment: str, calls: Calls
) -> None:
    result = pydantic_agent().run_sync(QUESTION)
    (span,) = wire_spans(experiment, calls)
    assert result.output == ANSWER
    assert span.inputs["messages"] == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": QUESTION},
    ]
    assert chat_message(span)["content"] == result.output
    assert_pydantic_ai_response(span, result.response)


def test_pydantic_ai_run(pydantic_agent: Callable[..., Any], experiment: str, calls: Calls) -> None:
    result = asyncio.run(pydantic_agent().run(QUESTION))
    (span,) = wire_spans(experiment, calls)
    assert chat_message(span)["content"] == result.output == ANSWER
    assert_pydantic_ai_response(span, result.response)


def test_pydantic_ai_run_stream(
    pydantic_agent: Callable[..., Any], experiment: str, calls: Calls
) -> None:
    async def run() -> tuple[str, Any]:
        async with pydantic_agent().run_stream(QUESTION) as result:
            text = "".join([delta async for delta in result.stream_text(delta=True)])
        return text, result.response

    text, response = asyncio.run(run())
    (span,) = wire_spans(experiment, calls)
    assert text == ANSWER
    assert span.inputs["stream"] is True
    assert span.inputs["stream_options"] == {"include_usage": True}
    assert span.attributes["stream.completed"] is True
    assert chat_message(span)["content"] == text
    assert_pydantic_ai_response(span, response)


def test_pydantic_ai_tool_calls(
    pydantic_agent: Callable[..., Any], experiment: str, calls: Calls
) -> None:
    result = pydantic_agent(tools=[get_weather]).run_sync(WEATHER)
    first, second = wire_spans(experiment, calls)
    assert result.output == WEATHER_ANSWER
    assert [t["function"]["name"] for t in first.inputs["tools"]] == ["get_weather"]
    message = chat_message(first)
    assert tool_arguments(message) == CITIES
    answered = [m for m in second.inputs["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in answered] == [c["id"] for c in message["tool_calls"]]
    assert [m["content"] for m in answered] == ["Sunny in Paris", "Sunny in Tokyo"]
    assert chat_message(second)["content"] == WEATHER_ANSWER
    responses = [m for m in result.all_messages() if m.kind == "response"]
    for span, response in zip((first, second), responses, strict=True):
        assert_pydantic_ai_response(span, response)


@pytest.mark.parametrize("mode", ["run_sync", "run_stream"])
def test_pydantic_ai_autolog(
    pydantic_agent: Callable[..., Any], experiment: str, calls: Calls, mode: str
) -> None:
    with autolog("pydantic_ai"):
        if mode == "run_sync":
            agent = pydantic_agent(tools=[get_weather])
            assert agent.run_sync(WEATHER).output == WEATHER_ANSWER
        else:

            async def run() -> str:
                async with pydantic_agent().run_stream(QUESTION) as result:
                    return "".join([d async for d in result.stream_text(delta=True)])

            assert asyncio.run(run()) == ANSWER
    assert_nested_and_counted_once(
        experiment, calls, lambda s: s.name.startswith("Agent.run") and s.span_type == "AGENT"
    )
