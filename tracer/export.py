"""Where finished traces are written: MLflow decides everything, the export process only writes.

MLflow's exporter (``MlflowV3SpanExporter``) does all that a finished trace needs before it is
written: the evaluation harness's bookkeeping and its synchronous writes, notebook display, the
serving buffer, waiting for spans of background threads, prompts and attachments. Then, where
MLflow exports asynchronously (its default), it puts the write itself on its queue as one of
two tasks: ``_log_spans(experiment_id, spans, workspace[, remote_trace_ids])`` or
``_log_trace(trace, prompts, workspace)``. The tracer replaces only that queue, with a
:class:`TaskRouter`:

- a write it is sure of (one of those two tasks, of MLflow's own exporter class, to a SQL store
  or an MLflow tracking server, with no prompts to link and no attachments) goes to the
  :class:`ExportProcess`, one child process per application process that writes it with
  MLflow's store client, so the SQL statements and HTTP requests cost the application nothing;
- every other task goes to MLflow's own queue, unchanged.

The export process (:mod:`tracer._export_process`) is started in the background when the first
router is put in place (the first traced call), serves every tracking URI, workspace and
experiment (each write names its own, as MLflow would have written it at that moment), sees
the application's environment as it is when each batch is sent, exits when the application
exits or after ``IDLE_EXIT_SECONDS`` without work, and is started afresh in a forked child.
``mlflow.flush_trace_async_logging()`` waits for it and for MLflow's queue, for at most
``FLUSH_TIMEOUT`` (60 s) together, ``EXIT_TIMEOUT`` (30 s) at exit; :func:`flush` waits at most
about its ``timeout`` in all, and also says whether every trace was written. If it cannot be
started, or stops three times in a row, writes go back to MLflow's queue, with one warning.

``TRACER_EXPORT`` chooses, once per process: ``process`` (the default, above), ``mlflow``
(MLflow's queue for everything) or ``none`` (traces that consist of an LLM span the tracer
recorded are not written at all; every other trace is).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from tracer._export_process import ExportProcess, Write, export_process, started_export_process
from tracer.config import ExportMode, _from_env
from tracer.failsafe import warn_once
from tracer.sampling import left_out

__all__ = [
    "ExportProcess",
    "TaskRouter",
    "before_flush",
    "flush",
    "install",
    "process_mode",
    "stats",
]

_SQL_SCHEMES = {"sqlite", "postgresql", "postgres", "mysql", "mssql"}

_mode: str | None = None
_install_lock = threading.Lock()


def process_mode() -> str:
    """The export mode of this process: ``TRACER_EXPORT``, read once."""
    global _mode
    if _mode is None:
        _mode = _from_env("EXPORT", "process", ExportMode)
    return _mode


def install(requested: str | None = None) -> None:
    """Put a :class:`TaskRouter` in front of the current MLflow exporter's queue, if it is not
    there yet. ``requested`` is a client's ``TracerConfig.export``: it cannot change the
    process's mode, and a different value is warned about once."""
    mode = process_mode()
    if requested is not None and requested != mode:
        warn_once(
            ("export-mode", requested),
            "tracer: TracerConfig(export=%r) is ignored: the export mode belongs to the process "
            "(TRACER_EXPORT, here %r), since MLflow writes every trace of a process the same way",
            requested,
            mode,
        )
    if mode == "mlflow":
        return
    from mlflow.tracing.export.mlflow_v3 import MlflowV3SpanExporter
    from mlflow.tracing.provider import _get_span_processor

    exporter = getattr(_get_span_processor(), "span_exporter", None)
    queue = getattr(exporter, "_async_queue", None)
    if queue is None or isinstance(queue, TaskRouter):
        return
    if type(exporter) is not MlflowV3SpanExporter:
        return  # Databricks Unity Catalog, OTLP or any other destination: MLflow's alone
    with _install_lock:
        if exporter._async_queue is not queue:
            return
        router = TaskRouter(exporter, queue, mode)
        exporter._async_queue = router  # type: ignore[assignment]
    if router.sure and mode == "process":
        export_process().start(router.uri)


def _sure_of(uri: str) -> bool:
    """Stores whose write the export process performs exactly as MLflow's exporter would."""
    scheme = uri.partition(":")[0].split("+")[0].lower()
    return scheme in _SQL_SCHEMES or scheme in ("http", "https")


