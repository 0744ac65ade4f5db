"""What MLflow does with the traces it produces works the same with the tracer's traces, with
the export process on: ``mlflow.genai.evaluate`` with a code-based scorer, the last active
trace and feedback on it, ``update_current_trace`` in ``@mlflow.trace``, runs, the tracing
switch and ``MLFLOW_TRACE_SAMPLING_RATIO``."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import mlflow
import pytest
from llm_devserver import DevServer
from mlflow.entities import Span, Trace
from mlflow.genai.scorers import scorer
from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS
from openai import OpenAI
from readback import only_llm_span, read_traces
from sdk import joined_content

from tracer import TracedClient

MODEL = "gpt-4o-mini"
PARIS = "The capital of France is Paris."


@pytest.fixture(autouse=True)
def no_model_catalog_download(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow prices LLM spans from a model catalog it would otherwise try to download (and,
    # offline, retry for seconds) for the provider "127.0.0.1"; the bundled catalog is enough.
    monkeypatch.setenv("MLFLOW_MODEL_CATALOG_URI", "")


@pytest.fixture
def client(server: DevServer) -> Iterator[OpenAI]:
    http_client = TracedClient()
    with OpenAI(base_url=server.base_url, api_key="k", http_client=http_client) as client:
        yield client


def ask(client: OpenAI, question: str, *, stream: bool = False) -> str:
    """One traced chat call whose reply is ``answer: <question>``; a stream is read to the end."""
    messages = [{"role": "user", "content": question}]
    headers = {"x-devserver-reply": f"answer: {question}"}
    if stream:
        chunks = client.chat.completions.create(
            model=MODEL, messages=messages, stream=True, extra_headers=headers
        )
        return joined_content(list(chunks))
    response = client.chat.completions.create(model=MODEL, messages=messages, extra_headers=headers)
    return response.choices[0].message.content or ""


def assert_llm_span(span: Span, question: str) -> None:
    assert span.name == f"chat {MODEL}"
    assert span.span_type == "CHAT_MODEL"
    assert span.status.status_code == "OK"
    assert span.inputs["messages"] == [{"role": "user", "content": question}]
    message = span.outputs["choices"][0]["message"]
    assert message["content"] == f"answer: {question}"


@scorer
def has_llm_span(trace: Trace) -> bool:
    """Whether the trace holds the tracer's LLM span (autolog's is named ``Completions``)."""
    return any(s.span_type == "CHAT_MODEL" and s.name == f"chat {MODEL}" for s in trace.data.spans)


@pytest.fixture
def autolog_off() -> Iterator[None]:
    """``mlflow.openai.autolog(disable=True)`` for the test, the autolog set-up restored after."""
    before = AUTOLOGGING_INTEGRATIONS.get("openai")
    mlflow.openai.autolog(disable=True)
    try:
        yield
    finally:
        if before is None:
            AUTOLOGGING_INTEGRATIONS.pop("openai", None)
        else:
            AUTOLOGGING_INTEGRATIONS["openai"] = before


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
@pytest.mark.parametrize("autolog", ["as-evaluate-sets-it", "disabled"])
def test_genai_evaluate_scores_the_tracers_traces(
    client: OpenAI, experiment: str, stream: bool, autolog: str, request: pytest.FixtureRequest
) -> None:
    # evaluate() turns on every autolog the user has not configured; a traced client marks
    # OpenAI's off (spans.settle_autolog), so both variants must give the tracer's spans only.
    if autolog == "disabled":
        request.getfixturevalue("autolog_off")
    questions = ["What is MLflow?", "What is a span?", "What is a trace?"]

    def predict(question: str) -> str:
        answer = ask(client, question, stream=stream)
        assert answer == f"answer: {question}"
        return answer

    result = mlflow.genai.evaluate(
        data=[{"inputs": {"question": q}} for q in questions],
        predict_fn=predict,
        scorers=[has_llm_span],
    )

    df = result.result_df
    assert df is not None
    traces = [Trace.from_json(t) for t in df["trace"]]
    asked = []
    for trace in traces:
        names = [s.name for s in trace.data.spans]
        assert names.count(f"chat {MODEL}") == 1, names
        (span,) = [s for s in trace.data.spans if s.name == f"chat {MODEL}"]
        asked.append(span.inputs["messages"][0]["content"])
        assert_llm_span(span, asked[-1])
        (feedback,) = trace.info.assessments
        assert (feedback.name, feedback.value) == ("has_llm_span", True)
    assert sorted(asked) == sorted(questions)
    assert df["has_llm_span/value"].tolist() == [True] * len(questions)
    # The evaluated traces are all there is: no second trace of the same call, none of the
    # check evaluate() makes with tracing off; and the run finds them.
    stored = {t.info.trace_id for t in read_traces(experiment)}
    assert stored == set(df["trace_id"])
    in_run = mlflow.search_traces(locations=[experiment], run_id=result.run_id, return_type="list")
    assert {t.info.trace_id for t in in_run} == stored


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
def test_feedback_on_the_last_active_trace(client: OpenAI, experiment: str, stream: bool) -> None:
    assert ask(client, "Was this helpful?", stream=stream) == "answer: Was this helpful?"
    trace_id = mlflow.get_last_active_trace_id()
    assert trace_id is not None
    (trace,) = read_traces(experiment)  # flushes: the trace is in the store
    assert trace.info.trace_id == trace_id

    mlflow.log_feedback(trace_id=trace_id, name="helpful", value=True)

    stored = mlflow.get_trace(trace_id)
    assert stored is not None
    (feedback,) = stored.info.assessments
    assert (feedback.name, feedback.value) == ("helpful", True)
    (span,) = stored.data.spans
    assert_llm_span(span, "Was this helpful?")


def test_update_current_trace_in_a_traced_function(client: OpenAI, experiment: str) -> None:
    @mlflow.trace(name="agent")
    def agent(question: str) -> str:
        mlflow.update_current_trace(tags={"team": "wire"}, metadata={"release": "7"})
        return ask(client, question)

    assert agent("Who calls?") == "answer: Who calls?"

    (trace,) = read_traces(experiment)
    assert trace.info.tags["team"] == "wire"
    assert trace.info.trace_metadata["release"] == "7"
    root, llm = sorted(trace.data.spans, key=lambda s: s.start_time_ns)
    assert (root.name, root.parent_id) == ("agent", None)
    assert root.outputs == "answer: Who calls?"
    assert llm.parent_id == root.span_id
    assert_llm_span(llm, "Who calls?")


def test_a_call_in_a_run_is_linked_to_it(client: OpenAI, experiment: str) -> None:
    with mlflow.start_run() as run:
        assert ask(client, "In a run?", stream=True) == "answer: In a run?"
    assert ask(client, "After it?") == "answer: After it?"

    assert len(read_traces(experiment)) == 2  # flushes
    run_id = run.info.run_id
    (trace,) = mlflow.search_traces(locations=[experiment], run_id=run_id, return_type="list")
    assert trace.info.trace_metadata["mlflow.sourceRun"] == run_id
    (span,) = trace.data.spans
    assert_llm_span(span, "In a run?")


def test_disabled_tracing_records_nothing_and_enable_resumes(
    client: OpenAI, experiment: str
) -> None:
    mlflow.tracing.disable()
    try:
        assert ask(client, "Untraced?") == "answer: Untraced?"
        assert ask(client, "Untraced stream?", stream=True) == "answer: Untraced stream?"
        assert read_traces(experiment) == []
    finally:
        mlflow.tracing.enable()
    assert ask(client, "Traced again?") == "answer: Traced again?"

    assert_llm_span(only_llm_span(experiment), "Traced again?")


SAMPLED_CHILD = """
import json, mlflow, sys, uuid
from openai import OpenAI
from tracer import TracedClient
from llm_devserver import DevServer

