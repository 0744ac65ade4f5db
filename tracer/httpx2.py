"""The tracer for ``httpx2`` clients (what ``openai>=3`` and ``anthropic>=2`` build on).

``httpx2`` has the transport interface of ``httpx`` with its own classes, and its clients only
accept its own responses and byte streams; these classes are the ``httpx`` ones rebuilt on
them, sharing all the logic::

    from anthropic import Anthropic
    from tracer.httpx2 import TracedClient

    client = Anthropic(http_client=TracedClient())

Importing this module requires ``httpx2``; the rest of the tracer never imports it.
"""

from __future__ import annotations

from typing import Any

import httpx2
from httpx2._decoders import SUPPORTED_DECODERS, MultiDecoder

from tracer.client import OPENAI_DEFAULT_VALUES, wrap
from tracer.config import TracerConfig
from tracer.transport import AsyncObservedStream, AsyncTracing, Library, ObservedStream, SyncTracing

__all__ = ["AsyncTracingTransport", "TracedAsyncClient", "TracedClient", "TracingTransport"]


class _Joined:
    """httpx2's decoders yield pieces; the recorder takes bytes."""

    __slots__ = ("_decoder",)

    def __init__(self, encodings: list[str]) -> None:
        self._decoder = MultiDecoder(encodings)

    def decode(self, data: bytes) -> bytes:
        return b"".join(self._decoder.decode(data))

    def flush(self) -> bytes:
        return b"".join(self._decoder.flush())


HTTPX2 = Library("httpx2", httpx2.RequestNotRead, list(SUPPORTED_DECODERS), _Joined, httpx2)


class _Stream(ObservedStream, httpx2.SyncByteStream):
    pass


class _AsyncStream(AsyncObservedStream, httpx2.AsyncByteStream):
    pass


class TracingTransport(SyncTracing, httpx2.BaseTransport):
    """Wraps any ``httpx2`` transport and records each LLM call through it as an MLflow span."""

    library = HTTPX2
    stream_class = _Stream
    default_transport = httpx2.HTTPTransport


class AsyncTracingTransport(AsyncTracing, httpx2.AsyncBaseTransport):
    """The async twin of :class:`TracingTransport`, for ``httpx2.AsyncClient``."""

    library = HTTPX2
    stream_class = _AsyncStream
    default_transport = httpx2.AsyncHTTPTransport


def _defaults() -> dict[str, Any]:
    timeout, limits, follow = OPENAI_DEFAULT_VALUES
    return {
        "timeout": httpx2.Timeout(**timeout),
        "limits": httpx2.Limits(**limits),
        "follow_redirects": follow,
    }


class TracedClient(httpx2.Client):
    """An ``httpx2.Client`` whose LLM calls are recorded as MLflow spans.

    Takes every keyword ``httpx2.Client`` takes, plus ``config``; defaults to the timeout,
    connection limits and redirect behaviour of the OpenAI SDK's own client.
    """

    def __init__(self, *, config: TracerConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**{**_defaults(), **kwargs})
        self.tracer_config = config if config is not None else TracerConfig()
        wrap(self, self.tracer_config)


class TracedAsyncClient(httpx2.AsyncClient):
    """An ``httpx2.AsyncClient`` whose LLM calls are recorded as MLflow spans."""

    def __init__(self, *, config: TracerConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**{**_defaults(), **kwargs})
        self.tracer_config = config if config is not None else TracerConfig()
        wrap(self, self.tracer_config)
