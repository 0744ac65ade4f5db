"""Putting the tracing transport in place: traced clients, and ``wrap`` for existing ones."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

if TYPE_CHECKING:
    import httpx2

from tracer.config import TracerConfig
from tracer.transport import AsyncTracingTransport, TracingTransport

__all__ = ["OPENAI_DEFAULT_VALUES", "TracedAsyncClient", "TracedClient", "wrap"]

#: The client settings the OpenAI SDK uses for the client it builds itself (timeout, limits,
#: follow redirects), so that passing a traced client changes nothing but tracing.
OPENAI_DEFAULT_VALUES: tuple[dict[str, float], dict[str, int], bool] = (
    {"timeout": 600.0, "connect": 5.0},
    {"max_connections": 1000, "max_keepalive_connections": 100},
    True,
)

_Client = TypeVar(
    "_Client", bound="httpx.Client | httpx.AsyncClient | httpx2.Client | httpx2.AsyncClient"
)


def _openai_defaults() -> dict[str, Any]:
    timeout, limits, follow = OPENAI_DEFAULT_VALUES
    return {
        "timeout": httpx.Timeout(**timeout),
        "limits": httpx.Limits(**limits),
        "follow_redirects": follow,
    }


def _tracing_classes(client: object) -> tuple[type, type] | None:
    """The (sync, async) transport classes for the library ``client`` comes from."""
    if isinstance(client, (httpx.Client, httpx.AsyncClient)):
        return TracingTransport, AsyncTracingTransport
    # httpx2 is optional: if the client is an httpx2 one, httpx2 is already imported.
    httpx2 = sys.modules.get("httpx2")
    if httpx2 is not None and isinstance(client, (httpx2.Client, httpx2.AsyncClient)):
        from tracer import _httpx2_transport as traced

        return traced.TracingTransport, traced.AsyncTracingTransport
    return None


def wrap(client: _Client, config: TracerConfig | None = None) -> _Client:
    """Wrap every transport of ``client`` (its default one and each mount) in place.

    Takes an ``httpx.Client`` / ``httpx.AsyncClient``, or an ``httpx2`` one when ``httpx2`` is
    installed. Idempotent: transports already traced are left as they are. Returns ``client``.
    """
    classes = _tracing_classes(client)
    if classes is None:
        raise TypeError(
            "wrap() takes an httpx.Client or httpx.AsyncClient (or an httpx2 one), "
            f"not {type(client).__name__}"
        )
    is_async = hasattr(client, "aclose")
    tracing = classes[1] if is_async else classes[0]
    config = config if config is not None else TracerConfig()

    def traced(transport: Any) -> Any:
        if transport is None or isinstance(transport, tracing):
            return transport
        return tracing(transport, config)

    target: Any = client
    target._transport = traced(target._transport)
    target._mounts = {pattern: traced(t) for pattern, t in target._mounts.items()}
    return client


class TracedClient(httpx.Client):
    """An ``httpx.Client`` whose LLM calls are recorded as MLflow spans.

    Takes every keyword ``httpx.Client`` takes, plus ``config``; defaults to the timeout,
    connection limits and redirect behaviour of the OpenAI SDK's own client.
    """

    def __init__(self, *, config: TracerConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**{**_openai_defaults(), **kwargs})
        self.tracer_config = config if config is not None else TracerConfig()
        wrap(self, self.tracer_config)


class TracedAsyncClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` whose LLM calls are recorded as MLflow spans.

    Takes every keyword ``httpx.AsyncClient`` takes, plus ``config``; defaults to the timeout,
    connection limits and redirect behaviour of the OpenAI SDK's own client.
    """

    def __init__(self, *, config: TracerConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**{**_openai_defaults(), **kwargs})
        self.tracer_config = config if config is not None else TracerConfig()
        wrap(self, self.tracer_config)
