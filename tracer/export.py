"""Export off the caller's process: MLflow traces are written to the store by a child process.

Writing one trace to MLflow's store costs tens of milliseconds of CPU (dozens of SQL statements,
or several HTTP requests to a tracking server). MLflow's asynchronous export moves that off the
caller's thread but not off its process, so the application still pays it, and its background
threads hold the GIL while the application streams. Here the finished trace is serialised once
and handed through a pipe to a child process (:mod:`tracer._sidecar`) that runs MLflow's own
exporter. ``mlflow.flush_trace_async_logging()`` waits for it as it waits for MLflow's queue.

This replaces the exporter of MLflow's span processor (for every trace of the process, since a
trace's spans are exported together) only where MLflow itself exports asynchronously to an
MLflow tracking store; with ``MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false``, Databricks Unity
Catalog or OTLP destinations, MLflow's exporter is left as it is. ``TRACER_EXPORT=mlflow``
keeps MLflow's exporter everywhere; ``TRACER_EXPORT=none`` records spans but exports nothing
(to measure instrumentation alone). If the child process cannot be started or dies, export
falls back to MLflow's own exporter, with one warning.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace.export import SpanExportResult

from tracer._sidecar import lowest_priority
from tracer.failsafe import warn_once

__all__ = ["install"]

_install_lock = threading.Lock()
#: Traces held in memory while the export process catches up (MLflow's own queue holds 1,000).
MAX_PENDING = 1000
#: How long a process waits at exit for its traces to be written.
EXIT_TIMEOUT = 30.0
#: Finished traces gather this long (or until there are :data:`GATHER_MAX`, or a flush is
#: asked for) before they are serialised and handed over together: fewer wake-ups of the
#: export threads while the application works, and bigger batches for the store. (MLflow's
#: own asynchronous export waits up to 5 seconds for a batch of 5 spans.)
GATHER_SECONDS = 1.0
GATHER_MAX = 256


def _processor() -> Any:
    from mlflow.tracing.provider import _get_span_processor

    return _get_span_processor()


def install(mode: str) -> None:
    """Put the configured exporter in MLflow's span processor, if it is not there yet."""
    if mode == "mlflow":
        return
    processor = _processor()
    exporter = getattr(processor, "span_exporter", None)
    if exporter is None or isinstance(exporter, (ProcessExporter, DiscardingExporter)):
        return
    from mlflow.tracing.export.mlflow_v3 import MlflowV3SpanExporter

    if type(exporter) is not MlflowV3SpanExporter or not exporter._is_async_enabled:
        return
    # MLflow batches spans in an OpenTelemetry BatchSpanProcessor by default; its worker
    # thread holds its own reference to the exporter.
    batch = getattr(processor, "_batch_delegate", None)
    worker = getattr(batch, "_batch_processor", None) if batch is not None else None
    if batch is not None and getattr(worker, "_exporter", None) is not exporter:
        return
    with _install_lock:
        if processor.span_exporter is exporter:
            replacement = DiscardingExporter() if mode == "none" else ProcessExporter(exporter)
            if worker is not None:
                worker._exporter = replacement
            processor.span_exporter = replacement


class DiscardingExporter:
    """Drops every trace (``TRACER_EXPORT=none``): spans are built, nothing is written."""

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        from mlflow.tracing.trace_manager import InMemoryTraceManager

        manager = InMemoryTraceManager.get_instance()
        for span in spans:
            if span._parent is None:
                manager.pop_trace(span.context.trace_id)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _Flusher:
    """What ``mlflow.flush_trace_async_logging()`` calls: ``flush(terminate=...)``."""

    def __init__(self, exporter: ProcessExporter) -> None:
        self._exporter = exporter

    def flush(self, terminate: bool = False) -> None:
        self._exporter.flush()
        # Traces exported in this process after a fallback sit in MLflow's own queue.
        inner_queue = getattr(self._exporter._inner, "_async_queue", None)
        if inner_queue is not None:
            inner_queue.flush(terminate=terminate)


