"""Shared fixtures: strict tracer, a real MLflow SQLite store, the local server, span readers."""

from __future__ import annotations

import logging
import os

# Tracer-internal errors raise in this suite (fail-loud); set before any config is built.
os.environ["TRACER_STRICT"] = "1"
# Everything else is as users have it: MLflow's asynchronous export, so traces are written by
# the tracer's export process, and read_traces() flushes before it reads.

import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow.entities import Span, Trace

from tracer.devserver import DevServer


@pytest.fixture(scope="session", autouse=True)
def tracking_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real SQLite MLflow store for the session."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    path: Path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    uri = f"sqlite:///{path}"
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.flush_trace_async_logging(terminate=False)


@pytest.fixture(autouse=True)
def experiment(tracking_store: str) -> str:
    """A fresh experiment per test, so each test reads back only its own traces."""
    return mlflow.set_experiment(f"test-{uuid.uuid4().hex}").experiment_id


@pytest.fixture(scope="session")
def server() -> Iterator[DevServer]:
    """The project's local OpenAI-compatible server on 127.0.0.1."""
    with DevServer() as srv:
        yield srv


def read_traces(experiment_id: str) -> list[Trace]:
    """Every trace of the experiment, oldest first, as read back from the store."""
    mlflow.flush_trace_async_logging(terminate=False)
    traces = mlflow.search_traces(
        locations=[experiment_id], return_type="list", order_by=["timestamp_ms ASC"]
    )
    return list(traces)


def read_spans(experiment_id: str, span_type: str | None = None) -> list[Span]:
    """Every span of the experiment (optionally of one type), in start order."""
    spans = [span for trace in read_traces(experiment_id) for span in trace.data.spans]
    spans.sort(key=lambda s: s.start_time_ns)
    if span_type is not None:
        spans = [s for s in spans if s.span_type == span_type]
    return spans


def only_span(experiment_id: str, span_type: str = "CHAT_MODEL") -> Span:
    """The single span of ``span_type`` the test produced (fails if there is not exactly one)."""
    spans = read_spans(experiment_id, span_type)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def only_llm_span(experiment_id: str) -> Span:
    """The single LLM (``CHAT_MODEL``) span the test produced."""
    return only_span(experiment_id)


def stored(experiment_id: str) -> str:
    """Every trace of the experiment, as MLflow exports it (what a leak scan reads)."""
    return "\n".join(trace.to_json() for trace in read_traces(experiment_id))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mlflow_server(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """A real `mlflow server` on 127.0.0.1:``port``, its SQLite store and artifacts in
    ``directory`` (start it again on the same port and directory to bring it back)."""
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{directory / 'server.db'}",
            "--artifacts-destination",
            str(directory / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    stop_mlflow_server(process)
    pytest.fail("mlflow server did not start")


def stop_mlflow_server(process: subprocess.Popen[bytes]) -> None:
    """Kill the server and its workers (also when paused)."""
    try:
        os.killpg(process.pid, signal.SIGCONT)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real `mlflow server` on loopback with a SQLite store in a temporary directory."""
    port = free_port()
    process = start_mlflow_server(tmp_path, port)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        stop_mlflow_server(process)
