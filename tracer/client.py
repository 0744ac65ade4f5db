"""Putting the tracing transport in place: traced clients, and ``wrap`` for existing ones."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx

from tracer.config import TracerConfig
from tracer.transport import AsyncTracingTransport, TracingTransport

__all__ = ["OPENAI_DEFAULTS", "TracedAsyncClient", "TracedClient", "wrap"]

#: The client settings the OpenAI SDK uses for the client it builds itself, so that passing a
#: traced client changes nothing but tracing.
OPENAI_DEFAULTS: dict[str, Any] = {
    "timeout": httpx.Timeout(timeout=600.0, connect=5.0),
    "limits": httpx.Limits(max_connections=1000, max_keepalive_connections=100),
    "follow_redirects": True,
}

_Client = TypeVar("_Client", httpx.Client, httpx.AsyncClient)


def wrap(client: _Client, config: TracerConfig | None = None) -> _Client:
    """Wrap every transport of ``client`` (its default one and each mount) in place.

    Idempotent: transports already traced are left as they are. Returns ``client``.
    """
    config = config if config is not None else TracerConfig()
    if isinstance(client, httpx.AsyncClient):
        tracing: type[Any] = AsyncTracingTransport
    elif isinstance(client, httpx.Client):
        tracing = TracingTransport
    else:
        raise TypeError(
            f"wrap() takes an httpx.Client or httpx.AsyncClient, not {type(client).__name__}"
        )

    def traced(transport: Any) -> Any:
        if transport is None or isinstance(transport, tracing):
            return transport
        return tracing(transport, config)

    client._transport = traced(client._transport)
    client._mounts = {pattern: traced(t) for pattern, t in client._mounts.items()}
    return client


class TracedClient(httpx.Client):
    """An ``httpx.Client`` whose LLM calls are recorded as MLflow spans.

    Takes every keyword ``httpx.Client`` takes, plus ``config``; defaults to the timeout,
    connection limits and redirect behaviour of the OpenAI SDK's own client.
    """

    def __init__(self, *, config: TracerConfig | None = None, **kwargs: Any) -> None:
        for key, value in OPENAI_DEFAULTS.items():
            kwargs.setdefault(key, value)
        super().__init__(**kwargs)
        self.tracer_config = config if config is not None else TracerConfig()
        wrap(self, self.tracer_config)


class TracedAsyncClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` whose LLM calls are recorded as MLflow spans.

    Takes every keyword ``httpx.AsyncClient`` takes, plus ``config``; defaults to the timeout,
    connection limits and redirect behaviour of the OpenAI SDK's own client.
    """

    def __init__(self, *, config: TracerConfig | None = None, **kwargs: Any) -> None:
        for key, value in OPENAI_DEFAULTS.items():
            kwargs.setdefault(key, value)
        super().__init__(**kwargs)
        self.tracer_config = config if config is not None else TracerConfig()
        wrap(self, self.tracer_config)
