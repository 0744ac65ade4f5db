"""A stream's timeline as span events on request (issue 23, ``TRACER_CHUNK_EVENTS``): off by
default; ``summary`` keeps the first and last chunk and the longest gaps, wherever they are;
``all`` records every event as ``mlflow.openai.autolog()`` does, read back from MLflow."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest
from llm_devserver import DevServer
from readback import autolog, is_wire, read_spans

from tracer import TracedClient, TracerConfig
from tracer.pytest_plugin import LLMSpans

QUESTION = [{"role": "user", "content": "Tell me about the local server."}]


def stream(server: DevServer, config: TracerConfig, **headers: str) -> list[Any]:
    client = openai.OpenAI(
        base_url=server.base_url,
        api_key="k",
        http_client=TracedClient(config=config),
        default_headers=headers,
    )
    return list(client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True))  # type: ignore[arg-type]


def test_off_by_default(server: DevServer, llm_spans: LLMSpans) -> None:
    stream(server, TracerConfig())
    assert llm_spans.one(api="chat.completions").events == []


def stalled_server(
    pieces: int, stall_after: int, seconds: float, extra: dict[str, Any] | None = None
) -> httpx.MockTransport:
    """A chat stream of ``pieces`` chunks that stalls once, after chunk ``stall_after``;
    ``extra`` fields in every delta."""

    def chunks() -> Any:
        for index in range(pieces):
            if index == stall_after:
                time.sleep(seconds)
            delta = {"content": f"w{index} "} if index else {"role": "assistant", "content": ""}
            delta.update(extra or {})
            chunk = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=headers, content=chunks())

    return httpx.MockTransport(answer)


def test_summary_finds_the_stall(llm_spans: LLMSpans) -> None:
    http = TracedClient(
        transport=stalled_server(40, 25, 0.2), config=TracerConfig(chunk_events="summary")
    )
    client = openai.OpenAI(base_url="http://llm.test/v1", api_key="k", http_client=http)
    chunks = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
    )  # type: ignore[arg-type]
    span = llm_spans.one(api="chat.completions")
    longest = max(
        (e for e in span.events if e["name"] == "stream.gap"),
        key=lambda e: e["attributes"]["stream.gap_ms"],
    )
    assert longest["attributes"]["stream.gap_ms"] >= 200
    stalled_at = longest["attributes"]["stream.offset_ms"]
    assert stalled_at >= 200 and stalled_at <= span.events[-1]["attributes"]["stream.offset_ms"]
    span = llm_spans.one(api="chat.completions")
    names = [e["name"] for e in span.events]
    assert names[0] == "stream.first_chunk" and names[-1] == "stream.last_chunk"
    gaps = [e for e in span.events if e["name"] == "stream.gap"]
    assert 1 <= len(gaps) <= 5
    times = [e["timestamp_ns"] for e in span.events]
    assert times == sorted(times)
    last = span.events[-1]["attributes"]
    assert last["stream.chunks"] >= len(chunks) - 1
    first = span.events[0]["attributes"]["stream.offset_ms"]
    assert first == pytest.approx(span.attributes["stream.time_to_first_chunk_ms"], abs=5)
    assert all(g["attributes"]["stream.gap_ms"] > 0 for g in gaps)


def test_all_matches_autolog_event_for_event(server: DevServer, experiment: str) -> None:
    chunks = stream(server, TracerConfig(chunk_events="all"))
    with autolog("openai"):
        bare = openai.OpenAI(base_url=server.base_url, api_key="k", http_client=httpx.Client())
        list(bare.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True))  # type: ignore[arg-type]
    spans = read_spans(experiment)
    ours = next(s for s in spans if is_wire(s))
    theirs = next(s for s in spans if not is_wire(s))
    assert [e.name for e in ours.events] == [e.name for e in theirs.events]
    assert len(ours.events) == len(chunks)
    values = [json.loads(e.attributes["mlflow.chunk.value"]) for e in ours.events]
    assert [v["choices"][0]["delta"] for v in values if v["choices"]] == [
        c.choices[0].delta.model_dump(exclude_unset=True) for c in chunks if c.choices
    ]
    stamps = [e.timestamp for e in ours.events]
    assert stamps == sorted(stamps) and ours.start_time_ns <= stamps[0] <= ours.end_time_ns


def test_all_without_content_keeps_times_only(server: DevServer, llm_spans: LLMSpans) -> None:
    chunks = stream(server, TracerConfig(chunk_events="all", capture_content=False))
    span = llm_spans.one(api="chat.completions")
    assert len(span.events) == len(chunks)
    assert all(e["attributes"] == {} for e in span.events)


def test_all_stops_its_values_at_the_body_limit(server: DevServer, llm_spans: LLMSpans) -> None:
    chunks = stream(server, TracerConfig(chunk_events="all", max_body_bytes=2000))
    span = llm_spans.one(api="chat.completions")
    assert 0 < len(span.events) < len(chunks)
    assert any("chunk events stopped" in p for p in span.attributes["tracer.problems"])
    assert span.attributes["stream.completed"] is True


def test_all_masks_what_the_outputs_mask(llm_spans: LLMSpans) -> None:
    secret = {"authorization": "Bearer sk-SECRET-77", "link": "https://x.test/a?sig=SECRET-88"}
    http = TracedClient(
        transport=stalled_server(5, 0, 0.0, extra=secret), config=TracerConfig(chunk_events="all")
    )
    client = openai.OpenAI(base_url="http://llm.test/v1", api_key="k", http_client=http)
    list(client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True))  # type: ignore[arg-type]
    span = llm_spans.one(api="chat.completions")
    values = [e["attributes"]["mlflow.chunk.value"] for e in span.events]
    assert len(values) == 5 and "SECRET" not in "".join(values)
    delta = json.loads(values[1])["choices"][0]["delta"]
    assert delta["authorization"] == "REDACTED" and delta["content"] == "w1 "