mlflow.set_tracking_uri(sys.argv[1])
experiment = mlflow.set_experiment(f"sampling-{uuid.uuid4().hex}").experiment_id
question = [{"role": "user", "content": "What is the capital of France?"}]
replies = []
with DevServer() as server, OpenAI(
    base_url=server.base_url, api_key="k", http_client=TracedClient()
) as client:
    for i in range(10):
        chunks = client.chat.completions.create(
            model="gpt-4o-mini", messages=question, stream=i % 2 == 1
        )
        replies.append(
            "".join(c.choices[0].delta.content or "" for c in chunks)
            if i % 2
            else chunks.choices[0].message.content
        )
mlflow.flush_trace_async_logging(terminate=False)
traces = mlflow.search_traces(locations=[experiment], return_type="list")
print(json.dumps({"replies": replies, "traces": len(traces)}))
"""


@pytest.fixture
def store_copy(tracking_store: str, tmp_path: Path) -> str:
    """A copy of the session's store: already migrated (migrating a new one takes seconds)."""
    mlflow.flush_trace_async_logging(terminate=False)
    path = tmp_path / "copy.db"
    source = sqlite3.connect(tracking_store.removeprefix("sqlite:///"))
    with closing(source), closing(sqlite3.connect(path)) as target:
        source.backup(target)
    return f"sqlite:///{path}"


@pytest.mark.parametrize(("ratio", "expected"), [("0", 0), ("1", 10)])
def test_trace_sampling_ratio(store_copy: str, ratio: str, expected: int) -> None:
    env = {**os.environ, "MLFLOW_TRACE_SAMPLING_RATIO": ratio}
    completed = subprocess.run(
        [sys.executable, "-c", SAMPLED_CHILD, store_copy],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result == {"replies": [PARIS] * 10, "traces": expected}
