"""MLflow's per-trace warnings, once per kind.

With an unreachable tracking server MLflow (and the HTTP library under it) warns once per trace
or per retry; a tracer that records every LLM call must not turn that into a warning per call.
Importing this module puts the filter in place.
"""

from __future__ import annotations

import logging

from tracer.failsafe import first_time

__all__ = ["install"]

#: MLflow's loggers that report a failed export or span once per trace.
_MLFLOW_LOGGERS = (
    "mlflow.tracing.export.mlflow_v3",
    "mlflow.tracing.export.async_export_queue",
    "mlflow.tracing.export.utils",
    "mlflow.tracing.export.uc_table",
    "mlflow.tracing.processor.base_mlflow",
    "mlflow.tracing.client",
    "mlflow.tracing.fluent",
    "mlflow.tracing.provider",
    "mlflow.tracing.trace_manager",
    "mlflow.tracing.utils",
    # The HTTP library's retry warnings ("Retrying (Retry(total=...)) after connection
    # broken ..."), one per attempt while a tracking server is down.
    "urllib3.connectionpool",
)


class _OncePerKind(logging.Filter):
    """Lets the first warning of each kind through; later ones are demoted to debug level.

    With an unreachable tracking server MLflow warns once per trace; a tracer that records
    every LLM call must not turn that into a warning per call.
    """

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[tuple[str, str], object] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if first_time(self._seen, (record.name, str(record.msg)[:60])):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_ONCE = _OncePerKind()


def install() -> None:
    """Put the once-per-kind filter on MLflow's loggers (idempotent)."""
    for name in _MLFLOW_LOGGERS:
        logger = logging.getLogger(name)
        if _ONCE not in logger.filters:
            logger.addFilter(_ONCE)


install()
