"""The export process: reads finished traces (one JSON document per line) from standard input
and writes them to the MLflow tracking store with MLflow's own exporter, so the SQL statements
and HTTP requests of export cost the traced application nothing. One line of acknowledgement
per trace goes to standard output. Started by :mod:`tracer.export`; not for direct use.

Traces that arrive while a batch is being written are written together: their spans go to the
store in one ``log_spans`` call per experiment (one transaction for a SQL store, one request
for a tracking server), which costs about a third less per trace than one call each.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
from collections import defaultdict
from typing import Any

#: Most traces written in one batch.
MAX_BATCH = 256
_EOF = ""


def lowest_priority(pid: int = 0) -> None:
    """Let process ``pid`` (0: this one) run only on CPU time nothing else wants, so the store
    catches up while the application waits for the network. Linux's SCHED_IDLE gives way at
    once to any other task that wakes up (nice 19 alone still delays the application's
    wake-ups by a millisecond or so); elsewhere, nice 19."""
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, pid, 19)


def main() -> None:
    """Export every trace read from standard input until it closes."""
    lowest_priority()  # also set by the parent at once; here for any other starter
    from mlflow.entities import Trace
    from mlflow.tracing.export.mlflow_v3 import MlflowV3SpanExporter

    import tracer.spans  # noqa: F401  (MLflow's per-trace warnings, once per kind)

    logger = logging.getLogger("tracer")
    exporter = MlflowV3SpanExporter()
    lines: queue.Queue[str] = queue.Queue()
    ack_lock = threading.Lock()

    def ack(count: int) -> None:
        with ack_lock:
            sys.stdout.write("1\n" * count)
            sys.stdout.flush()

    def failed(exc: Exception) -> None:
        logger.warning("tracer: could not export a trace: %s: %s", type(exc).__name__, exc)

    def write(batch: list[str]) -> None:
        traces: list[Any] = []
        for line in batch:
            try:
                traces.append(Trace.from_json(line))
            except Exception as exc:
                failed(exc)
        if exporter._store_supports_log_spans:
            by_experiment: dict[str, list[Any]] = defaultdict(list)
            for trace in traces:
                by_experiment[trace.info.experiment_id or ""].append(trace)
            for experiment_id, group in by_experiment.items():
                try:
                    exporter._log_spans(experiment_id, [s for t in group for s in t.data.spans])
                except Exception:
                    for trace in group:  # one trace at a time: only a bad one is lost
                        try:
                            exporter._log_spans(experiment_id, trace.data.spans)
                        except Exception as exc:
                            failed(exc)
        for trace in traces:
            try:
                exporter._log_trace(trace, prompts=[])
            except Exception as exc:
                failed(exc)

    def worker() -> None:
        while True:
            batch = [lines.get()]
            while batch[-1] is not _EOF and len(batch) < MAX_BATCH:
                try:
                    batch.append(lines.get_nowait())
                except queue.Empty:
                    break
            done = batch[-1] is _EOF
            if done:
                batch.pop()
                lines.put(_EOF)  # for the other workers
            if batch:
                write(batch)
                ack(len(batch))
            if done:
                return

    # A local SQLite store takes one writer at a time; a tracking server is network-bound.
    count = 1 if exporter._client.tracking_uri.startswith("sqlite") else 8
    workers = [
        threading.Thread(target=worker, name=f"tracer-export-{n}", daemon=True)
        for n in range(count)
    ]
    for thread in workers:
        thread.start()
    for line in sys.stdin:
        if line.strip():
            lines.put(line)
    lines.put(_EOF)
    for thread in workers:
        thread.join()


if __name__ == "__main__":
    main()
