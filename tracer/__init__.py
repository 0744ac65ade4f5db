"""A wire-level tracer for LLM APIs: an httpx transport that records every LLM call as an
MLflow span, without patching any SDK.

    import tracer

    tracer.instrument()   # every httpx, httpx2 and aiohttp client of the process

    from openai import OpenAI
    from tracer import TracedClient

    client = OpenAI(http_client=TracedClient())   # or one client at a time

The names are imported on first use, so ``import tracer`` (and ``tracer.instrument()`` in a
program that makes no LLM call) does not import MLflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracer.cassettes import CassetteError, CassetteMiss, cassette
    from tracer.client import TracedAsyncClient, TracedClient, wrap
    from tracer.config import TracerConfig
    from tracer.instrumentation import instrument, instrumented, uninstrument
    from tracer.transport import AsyncTracingTransport, TracingTransport

__all__ = [
    "AsyncTracingTransport",
    "CassetteError",
    "CassetteMiss",
    "TracedAsyncClient",
    "TracedClient",
    "TracerConfig",
    "TracingTransport",
    "cassette",
    "instrument",
    "instrumented",
    "uninstrument",
    "wrap",
]
__version__ = "0.1.0"

_HOME = {
    "AsyncTracingTransport": "tracer.transport",
    "TracingTransport": "tracer.transport",
    "TracedAsyncClient": "tracer.client",
    "TracedClient": "tracer.client",
    "wrap": "tracer.client",
    "TracerConfig": "tracer.config",
    "cassette": "tracer.cassettes",
    "CassetteError": "tracer.cassettes",
    "CassetteMiss": "tracer.cassettes",
    "instrument": "tracer.instrumentation",
    "instrumented": "tracer.instrumentation",
    "uninstrument": "tracer.instrumentation",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is not None:
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value
    if not name.startswith("__"):  # a submodule, as after an eager import: tracer.export
        try:
            return importlib.import_module(f"tracer.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tracer.{name}":
                raise AttributeError(f"module 'tracer' has no attribute {name!r} ({exc})") from exc
    raise AttributeError(f"module 'tracer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
