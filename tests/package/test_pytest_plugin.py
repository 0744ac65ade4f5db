"""The ``llm_spans`` fixture the package installs as a pytest plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest
from llm_devserver import DevServer
from openai import OpenAI
from readback import read_traces

from tracer import TracedClient

ROOT = Path(__file__).resolve().parents[2]


def test_spans_collected_in_memory_not_stored(
    llm_spans: Any, server: DevServer, experiment: str
) -> None:
    client = OpenAI(api_key="k", base_url=server.base_url, http_client=TracedClient())
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
    )
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    client.embeddings.create(model="text-embedding-3-small", input="x")

    assert len(llm_spans) == 3
    first = llm_spans.one(model="gpt-4o-mini")
    assert first.name == "chat gpt-4o-mini"
    assert first.span_type == "CHAT_MODEL"
    assert first.outputs["choices"][0]["message"]["content"] == "The capital of France is Paris."
    assert first.inputs["messages"][0]["content"] == "What is the capital of France?"
    assert llm_spans.one(api="chat.completions", model="gpt-4o").attributes["stream.completed"]
    assert llm_spans.one(api="embeddings").span_type == "EMBEDDING"
    assert llm_spans.filter(contains="capital of France") == [first]
    assert llm_spans.assert_recorded(2, api="chat.completions", status="OK")
    mlflow.flush_trace_async_logging()
    assert read_traces(experiment) == []  # nothing went to the store


def run_example(path: str, *options: str) -> subprocess.CompletedProcess[str]:
    """An example test file run by pytest in a child process, from the repository's root."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, path]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.e2e
def test_example_test_file_passes() -> None:
    result = run_example("examples/test_llm_spans_example.py")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 passed" in result.stdout


@pytest.mark.e2e
def test_the_cassette_example_replays_its_committed_cassettes_offline() -> None:
    result = run_example("examples/test_cassette_example.py", "--llm-record-mode=none")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 passed" in result.stdout
