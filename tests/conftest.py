"""Shared fixtures: strict tracer, a real MLflow SQLite store, the local server.

The helpers the tests import live in modules of their own beside this file: ``readback``
(traces and spans read back from the store), ``processes`` (a real ``mlflow server``, process
probes), ``sdk`` (request fixtures) and ``rawserver`` (a scriptable HTTP server).
"""

from __future__ import annotations

import logging
import os
import sys

# Tracer-internal errors raise in this suite (fail-loud); set before any config is built.
os.environ["TRACER_STRICT"] = "1"
# Everything else is as users have it: MLflow's asynchronous export, so traces are written by
# the tracer's export process, and read_traces() flushes before it reads.

# The helper modules beside this file, for the tests in the directories below it.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from llm_devserver import DevServer

# The helpers were defined here before they had modules of their own: a test written then
# (`from conftest import read_spans`) still finds them.
from processes import (  # noqa: F401
    free_port,
    running,
    slow_export_start,
    start_mlflow_server,
    stop_mlflow_server,
)
from readback import (  # noqa: F401
    Calls,
    autolog,
    is_wire,
    llm_spans,
    only_llm_span,
    only_span,
    read_spans,
    read_traces,
    responses_text,
    stored,
)

import tracer


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


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real `mlflow server` on loopback with a SQLite store in a temporary directory."""
    port = free_port()
    process = start_mlflow_server(tmp_path, port)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        stop_mlflow_server(process)
