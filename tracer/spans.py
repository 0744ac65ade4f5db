"""The only module that talks to MLflow: start a span, end it once with everything known.

Spans are started with ``start_span_no_context`` under the parent that was active when the
request was sent, so a stream consumed after its creating function returned still lands in
the right trace, and the span never becomes the caller's "current" span.

A span with no parent (a trace of its own) is a :class:`PendingSpan` until the call ends: it
is described (name, inputs, attributes) and handed to MLflow then, with the start time taken
when the request was sent, so neither the description nor MLflow's span set-up delays the
request or its first streamed chunk. It is started in the
context the request was sent in (``mlflow.tracing.context`` tags, metadata and switch, and
every other context variable), so a stream read later is recorded as if it had been started
then. A span with a parent, or sent while an MLflow run is active, is started at once: it
joins its parent's trace while that trace is open, and its run while the run is active.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.entities import LiveSpan, SpanEvent, SpanStatus, SpanStatusCode
from mlflow.tracing import set_span_chat_tools
from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

from tracer import _mlflow_logs, export
from tracer.failsafe import warn_once

_mlflow_logs.install()

__all__ = [
    "SpanRecord",
    "active_parent",
    "finish",
    "listening",
    "pending",
    "ready",
    "settle_autolog",
    "start",
    "traceparent",
]

_LOCAL_STORE_AVAILABLE = all(
    importlib.util.find_spec(module) is not None for module in ("sqlalchemy", "sqlparse")
)


def ready() -> bool:
    """Whether MLflow has somewhere to record traces.

    With only the lightweight ``mlflow-tracing`` package and no tracking URI, MLflow would
    fail on every span; say once what to set instead, and leave calls untraced.
    """
    if (
        not _to_mlflow
        or _LOCAL_STORE_AVAILABLE
        or is_tracking_uri_set()
        or "DATABRICKS_RUNTIME_VERSION" in os.environ
    ):
        return True
    warn_once(
        ("no-tracking-uri",),
        "tracer: no MLflow tracking URI is set, and the lightweight mlflow-tracing package "
        "cannot store traces locally, so LLM calls are not traced. Set MLFLOW_TRACKING_URI "
        "(for example http://127.0.0.1:5000 for an `mlflow server`, or `databricks` with "
        "DATABRICKS_HOST and DATABRICKS_TOKEN), or call mlflow.set_tracking_uri(...). A tracking "
        "URI is needed even when spans go out over OTLP (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).",
    )
    return False


@dataclass
class SpanRecord:
    """A finished LLM span as the tracer recorded it, handed to in-memory listeners (the
    ``llm_spans`` pytest fixture)."""

    name: str
    span_type: str
    inputs: Any
    outputs: Any
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = "OK"
    error: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    trace_id: str | None = None
    span_id: str | None = None
    parent_id: str | None = None

    @property
    def api(self) -> str | None:
        """``chat.completions``, ``completions``, ``embeddings``, ``responses``, ..."""
        return self.attributes.get("tracer.api")

    @property
    def model(self) -> str | None:
        """The model the response names, else the request's."""
        return self.attributes.get("mlflow.llm.model")

    @property
    def usage(self) -> dict[str, int] | None:
        """The token usage (``input_tokens``, ``output_tokens``, ``total_tokens``, ...)."""
        return self.attributes.get("mlflow.chat.tokenUsage")

    def text(self) -> str:
        """Inputs and outputs as one JSON text, for looking up content."""
        return json.dumps([self.inputs, self.outputs], ensure_ascii=False, default=str)


class _LocalSpan:
    """Stands in for an MLflow span while spans are recorded in memory only."""

    def __init__(self, name: str, span_type: str, inputs: Any, attributes: dict[str, Any]):
        self.name, self.span_type, self.inputs = name, span_type, inputs
        self.attributes = dict(attributes)


@dataclass
class PendingSpan:
    """A root LLM span not handed to MLflow yet: :func:`finish` starts and ends it at once.

    It is created when the request is sent, with only the time and the context; what the
    span says (name, type, inputs, attributes) is worked out when the call ends, so nothing
    but this stands between the request and its first byte."""

    export_mode: str
    name: str = "llm"
    span_type: str = "LLM"
    inputs: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    start_time_ns: int = field(default_factory=time.time_ns)
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    local: bool = field(default_factory=lambda: not _to_mlflow)  # in-memory listeners only


_listeners: list[Callable[[SpanRecord], None]] = []
_to_mlflow = True


@contextlib.contextmanager
def listening(callback: Callable[[SpanRecord], None], *, mlflow: bool = True) -> Iterator[None]:
    """Hand every span the tracer finishes to ``callback`` while the block runs; with
    ``mlflow=False`` nothing goes to MLflow (no store or network needed)."""
    global _to_mlflow
    previous = _to_mlflow
    _listeners.append(callback)
    _to_mlflow = mlflow and previous
    try:
        yield
    finally:
        _listeners.remove(callback)
        _to_mlflow = previous


