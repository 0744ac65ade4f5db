"""Testing your own LLM code offline with cassettes: record its calls once, replay them in CI.

The marker ``@pytest.mark.llm_cassette`` (installed with the package as a pytest plugin) puts a
cassette under every LLM call the test makes, through any traced or instrumented client:
``cassettes/test_cassette_example/<test name>.json`` beside this file. The cassettes here were
recorded against the project's local server; with your own code they are recorded against the
real API, with your key, which is never written to them.

Replay, offline, as CI does (nothing reaches the server; a call not in the cassette fails)::

    .venv/bin/python -m pytest examples/test_cassette_example.py --llm-record-mode=none

Record them again (here against the local server; yours against the API)::

    .venv/bin/python -m pytest examples/test_cassette_example.py --llm-record-mode=all
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llm_devserver import DevServer
from openai import OpenAI

from tracer import TracedClient

#: The local server listens on a new port in each run: the port is left out of the match.
CASSETTE = {"ignore_fields": ["url.port"]}


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    """The local OpenAI-compatible server, standing in for the API when recording."""
    with DevServer() as local:
        yield local


@pytest.fixture
def client(server: DevServer) -> Iterator[OpenAI]:
    with OpenAI(
        base_url=server.base_url, api_key="sk-my-real-key", http_client=TracedClient()
    ) as c:
        yield c


def capital_of(client: OpenAI, country: str) -> str:
    """The code under test: one LLM call."""
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"What is the capital of {country}?"}],
        temperature=0.1,
    )
    return reply.choices[0].message.content or ""


def streamed_story(client: OpenAI) -> tuple[str, int]:
    """More code under test: a streamed answer, read chunk by chunk."""
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Tell me a short story."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, chunks = "", 0
    for chunk in stream:
        chunks += 1
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    return text, chunks


@pytest.mark.llm_cassette(**CASSETTE)
def test_capital(client: OpenAI, llm_spans: Any, llm_cassette: Any) -> None:
    answer = capital_of(client, "France")

    assert "France" in answer  # the local server echoes the question; a model would say Paris
    span = llm_spans.one(api="chat.completions", model="gpt-4o-mini")
    assert span.status == "OK" and span.usage["total_tokens"] > 0
    # Replayed calls are traced like live ones, and say so.
    assert span.attributes["tracer.replayed"] is (llm_cassette.replayed == 1)


@pytest.mark.llm_cassette(**CASSETTE)
def test_streamed_story(
    client: OpenAI, server: DevServer, llm_spans: Any, llm_cassette: Any
) -> None:
    text, chunks = streamed_story(client)

    assert text and chunks > 3  # the recorded chunks, in order, with their boundaries
    span = llm_spans.one(api="chat.completions")
    assert span.attributes["stream.chunk_count"] > 3
    assert span.outputs["choices"][0]["message"]["content"] == text
    if llm_cassette.replayed:
        assert server.requests == []  # answered from the cassette alone
