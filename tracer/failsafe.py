"""Fail-open, fail-loud: internal tracer errors never reach the caller, except in strict mode.

Every tracer code path that runs on the caller's call goes through :func:`internal_error`.
In production it logs a warning once per kind of failure and the request carries on untraced;
with ``TracerConfig(strict=True)`` (``TRACER_STRICT=1``, as the project's own tests run) it
re-raises so that tracer bugs cannot hide.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["first_time", "internal_error", "warn_once"]

logger = logging.getLogger("tracer")
_seen: dict[tuple[str, ...], object] = {}


def first_time(seen: dict[Any, object], key: Any) -> bool:
    """Whether ``key`` is new to ``seen`` (and now in it): one atomic ``setdefault``, no lock,
    so a thread that re-enters it (a finalizer that logs, mid-call) cannot wait on itself."""
    marker = object()
    return seen.setdefault(key, marker) is marker


def warn_once(key: tuple[str, ...], message: str, *args: object, exc_info: bool = False) -> None:
    """Log ``message`` at warning level the first time ``key`` is seen, at debug level after."""
    first = first_time(_seen, key)
    logger.log(logging.WARNING if first else logging.DEBUG, message, *args, exc_info=exc_info)


def internal_error(where: str, exc: BaseException, *, strict: bool) -> None:
    """Report an error raised inside the tracer at ``where``; re-raise it when ``strict``."""
    if strict:
        raise exc
    warn_once(
        ("internal", where, type(exc).__name__),
        "tracer: internal error in %s (%s: %s); this call continues untraced. "
        "Further errors of this kind are logged at debug level.",
        where,
        type(exc).__name__,
        exc,
        exc_info=True,
    )