def _root_experiment() -> str | None:
    """The experiment of a new trace, where working it out would cost MLflow a look-up on the
    tracking server; ``None`` leaves it to MLflow.

    With ``MLFLOW_EXPERIMENT_ID`` set and no experiment, run or destination chosen in code,
    MLflow first asks the server whether that experiment exists: a round trip on the caller's
    thread for every trace, and about four minutes of retries when the server is down. The id
    is used as given instead; a wrong one is reported when the trace is written. The
    lightweight mlflow-tracing package cannot work out ``MLFLOW_EXPERIMENT_NAME`` /
    ``MLFLOW_EXPERIMENT_ID`` or nothing set at all without ``mlflow.set_experiment``; the name
    is set as the variable asks, and the default experiment is ``"0"``.
    """
    from mlflow.tracing.provider import _MLFLOW_TRACE_USER_DESTINATION
    from mlflow.tracking import fluent
    from mlflow.version import IS_TRACING_SDK_ONLY

    if fluent._active_experiment_id or _MLFLOW_TRACE_USER_DESTINATION.get() is not None:
        return None
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if name:
        if IS_TRACING_SDK_ONLY:
            mlflow.set_experiment(name)  # what the variable asks for; it works in this package
        return None
    if not IS_TRACING_SDK_ONLY and fluent._get_latest_active_run() is not None:
        return None
    return os.environ.get("MLFLOW_EXPERIMENT_ID") or ("0" if IS_TRACING_SDK_ONLY else None)


#: MLflow autolog flavors whose SDK calls the tracer records from the wire.
WIRE_FLAVORS = ("openai", "anthropic", "gemini", "groq", "mistral")
#: MLflow's autolog flavor of each SDK the tracer sees, by the SDK's ``User-Agent``.
_SDK_FLAVORS = (
    ("openai/python", "openai"),  # also AsyncOpenAI, AzureOpenAI, AsyncAzureOpenAI
    ("agents/python", "openai"),  # the OpenAI Agents SDK's own, on the openai SDK's calls
    ("anthropic/python", "anthropic"),
    ("groq/python", "groq"),
    ("google-genai-sdk", "gemini"),
    ("mistralai", "mistral"),  # speakeasy-sdk/python ... mistralai
)
_autolog_settled = False


def settle_autolog() -> None:
    """Keep MLflow's autolog for the SDKs the tracer records off, unless the user chose it.

    ``mlflow.genai.evaluate()`` switches on the autolog of every flavor the user has not
    configured, for the evaluation's duration; with the tracer in place each LLM call would be
    recorded twice, and the row's trace would be autolog's span while the tracer's became a
    trace of its own. A flavor the user has not configured is marked off with MLflow's own
    switch (``mlflow.openai.autolog(disable=True)``); one the user configured, on or off, is
    left as it is, so an explicit ``mlflow.openai.autolog()`` still wins.
    """
    global _autolog_settled
    if _autolog_settled:
        return
    _autolog_settled = True
    try:
        from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS, get_autolog_function
    except ImportError:  # the lightweight package has no autolog
        return
    for flavor in WIRE_FLAVORS:
        if flavor in AUTOLOGGING_INTEGRATIONS:
            continue
        with contextlib.suppress(Exception):
            autolog = get_autolog_function(flavor)
            if autolog is not None:
                autolog(disable=True, silent=True)


def autolog_records(user_agent: str) -> bool:
    """Whether MLflow's own autolog for the SDK that sent a request (by its ``User-Agent``) is
    on, and so records the call and its token usage on a span of its own.

    The user switched it on (the tracer keeps the ones nobody configured off, see
    :func:`settle_autolog`): for example ``mlflow.openai.autolog()`` for the OpenAI Agents
    SDK's agent spans. Its span and the tracer's are then two records of one call, and they
    are not always parent and child (autolog's asynchronous Responses span is not active while
    the request is sent), so MLflow's trace totals would count the call twice.
    """
    autologging_is_disabled = _autolog_switch()
    if autologging_is_disabled is None:  # the lightweight package has no autolog
        return False
    agent = user_agent.lower()
    for marker, flavor in _SDK_FLAVORS:
        if marker in agent and not autologging_is_disabled(flavor):
            return True
    # LiteLLM sends through the openai SDK, and its MLflow callback records the call (after it
    # returned, so never as this span's parent): the request is LiteLLM's if it is sent from
    # within LiteLLM's code.
    return (
        "litellm" in sys.modules
        and not autologging_is_disabled("litellm")
        and _called_from("litellm")
    )


@functools.cache
def _autolog_switch() -> Callable[[str], bool] | None:
    """MLflow's ``autologging_is_disabled``, looked up once (``None`` without autolog)."""
    try:
        from mlflow.utils.autologging_utils import autologging_is_disabled
    except ImportError:
        return None
    return autologging_is_disabled


def _called_from(package: str, depth: int = 200) -> bool:
    """Whether code of ``package`` is on the current call stack (for a coroutine, the chain of
    coroutines awaiting it)."""
    frame: Any = sys._getframe(1)
    prefix = package + "."
    while frame is not None and depth:
        name = frame.f_globals.get("__name__", "")
        if name == package or name.startswith(prefix):
            return True
        frame, depth = frame.f_back, depth - 1
    return False


