"""What the caller's MLflow context says when a request is sent holds for its span, also when
the span reaches MLflow later (a trace of its own is handed over when the call ends, and a
stream may be read after the context was left): ``mlflow.tracing.context`` tags, metadata and
switch, and the active run."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import pytest
from llm_devserver import DevServer
from openai import OpenAI
from readback import read_traces
from sdk import API_KEY, QUESTION, joined_content

from tracer import TracedClient


@pytest.fixture
def client(server: DevServer) -> Iterator[OpenAI]:
    with OpenAI(
        base_url=server.base_url, api_key=API_KEY, http_client=TracedClient(), max_retries=0
    ) as client:
        yield client


def test_stream_read_later_keeps_the_trace_context(client: OpenAI, experiment: str) -> None:
    with mlflow.tracing.context(tags={"project": "wire"}, metadata={"release": "7"}):
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
    assert joined_content(list(stream)) == "The capital of France is Paris."

    (trace,) = read_traces(experiment)
    assert trace.info.tags["project"] == "wire"
    assert trace.info.trace_metadata["release"] == "7"
    assert [s.name for s in trace.data.spans] == ["chat gpt-4o-mini"]


def test_no_trace_when_tracing_was_off_as_the_request_was_sent(
    client: OpenAI, experiment: str
) -> None:
    with mlflow.tracing.context(enabled=False):
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
        client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    list(stream)  # read where tracing is on again
    traced = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "traced"}]
    )

    (trace,) = read_traces(experiment)
    assert trace.data.spans[0].outputs["id"] == traced.id


def test_calls_made_in_a_run_are_linked_to_it(client: OpenAI, experiment: str) -> None:
    with mlflow.start_run(experiment_id=experiment) as run:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
        client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    list(stream)  # read after the run ended
    client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)  # no run

    traces = read_traces(experiment)
    assert len(traces) == 3
    runs = [t.info.trace_metadata.get("mlflow.sourceRun") for t in traces]
    assert runs == [run.info.run_id, run.info.run_id, None]