def _recorded_by_tracer(span: Any) -> bool:
    """A trace's root span that the tracer recorded (such a trace has no other span)."""
    return span.parent_id is None and span.get_attribute("tracer.api") is not None


class TaskRouter:
    """Stands in for MLflow's asynchronous queue on one exporter (``put`` and ``flush``, all
    MLflow calls of it): writes it is sure of go to the export process, the rest to MLflow's
    queue."""

    def __init__(self, exporter: Any, mlflow_queue: Any, mode: str) -> None:
        from mlflow.tracing.export.mlflow_v3 import MlflowV3SpanExporter

        self._exporter = exporter
        self._mlflow_queue = mlflow_queue
        self._mode = mode
        self.uri = exporter._client.tracking_uri
        self.sure = _sure_of(self.uri)
        self._log_spans = MlflowV3SpanExporter._log_spans
        self._log_trace = MlflowV3SpanExporter._log_trace

    def put(self, task: Any) -> None:
        """Take ``task`` if it is a write this router is sure of; otherwise hand it on."""
        try:
            write = self._take(task)
        except Exception as exc:
            warn_once(
                ("export-take", type(exc).__name__),
                "tracer: MLflow's export task could not be read (%s: %s); MLflow writes it",
                type(exc).__name__,
                exc,
            )
            write = None
        if write is None:
            self._mlflow_queue.put(task)
        elif isinstance(write, Write):
            export_process().submit(write)

    def _take(self, task: Any) -> Write | str | None:
        """The write ``task`` is, if this router is sure of it; :data:`_DISCARD` for a write
        ``TRACER_EXPORT=none`` drops; ``None`` for a task MLflow's queue keeps."""
        handler = getattr(task, "handler", None)
        if not self.sure or getattr(handler, "__self__", None) is not self._exporter:
            return None
        function = getattr(handler, "__func__", None)
        args = tuple(task.args)
        workspace = args[2] if len(args) > 2 else None
        if function is self._log_spans and len(args) in (2, 3, 4):
            spans = list(args[1])
            # A fourth argument (recent MLflow, 3.18 among them) names the remote (distributed)
            # traces among them, whose spans' attachments MLflow uploads after the spans: such
            # a write stays MLflow's. Without this, every span write of those versions went to
            # MLflow's queue, with its HTTP retries (minutes against a server that is down).
            remote = args[3] if len(args) > 3 else None
            if remote and any(span.trace_id in remote and span._attachments for span in spans):
                return None
            if self._mode == "none":
                spans = [span for span in spans if not _recorded_by_tracer(span)]
                if not spans:
                    return _DISCARD
            return Write("spans", self.uri, workspace, task, self._mlflow_queue, args[0], spans)
        if function is self._log_trace and len(args) in (2, 3):
            trace, prompts = args[0], args[1]
            if prompts or any(span._attachments for span in trace.data.spans):
                return None  # more to write than spans and info: MLflow's exporter does it
            if self._mode == "none" and any(map(_recorded_by_tracer, trace.data.spans)):
                return _DISCARD
            return Write("trace", self.uri, workspace, task, self._mlflow_queue, trace=trace)
        return None

    def flush(self, terminate: bool = False) -> None:
        """What ``mlflow.flush_trace_async_logging()`` calls: spans still being ended elsewhere
        are gathered (:func:`before_flush`), then both queues drain, for at most
        :data:`~tracer._export_process.FLUSH_TIMEOUT` (60 s) in all, or
        :data:`~tracer._export_process.EXIT_TIMEOUT` (30 s) at exit, or what is left of the
        time-out of the :func:`flush` that called it. Writes not done by then go on in the
        background: the export process's wait for the store (see :meth:`ExportProcess.flush`)
        and MLflow's own writes, with MLflow's HTTP retries (minutes against a server that is
        down). With ``terminate``, MLflow's queue is shut down only once it is empty."""
        process = export_process()
        scope = _scope.get()
        deadline = scope.deadline if scope else time.monotonic() + process.flush_timeout()
        _settle(deadline)
        process.before_exit_flush()
        process.flush(_left(deadline))
        if not _drain(self._mlflow_queue, terminate, deadline) and scope is not None:
            scope.drained = False

    def is_active(self) -> bool:
        """Always ready (MLflow's queue asks this of itself)."""
        return True