def active_parent() -> LiveSpan | None:
    """The caller's active MLflow span (``@mlflow.trace``, ``mlflow.start_span``), if any."""
    return mlflow.get_current_active_span()


def pending(
    parent: LiveSpan | None, export_mode: str = "process", *, defer: bool = True
) -> PendingSpan | None:
    """A span to describe and start when the call ends, or ``None`` if it must start now
    (:func:`start`): it has a parent, an MLflow run is active, or ``defer`` is false (its
    ids are needed for the request)."""
    if not _to_mlflow or (parent is None and defer and not _run_active()):
        return PendingSpan(export_mode)
    return None


def start(
    name: str,
    span_type: str,
    parent: LiveSpan | None,
    inputs: Any,
    attributes: dict[str, Any],
    export_mode: str = "process",
) -> LiveSpan:
    """Start an LLM span now (a new trace when ``parent`` is ``None``); only for a span that
    :func:`pending` did not defer (in-memory spans always are)."""
    return _start(name, span_type, parent, inputs, attributes, export_mode)


def _run_active() -> bool:
    """Whether an MLflow run is active in this thread (the full ``mlflow`` package only)."""
    active_run = getattr(mlflow, "active_run", None)
    return active_run is not None and active_run() is not None


def _start(
    name: str,
    span_type: str,
    parent: LiveSpan | None,
    inputs: Any,
    attributes: dict[str, Any],
    export_mode: str,
    start_time_ns: int | None = None,
) -> LiveSpan:
    span = mlflow.start_span_no_context(
        name=name,
        span_type=span_type,
        parent_span=parent,
        inputs=inputs,
        attributes=attributes,
        start_time_ns=start_time_ns,
        experiment_id=_root_experiment() if parent is None else None,
    )
    export.install(export_mode)
    return span


def finish(
    span: LiveSpan | PendingSpan,
    *,
    outputs: Any,
    attributes: dict[str, Any],
    tools: list[Any] | None = None,
    exception: BaseException | None = None,
    error: tuple[str, str] | None = None,
    end_time_ns: int | None = None,
    events: list[tuple[str, int, dict[str, Any]]] | None = None,
) -> None:
    """Set outputs and attributes and end ``span`` (at ``end_time_ns``, else now), after
    adding ``events`` (name, time in nanoseconds since the epoch, attributes).

    ``exception`` (a transport error) or ``error`` (``(type, message)`` of an API error) make
    the status ``ERROR`` with an ``exception`` event carrying the message.
    """
    if isinstance(span, PendingSpan) and span.local:
        span = _LocalSpan(span.name, span.span_type, span.inputs, span.attributes)  # type: ignore[assignment]
    if isinstance(span, PendingSpan):
        span = span.context.run(
            _start,
            span.name,
            span.span_type,
            None,
            span.inputs,
            span.attributes,
            span.export_mode,
            span.start_time_ns,
        )
    if _listeners:
        _tell_listeners(span, outputs, attributes, tools, exception, error, events)
    if isinstance(span, _LocalSpan):
        return
    for name, timestamp, event_attributes in events or ():
        span.add_event(SpanEvent(name=name, timestamp=timestamp, attributes=event_attributes))  # type: ignore[abstract]
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
            SpanEvent(  # type: ignore[abstract]  # MLflow marks from_proto abstract
                name="exception",
                attributes={"exception.type": kind, "exception.message": message},
            )
        )
        status = SpanStatus(SpanStatusCode.ERROR, message)
    span.end(outputs=outputs, attributes=attributes, status=status, end_time_ns=end_time_ns)


def traceparent(span: LiveSpan | PendingSpan) -> dict[str, str]:
    """The W3C ``traceparent`` header naming ``span`` as the parent of the server's work
    (``span`` must have been started with ``defer=False``)."""
    if isinstance(span, (_LocalSpan, PendingSpan)):
        return {}
    from mlflow.tracing.distributed import _get_tracing_headers_from_span

    return _get_tracing_headers_from_span(span)


def _tell_listeners(
    span: Any,
    outputs: Any,
    attributes: dict[str, Any],
    tools: list[Any] | None,
    exception: BaseException | None,
    error: tuple[str, str] | None,
    events: list[tuple[str, int, dict[str, Any]]] | None = None,
) -> None:
    message = f"{type(exception).__name__}: {exception}" if exception is not None else None
    if error is not None:
        message = error[1]
    record = SpanRecord(
        name=span.name,
        span_type=span.span_type,
        inputs=span.inputs,
        outputs=outputs,
        attributes={
            **span.attributes,
            **attributes,
            **({"mlflow.chat.tools": tools} if tools else {}),
        },
        status="OK" if message is None else "ERROR",
        error=message,
        events=[
            {"name": name, "timestamp_ns": timestamp, "attributes": attributes}
            for name, timestamp, attributes in events or ()
        ],
        trace_id=getattr(span, "trace_id", None),
        span_id=getattr(span, "span_id", None),
        parent_id=getattr(span, "parent_id", None),
    )
    for listener in list(_listeners):
        listener(record)
