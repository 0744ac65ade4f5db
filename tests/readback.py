"""Reading back what the tracer recorded: traces and spans from the store, and helpers on them.

Imported by the tests as ``from readback import ...`` (``tests/`` is on ``sys.path``: its
``conftest.py`` puts it there).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import mlflow
from llm_devserver import DevServer
from mlflow.entities import Span, Trace
from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS


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
