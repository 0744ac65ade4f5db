"""The export process: reads finished traces (one JSON document per line) from standard input
and writes them to the MLflow tracking store with MLflow's own exporter, so the SQL statements
and HTTP requests of export cost the traced application nothing. One line of acknowledgement
per trace goes to standard output. Started by :mod:`tracer.export`; not for direct use.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor


def main() -> None:
    """Export every trace read from standard input until it closes."""
    if hasattr(os, "nice"):
        os.nice(10)  # yield the CPU to the application this process serves
    from mlflow.entities import Trace
    from mlflow.tracing.export.mlflow_v3 import MlflowV3SpanExporter

    import tracer.spans  # noqa: F401  (MLflow's per-trace warnings, once per kind)

    logger = logging.getLogger("tracer")
    exporter = MlflowV3SpanExporter()
    lock = threading.Lock()

    def export(line: str) -> None:
        try:
            trace = Trace.from_json(line)
            if exporter._store_supports_log_spans:
                exporter._log_spans(trace.info.experiment_id, trace.data.spans)
            exporter._log_trace(trace, prompts=[])
        except Exception as exc:
            logger.warning("tracer: could not export a trace: %s: %s", type(exc).__name__, exc)
        with lock:
            sys.stdout.write("1\n")
            sys.stdout.flush()

    # A local SQLite store takes one writer at a time; a tracking server is network-bound.
    workers = 1 if exporter._client.tracking_uri.startswith("sqlite") else 8
    with ThreadPoolExecutor(workers, thread_name_prefix="tracer-export") as pool:
        for line in sys.stdin:
            pool.submit(export, line)


if __name__ == "__main__":
    main()
