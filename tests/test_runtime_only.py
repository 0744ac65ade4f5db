"""The production install: only the runtime dependencies (httpx, mlflow-tracing, pydantic) plus
the openai SDK, in a virtual environment of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from tracer.devserver import DevServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def runtime_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding the project (with its runtime dependencies only)
    and openai, installed from the package index (pip's cache makes it quick)."""
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(ROOT), "openai>=1.109,<4"],
        check=True,
        capture_output=True,
    )
    return python


def run(
    python: Path, code: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(python.parent.parent), **(env or {})},
        cwd=python.parent,  # not the project root: import the installed package
    )


def test_only_runtime_dependencies_are_installed(runtime_python: Path) -> None:
    result = run(
        runtime_python,
        """
        import importlib.util, tracer, tracer.devserver
        print(tracer.__file__)
        for name in ("sqlalchemy", "flask", "pytest", "mlflow.server"):
            try:
                found = importlib.util.find_spec(name) is not None
            except ModuleNotFoundError:
                found = False
            print(name, found)
        """,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "site-packages" in lines[0]
    assert lines[1:] == ["sqlalchemy False", "flask False", "pytest False", "mlflow.server False"]


def test_no_tracking_uri_says_what_to_set_once(runtime_python: Path) -> None:
    result = run(
        runtime_python,
        """
        from openai import OpenAI
        from tracer import TracedClient
        from tracer.devserver import DevServer

        with DevServer() as server:
            client = OpenAI(base_url=server.base_url, api_key="k", http_client=TracedClient())
            for _ in range(5):
                reply = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
                assert reply.choices[0].message.content
        print("calls ok")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "calls ok"
    assert result.stderr.count("no MLflow tracking URI is set") == 1, result.stderr
    assert "MLFLOW_TRACKING_URI" in result.stderr
    assert "Failed to start span" not in result.stderr  # MLflow's own per-call failure


def test_seed_examples_export_to_a_real_mlflow_server(
    runtime_python: Path, mlflow_server: tuple[object, str], server: DevServer
) -> None:
    """The production install the seed documents: the lightweight package sends the traces of
    the three seed examples to an `mlflow server`; they are read back through its API."""
    _, url = mlflow_server
    env = {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_EXPERIMENT_NAME": "seed-examples",
        "OPENAI_BASE_URL": server.base_url,
        "PYTHONPATH": str(ROOT / "examples"),
    }
    for example in ("basic", "streaming", "function_calling"):
        result = run(runtime_python, f"import {example}; {example}.main()", env)
        assert result.returncode == 0, result.stderr[-3000:]
    experiment_id = httpx.get(
        f"{url}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": "seed-examples"},
    ).json()["experiment"]["experiment_id"]
    spans = read_server_spans(url, experiment_id)
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_trace.setdefault(span["trace_id"], []).append(span)
    assert len(by_trace) == 3
    llm = [s for s in spans if s["span_type"] == "CHAT_MODEL"]
    assert len(llm) == 4  # basic, streaming, and the agent's two calls
    for span in llm:
        assert span["name"] == "chat databricks-llama-4-maverick"
        assert span["attributes"]["mlflow.message.format"] == "openai"
        assert span["attributes"]["mlflow.llm.model"] == "databricks-llama-4-maverick"
        assert span["outputs"]["object"] == "chat.completion"
    basic = next(s for s in llm if not s["inputs"].get("stream") and "tools" not in s["inputs"])
    assert basic["attributes"]["temperature"] == 0.1
    assert basic["attributes"]["max_tokens"] == 100
    assert basic["attributes"]["mlflow.chat.tokenUsage"]["input_tokens"] > 0
    streamed = next(s for s in llm if s["inputs"].get("stream"))
    assert streamed["attributes"]["stream.completed"] is True
    assert streamed["outputs"]["choices"][0]["message"]["content"] == (
        "The capital of France is Paris."
    )
    agent = next(s for s in spans if s["span_type"] == "AGENT")
    family = by_trace[agent["trace_id"]]
    assert sorted(s["span_type"] for s in family) == [
        "AGENT",
        "CHAT_MODEL",
        "CHAT_MODEL",
        "TOOL",
        "TOOL",
    ]
    assert all(s["parent_id"] == agent["span_id"] for s in family if s is not agent)
    calls = next(
        s["outputs"]["choices"][0]["message"]["tool_calls"]
        for s in family
        if s["span_type"] == "CHAT_MODEL"
        and s["outputs"]["choices"][0]["message"].get("tool_calls")
    )
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris"},
        {"city": "London"},
    ]


def read_server_spans(url: str, experiment_id: str) -> list[dict[str, Any]]:
    """Every span the server stored for the experiment, read back through its REST API (in a
    fresh process: MLflow's artifact proxy wants the tracking URI from the environment)."""
    code = textwrap.dedent(
        f"""
        import json, mlflow
        traces = mlflow.search_traces(
            locations=[{experiment_id!r}], max_results=100, return_type="list"
        )
        print(json.dumps([
            {{"trace_id": s.trace_id, "span_id": s.span_id, "parent_id": s.parent_id,
              "name": s.name, "span_type": s.span_type, "inputs": s.inputs,
              "outputs": s.outputs, "attributes": s.attributes}}
            for t in traces for s in t.data.spans
        ], default=str))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "MLFLOW_TRACKING_URI": url},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
