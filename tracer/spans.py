"""The only module that talks to MLflow: start a span, end it once with everything known.

Spans are started with ``start_span_no_context`` under the parent that was active when the
request was sent, so a stream consumed after its creating function returned still lands in
the right trace, and the span never becomes the caller's "current" span.
"""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.entities import LiveSpan, SpanEvent, SpanStatus, SpanStatusCode
from mlflow.tracing import set_span_chat_tools

__all__ = ["active_parent", "finish", "start"]


def active_parent() -> LiveSpan | None:
    """The caller's active MLflow span (``@mlflow.trace``, ``mlflow.start_span``), if any."""
    return mlflow.get_current_active_span()


def start(
    name: str,
    span_type: str,
    parent: LiveSpan | None,
    inputs: Any,
    attributes: dict[str, Any],
) -> LiveSpan:
    """Start an LLM span (a new trace when ``parent`` is ``None``)."""
    return mlflow.start_span_no_context(
        name=name,
        span_type=span_type,
        parent_span=parent,
        inputs=inputs,
        attributes=attributes,
    )


def finish(
    span: LiveSpan,
    *,
    outputs: Any,
    attributes: dict[str, Any],
    tools: list[Any] | None = None,
    exception: BaseException | None = None,
    error: tuple[str, str] | None = None,
) -> None:
    """Set outputs and attributes and end ``span``.

    ``exception`` (a transport error) or ``error`` (``(type, message)`` of an API error) make
    the status ``ERROR`` with an ``exception`` event carrying the message.
    """
    if tools:
        try:
            set_span_chat_tools(span, tools)
        except Exception:
            # Tool kinds MLflow's schema does not know (built-in tools, custom tools) are
            # still worth recording as sent.
            attributes["mlflow.chat.tools"] = tools
    status: SpanStatus | str = "OK"
    if exception is not None:
        span.add_event(SpanEvent.from_exception(exception))  # type: ignore[arg-type]
        status = SpanStatus(SpanStatusCode.ERROR, f"{type(exception).__name__}: {exception}")
    elif error is not None:
        kind, message = error
        span.add_event(
            SpanEvent(
                name="exception",
                attributes={"exception.type": kind, "exception.message": message},
            )
        )
        status = SpanStatus(SpanStatusCode.ERROR, message)
    span.end(outputs=outputs, attributes=attributes, status=status)
