"""Export off the caller's process (tracer.export): traces reach the store through the export
process, completely; the switches and the fallback work. Each case runs in a fresh process
with MLflow's default asynchronous export, as applications run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROGRAM = """
import json, os, sys, mlflow
from openai import OpenAI
import tracer.export
from tracer import TracedClient
from tracer.devserver import DevServer

if os.environ.get("BREAK_SPAWN"):
    tracer.export.sys.executable = "/nonexistent/python"
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("export")
with DevServer() as server:
    client = OpenAI(base_url=server.base_url, api_key="k", http_client=TracedClient())

    @mlflow.trace(name="agent")
    def agent(i):
        chunks = client.chat.completions.create(
            model="gpt-4o-mini", stream=bool(i % 2),
            messages=[{"role": "user", "content": f"question {i}"}],
            extra_headers={"x-devserver-reply": f"answer {i}"},
        )
        if i % 2:
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return chunks.choices[0].message.content

    answers = [agent(i) for i in range(N)]
    # LLM calls that are traces of their own (no @mlflow.trace around them).
    for i in range(N, N + ROOTS):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", stream=bool(i % 2),
            messages=[{"role": "user", "content": f"question {i}"}],
            extra_headers={"x-devserver-reply": f"answer {i}"},
        )
        if i % 2:
            list(reply)
    from mlflow.tracing.provider import _get_span_processor
    exporter_object = _get_span_processor().span_exporter
    exporter = type(exporter_object).__name__
    mlflow.flush_trace_async_logging()
    process = getattr(exporter_object, "_process", None)
    policy = os.sched_getscheduler(process.pid) if process is not None else None
traces = mlflow.search_traces(return_type="list", max_results=1000)
print(json.dumps({
    "answers": answers,
    "exporter": exporter,
    "export_process_policy": policy,
    "traces": [
        {s.name: [s.parent_id is None, s.inputs, s.outputs] for s in t.data.spans}
        for t in traces
    ],
}))
"""
N = 12
ROOTS = 6


def run(tmp_path: Path, **env: str) -> tuple[dict, str]:
    code = f"N = {N}\nROOTS = {ROOTS}\n" + textwrap.dedent(PROGRAM)
    result = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{tmp_path / 'store.db'}"],
        env={
            **os.environ,
            "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "true",
            "TRACER_STRICT": "0",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def assert_complete(report: dict) -> None:
    assert report["answers"] == [f"answer {i}" for i in range(N)]
    assert len(report["traces"]) == N + ROOTS
    agents = [t for t in report["traces"] if "agent" in t]
    roots = [t["chat gpt-4o-mini"] for t in report["traces"] if "agent" not in t]
    assert sorted(question["messages"][0]["content"] for _, question, _ in roots) == sorted(
        f"question {i}" for i in range(N, N + ROOTS)
    )
    for is_root, question, outputs in roots:
        assert is_root and len(outputs["choices"]) == 1
        assert outputs["choices"][0]["message"]["content"] == question["messages"][0][
            "content"
        ].replace("question", "answer")
    questions = set()
    for trace in agents:
        (root_is_root, _, answer) = trace["agent"]
        (llm_is_root, inputs, outputs) = trace["chat gpt-4o-mini"]
        assert root_is_root and not llm_is_root
        question = inputs["messages"][0]["content"]
        questions.add(question)
        assert (
            outputs["choices"][0]["message"]["content"]
            == answer
            == question.replace("question", "answer")
        )
    assert len(questions) == N


def test_traces_are_written_by_the_export_process(tmp_path: Path) -> None:
    report, _ = run(tmp_path)
    assert report["exporter"] == "ProcessExporter"
    # The export process only takes CPU time nothing else wants (Linux).
    assert report["export_process_policy"] == os.SCHED_IDLE
    assert_complete(report)


def test_mlflow_exporter_when_asked(tmp_path: Path) -> None:
    report, _ = run(tmp_path, TRACER_EXPORT="mlflow")
    assert report["exporter"] == "MlflowV3SpanExporter"
    assert_complete(report)


def test_no_export_when_asked(tmp_path: Path) -> None:
    report, _ = run(tmp_path, TRACER_EXPORT="none")
    assert report["exporter"] == "DiscardingExporter"
    assert report["answers"] == [f"answer {i}" for i in range(N)]
    assert report["traces"] == []


def test_falls_back_to_exporting_in_process(tmp_path: Path) -> None:
    report, stderr = run(tmp_path, BREAK_SPAWN="1")
    assert_complete(report)
    assert stderr.count("could not start the export process") == 1, stderr[-2000:]


@pytest.mark.parametrize("setting", ["sideways", ""])
def test_bad_export_setting(tmp_path: Path, setting: str) -> None:
    report, stderr = run(tmp_path, TRACER_EXPORT=setting)
    assert report["exporter"] == "ProcessExporter"  # the default
    if setting:
        assert "TRACER_EXPORT" in stderr