_DISCARD = "discard"
_before_flush: list[Callable[[float], bool]] = []


def before_flush(callback: Callable[[float], bool]) -> None:
    """Call ``callback(timeout)`` at the start of every flush, which waits for it at most
    ``timeout`` seconds; it returns whether it ended spans since its previous call (the
    reaper's, whose spans of abandoned streams end on a thread of its own). MLflow gathers
    finished spans before it hands them to the router, so they are gathered again then."""
    _before_flush.append(callback)


def _settle(deadline: float) -> None:
    ended = False
    for callback in _before_flush:
        try:
            ended = callback(_left(deadline)) or ended
        except Exception as exc:
            warn_once(("before-flush", type(exc).__name__), "tracer: %s before a flush", exc)
    if ended:
        with contextlib.suppress(Exception):
            from mlflow.tracing.provider import _get_span_processor

            _get_span_processor().force_flush()


@dataclass(eq=False)
class _Scope:
    """The flush under way on this thread: when it ends, and whether MLflow's queue emptied."""

    deadline: float
    drained: bool = True


_scope: ContextVar[_Scope | None] = ContextVar("tracer_flush", default=None)


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _drain(mlflow_queue: Any, terminate: bool, deadline: float) -> bool:
    """Wait until MLflow's queue has done every task it was given, at most until
    ``deadline``; ``True`` if it has. Its flush is called only then (it would wait for ever,
    and while it waits MLflow runs new tasks on the thread that hands them over), or on a
    thread of its own, waited for until ``deadline``, where its queue is not as expected."""
    tasks: Any = getattr(mlflow_queue, "_queue", None)
    done = getattr(tasks, "all_tasks_done", None)
    if done is None or not isinstance(getattr(tasks, "unfinished_tasks", None), int):
        flusher = threading.Thread(
            target=mlflow_queue.flush,
            kwargs={"terminate": terminate},
            name="tracer-mlflow-flush",
            daemon=True,
        )
        flusher.start()
        flusher.join(_left(deadline))
        return not flusher.is_alive()
    with done:
        while tasks.unfinished_tasks:
            if _left(deadline) <= 0:
                return False
            done.wait(_left(deadline))
    if terminate:
        mlflow_queue.flush(terminate=True)  # empty: it only stops its threads
    return True


def flush(timeout: float = 60.0) -> bool:
    """Write every finished trace now: MLflow's queues and the export process, waiting at most
    about ``timeout`` seconds in all, whatever the store does. Returns ``True`` if every trace
    handed to the export process since the previous call has been written and MLflow's own
    queue has done its writes; otherwise ``False``, and how many were not written is logged
    (once per loss). Writes not done in time go on in the background."""
    import mlflow

    scope = _Scope(time.monotonic() + timeout)
    _settle(scope.deadline)  # also where no router is in place (TRACER_EXPORT=mlflow)
    token = _scope.set(scope)
    try:
        mlflow.flush_trace_async_logging()  # flushes the export process too, where it is in use
    finally:
        _scope.reset(token)
    if not scope.drained:
        warn_once(
            ("mlflow-queue-timeout",),
            "tracer: MLflow's own trace queue has not caught up yet (the writes the tracer "
            "leaves to MLflow, with its HTTP retries)",
        )
    process = started_export_process()
    if process is None:
        return scope.drained
    return process.flush(_left(scope.deadline)) and process.take_losses() == 0 and scope.drained


def stats() -> dict[str, int]:
    """What became of this process's finished traces so far: ``sampled_out``, the root LLM
    spans ``TRACER_SAMPLE`` left out; and, once the export process has started, its counters:
    ``taken`` (traces handed to it), ``written``, ``failed`` (refused or unreachable in the
    end), ``dropped`` (over the backlog's bound) and ``in_flight``."""
    found = {"sampled_out": left_out()}
    process = started_export_process()
    if process is not None:
        counters = process.stats()
        for key in ("taken", "written", "failed", "dropped", "in_flight"):
            found[key] = counters[key]
    return found
