"""The examples in ``examples/`` run against the local server and record the traces they promise,
as read back from the MLflow store; and ``tracer.show`` renders those traces readably."""

from __future__ import annotations

import importlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import mlflow
import pytest
from llm_devserver import DevServer
from mlflow.entities import Span, SpanType, Trace

import tracer
from tracer.show import render_trace, render_traces

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUESTION = "What is the capital of France?"
MODEL = "databricks-llama-4-maverick"


@pytest.fixture(scope="module")
def devserver() -> Iterator[DevServer]:
    """One local OpenAI-compatible server for the module."""
    with DevServer() as server:
        yield server


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated SQLite tracking store, copied by each test (migrating one takes
    about a second)."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{path}")
    try:
        mlflow.search_experiments()
    finally:
        mlflow.set_tracking_uri(previous_uri)
    return path


@pytest.fixture()
def experiment_id(
    devserver: DevServer, empty_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh SQLite tracking store and experiment, and the environment the examples read."""
    monkeypatch.setenv("TRACER_STRICT", "1")
    monkeypatch.setenv("OPENAI_BASE_URL", devserver.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "EXAMPLE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    # MLflow prices LLM spans from a model catalog it would otherwise try to download (and,
    # offline, retry for seconds); the bundled catalog is enough.
    monkeypatch.setenv("MLFLOW_MODEL_CATALOG_URI", "")
    monkeypatch.syspath_prepend(str(EXAMPLES))

    store = tmp_path / "mlflow.db"
    shutil.copyfile(empty_store, store)
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    try:
        yield mlflow.set_experiment("examples").experiment_id
    finally:
        mlflow.flush_trace_async_logging()
        mlflow.set_tracking_uri(previous_uri)


def example(name: str) -> ModuleType:
    """The example module ``examples/<name>.py``."""
    return importlib.import_module(name)


def read_traces(experiment_id: str) -> list[Trace]:
    """The experiment's traces, oldest first, as stored."""
    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(
        experiment_ids=[experiment_id], order_by=["timestamp_ms ASC"], return_type="list"
    )
    return list(traces)


def llm_spans(trace: Trace) -> list[Span]:
    """The trace's CHAT_MODEL spans, in start order."""
    spans = [s for s in trace.data.spans if s.span_type == SpanType.CHAT_MODEL]
    return sorted(spans, key=lambda s: s.start_time_ns)


def message(span: Span) -> dict[str, Any]:
    """The first choice's message of an LLM span's outputs."""
    return span.outputs["choices"][0]["message"]


def test_basic(experiment_id: str) -> None:
    response = example("basic").main()

    (trace,) = read_traces(experiment_id)
    (span,) = trace.data.spans
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.name == f"chat {MODEL}"
    assert span.status.status_code == "OK"
    assert span.inputs["messages"] == [{"role": "user", "content": QUESTION}]
    assert "Paris" in message(span)["content"]
    assert message(span)["content"] == response.choices[0].message.content
    assert span.get_attribute("temperature") == 0.1
    assert span.get_attribute("max_tokens") == 100
    assert span.get_attribute("mlflow.llm.model") == MODEL
    usage = span.get_attribute("mlflow.chat.tokenUsage")
    assert usage["input_tokens"] == response.usage.prompt_tokens
    assert usage["output_tokens"] == response.usage.completion_tokens


def test_streaming(experiment_id: str) -> None:
    text = example("streaming").main()

    (trace,) = read_traces(experiment_id)
    (span,) = trace.data.spans
    assert span.span_type == SpanType.CHAT_MODEL
    assert text == "The capital of France is Paris."
    assert message(span)["content"] == text
    assert span.outputs["object"] == "chat.completion"
    assert span.get_attribute("stream") is True
    assert span.get_attribute("stream.completed") is True
    assert span.get_attribute("stream.chunk_count") > 1
    assert span.get_attribute("stream.time_to_first_chunk_ms") >= 0


def test_function_calling(experiment_id: str) -> None:
    answer = example("function_calling").main()

    (trace,) = read_traces(experiment_id)
    (root,) = [s for s in trace.data.spans if s.parent_id is None]
    assert root.span_type == SpanType.AGENT
    assert root.name == "run_agent"
    assert root.outputs == answer
    children = sorted(
        (s for s in trace.data.spans if s.parent_id == root.span_id), key=lambda s: s.start_time_ns
    )
    assert [s.span_type for s in children] == [
        SpanType.CHAT_MODEL,
        SpanType.TOOL,
        SpanType.TOOL,
        SpanType.CHAT_MODEL,
    ]
    assert [s.inputs for s in children if s.span_type == SpanType.TOOL] == [
        {"city": "Paris"},
        {"city": "London"},
    ]

    first, second = llm_spans(trace)
    calls = message(first)["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_weather"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris"},
        {"city": "London"},
    ]
    assert first.outputs["choices"][0]["finish_reason"] == "tool_calls"
    assert first.get_attribute("mlflow.chat.tools")[0]["function"]["name"] == "get_weather"

    tool_messages = [m for m in second.inputs["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [c["id"] for c in calls]
    assert message(second)["content"] == answer
    assert "Paris" in answer and "London" in answer


def test_async_chat(experiment_id: str) -> None:
    answers = example("async_chat").main()

    (trace,) = read_traces(experiment_id)
    (root,) = [s for s in trace.data.spans if s.parent_id is None]
    assert root.name == "ask_both"
    spans = llm_spans(trace)
    assert len(spans) == 2
    assert all(s.parent_id == root.span_id for s in spans)
    by_kind = {bool(s.get_attribute("stream")): s for s in spans}
    assert set(by_kind) == {True, False}
    assert by_kind[True].get_attribute("stream.completed") is True
    assert sorted(message(s)["content"] for s in spans) == sorted(answers)


def test_render_trace(experiment_id: str) -> None:
    example("function_calling").main()
    example("streaming").main()
    agent, stream = read_traces(experiment_id)

    text = render_trace(agent)
    lines = text.splitlines()
    assert lines[0].startswith("run_agent  AGENT  ")
    assert lines[0].endswith(" ms")
    first, _ = llm_spans(agent)
    usage = first.get_attribute("mlflow.chat.tokenUsage")
    assert lines[1].startswith(f"├─ chat {MODEL}  CHAT_MODEL  ")
    assert (
        f" · {MODEL} · tokens {usage['input_tokens']} in / {usage['output_tokens']} out"
        in (lines[1])
    )
    assert lines[2] == "│     in:  What's the weather like in Paris and London?"
    calls = 'tool_calls: get_weather(city="Paris"), get_weather(city="London")'
    assert lines[3] == f"│     out: {calls}"
    assert lines[4].startswith("├─ get_weather  TOOL  ")
    assert lines[5].startswith("├─ get_weather  TOOL  ")
    assert lines[6].startswith(f"└─ chat {MODEL}  CHAT_MODEL  ")
    assert lines[7].startswith("      in:  tool results: The weather in Paris is sunny")
    assert lines[8].startswith("      out: Based on the tools: The weather in Paris")
    previews = [lines[7].removeprefix("      in:  "), lines[8].removeprefix("      out: ")]
    assert all(len(preview) == 80 and preview.endswith("…") for preview in previews)
    assert len(lines) == 9

    rendered_stream = render_trace(stream)
    assert "first token " in rendered_stream
    assert "out: The capital of France is Paris." in rendered_stream

    both = render_traces([agent, stream])
    assert both.count("trace tr-") == 2
    assert f"trace {agent.info.trace_id} · started " in both
    assert both.index(agent.info.trace_id) < both.index(stream.info.trace_id)


def test_other_providers(
    experiment_id: str, devserver: DevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_BASE_URL", devserver.url)
    monkeypatch.setenv("OLLAMA_HOST", devserver.url)
    monkeypatch.setenv("CO_API_URL", devserver.url)
    gemini_text, ollama_text, cohere_text = example("other_providers").main()

    gemini_trace, ollama_trace, cohere_trace = read_traces(experiment_id)
    (command,) = llm_spans(cohere_trace)
    assert command.name == "chat command-a-03-2025"
    assert command.get_attribute("mlflow.llm.provider") == "cohere"
    assert "Paris" in cohere_text
    (gemini,) = llm_spans(gemini_trace)
    (local,) = llm_spans(ollama_trace)
    assert gemini.name == "chat gemini-2.5-flash"
    assert gemini.get_attribute("mlflow.llm.provider") == "gemini"
    parts = gemini.outputs["candidates"][0]["content"]["parts"]
    assert [p["text"] for p in parts if not p.get("thought")] == [gemini_text]
    assert "Paris" in gemini_text
    assert local.name == "chat llama3.2"
    assert local.get_attribute("mlflow.llm.provider") == "ollama"
    assert local.get_attribute("stream.completed") is True
    assert local.outputs["message"]["content"] == ollama_text
    assert "Paris" in ollama_text
    for trace, text in ((gemini_trace, gemini_text), (ollama_trace, ollama_text)):  # previews
        rendered = render_trace(trace)
        assert "in:  What is the capital of France?" in rendered
        assert f"out: {text}" in rendered


def test_one_line(
    experiment_id: str, devserver: DevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_BASE_URL", devserver.url)
    openai_text, gemini_text = example("one_line").main()

    openai_trace, gemini_trace = read_traces(experiment_id)
    (chat,) = llm_spans(openai_trace)
    assert message(chat)["content"] == openai_text
    assert "Paris" in openai_text
    (gemini,) = llm_spans(gemini_trace)
    parts = gemini.outputs["candidates"][0]["content"]["parts"]
    assert [p["text"] for p in parts if not p.get("thought")] == [gemini_text]
    assert not tracer.instrumented()