class ProcessExporter:
    """Hands finished traces to the export process; falls back to MLflow's exporter."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._async_queue = _Flusher(self)
        self._lock = threading.Condition()
        self._process: subprocess.Popen[str] | None = None
        self._pid = 0
        self._sent = 0
        self._acked = 0
        self._broken = False
        self._pending: list[Any] = []
        self._flushing = 0  # callers of flush() waiting now
        self._deferred: list[Any] = []
        self._writer: threading.Thread | None = None
        atexit.register(self.flush, EXIT_TIMEOUT)

    # --- the SpanExporter interface --------------------------------------------------------

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        # Whole traces are written when their root span ends, never span by span.
        from mlflow.tracing.trace_manager import InMemoryTraceManager

        manager = InMemoryTraceManager.get_instance()
        with self._lock:  # MLflow may export from several threads when it does not batch
            roots = [s for s in spans if s._parent is None] + self._deferred
            deferred = [r for r in roots if manager.has_open_spans(r.context.trace_id)]
            self._deferred = deferred
        for root in roots:
            if root in deferred:
                continue  # spans of background threads are still running: next time
            held = manager.pop_trace(root.context.trace_id)
            if held is None:
                continue
            trace = held.trace
            if self._broken or held.prompts or any(span._attachments for span in trace.data.spans):
                # More than spans and info to write: MLflow's exporter, in this process.
                self._export_here(trace, held.prompts)
            else:
                self._enqueue(trace)
        return SpanExportResult.SUCCESS

    def _export_here(self, trace: Any, prompts: Sequence[Any] = ()) -> None:
        """Export ``trace`` with MLflow's exporter, on MLflow's own background queue."""
        from mlflow.tracing.export.async_export_queue import Task

        self._inner._async_queue.put(
            task=Task(
                handler=self._write_here,
                args=(trace, prompts),
                error_msg="Failed to log trace to the trace server.",
            )
        )

    def _write_here(self, trace: Any, prompts: Sequence[Any]) -> None:
        inner = self._inner
        if inner._store_supports_log_spans:
            inner._log_spans(trace.info.experiment_id, trace.data.spans)
        inner._log_trace(trace, prompts=prompts)

    def shutdown(self) -> None:
        self.flush()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.flush(timeout_millis / 1000)

    # --- the pipe --------------------------------------------------------------------------

    def _enqueue(self, trace: Any) -> None:
        with self._lock:
            stale = self._process is None or self._pid != os.getpid()
            if stale and not self._spawn():
                self._fallback(trace, "could not start the export process")
                return
            if len(self._pending) >= MAX_PENDING:
                warn_once(
                    ("export-backlog",),
                    "tracer: the trace store is slower than the traced calls; traces beyond "
                    "%d waiting ones are dropped",
                    MAX_PENDING,
                )
                return
            self._pending.append(trace)
            self._sent += 1
            if len(self._pending) in (1, GATHER_MAX):  # the writer waits for these two
                self._lock.notify_all()

    def _spawn(self) -> bool:
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": self._inner._client.tracking_uri,
            "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
        }
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tracer._sidecar"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                text=True,
                bufsize=1,
            )
        except OSError:
            return False
        # At once, so that even the export process's start-up (importing MLflow) does not
        # compete with the application.
        lowest_priority(self._process.pid)
        self._pid = os.getpid()
        self._sent = self._acked = 0
        self._writer = threading.Thread(target=self._write, name="tracer-export", daemon=True)
        self._writer.start()
        threading.Thread(target=self._read_acks, name="tracer-export-acks", daemon=True).start()
        return True

    def _write(self) -> None:
        process = self._process
        assert process is not None and process.stdin is not None
        while True:
            with self._lock:
                while not self._pending:
                    self._lock.wait()
                deadline = time.monotonic() + GATHER_SECONDS
                while len(self._pending) < GATHER_MAX and not self._flushing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._lock.wait(remaining)
                batch, self._pending = self._pending, []
            try:
                process.stdin.write("".join(t.to_json() + "\n" for t in batch))
                process.stdin.flush()
            except (OSError, ValueError):
                self._break(batch)
                return

    def _read_acks(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        for _ in process.stdout:
            with self._lock:
                self._acked += 1
                self._lock.notify_all()
        self._break([])

    def _break(self, unsent: list[Any]) -> None:
        with self._lock:
            if self._broken:
                return
            self._broken = True
            unsent = unsent + self._pending
            self._pending = []
            self._lock.notify_all()
        warn_once(
            ("export-process",),
            "tracer: the trace export process stopped; exporting in this process from now on",
        )
        for trace in unsent:
            self._fallback(trace, None)

    def _fallback(self, trace: Any, reason: str | None) -> None:
        if reason:
            warn_once(("export-fallback", reason), "tracer: %s; exporting in this process", reason)
        self._broken = True
        self._export_here(trace)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until the export process has written every trace handed to it."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flushing += 1
            self._lock.notify_all()  # the writer hands over what it gathered at once
            try:
                while self._acked < self._sent and not self._broken:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._lock.wait(remaining)
            finally:
                self._flushing -= 1
        return True
