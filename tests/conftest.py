"""Shared fixtures: strict tracer, a real MLflow SQLite store, the local server, span readers."""

from __future__ import annotations

import contextlib
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
from typing import Any

import httpx
import mlflow
import pytest
from mlflow.entities import Span, Trace
from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS

import tracer
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


#: The span types of LLM calls.
LLM_TYPES = ("CHAT_MODEL", "LLM", "EMBEDDING")
#: The paths of the LLM calls the tests make (``Calls`` counts the requests to them).
LLM_PATHS = ("/chat/completions", "/responses", "/v1/messages", "/v2/chat", "/api/chat")


def llm_spans(experiment_id: str) -> list[Span]:
    """Every LLM span of the experiment (the tracer's and any framework's), in start order."""
    return [s for s in read_spans(experiment_id) if s.span_type in LLM_TYPES]


def is_wire(span: Span) -> bool:
    """Whether the tracer recorded the span (a framework's own spans have no ``tracer.api``)."""
    return span.attributes.get("tracer.api") is not None


class Calls:
    """The LLM requests the local server receives from the moment this is made."""

    def __init__(self, server: DevServer) -> None:
        self.server = server
        self.start = len(server.requests)

    def bodies(self) -> list[dict[str, Any]]:
        return [
            request.json()
            for request in self.server.requests[self.start :]
            if request.method == "POST" and request.path.endswith(LLM_PATHS)
        ]


@pytest.fixture
def calls(server: DevServer) -> Calls:
    """The LLM requests the local server receives during the test."""
    return Calls(server)


@pytest.fixture
def instrumented() -> Iterator[None]:
    """``tracer.instrument()`` for the test."""
    tracer.instrument()
    try:
        yield
    finally:
        tracer.uninstrument()


@contextlib.contextmanager
def autolog(flavor: str, **options: Any) -> Iterator[None]:
    """``mlflow.<flavor>.autolog(**options)`` for the block; then off, the set-up restored.

    OpenAI's stays configured off, as the tracer leaves it (``tracer.spans.settle_autolog``):
    had the tracer's first span been started inside the block, it would not mark it off.
    """
    integration = getattr(mlflow, flavor)
    before = AUTOLOGGING_INTEGRATIONS.get(flavor)
    integration.autolog(**options)
    try:
        yield
    finally:
        integration.autolog(disable=True)
        if before is not None:
            AUTOLOGGING_INTEGRATIONS[flavor] = before
        elif flavor != "openai":
            AUTOLOGGING_INTEGRATIONS.pop(flavor, None)


def responses_text(span: Span) -> str:
    """The text of a Responses API span's output messages."""
    return "".join(
        part["text"]
        for item in span.outputs["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


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


def slow_export_start(directory: Path, seconds: float, python_path: str | None = None) -> str:
    """A ``PYTHONPATH`` (``python_path`` after it) whose ``sitecustomize`` holds the export
    process, and only it, in its start-up for ``seconds``."""
    slow = directory / "slow-start"
    slow.mkdir(exist_ok=True)
    (slow / "sitecustomize.py").write_text(
        "import sys, time\n"
        "if any(arg.endswith('_sidecar.py') for arg in sys.argv):\n"
        f"    time.sleep({seconds})\n"
    )
    return os.pathsep.join(filter(None, [str(slow), python_path]))


def running(pid: int) -> bool:
    """Whether process ``pid`` runs (an ended process whose parent is gone may wait as a
    zombie for a reaper that a container does not have)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


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
