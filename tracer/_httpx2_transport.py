"""The tracing transports on ``httpx2``'s classes (the transport layer of :mod:`tracer.httpx2`).

``httpx2`` has the transport interface of ``httpx`` with its own classes, and its clients only
accept its own responses and byte streams: these are the ``httpx`` transports rebuilt on them,
sharing all the logic. Importing this module requires ``httpx2``.
"""

from __future__ import annotations

import httpx2
from httpx2._decoders import SUPPORTED_DECODERS, MultiDecoder

from tracer.transport import AsyncObservedStream, AsyncTracing, Library, ObservedStream, SyncTracing

__all__ = ["HTTPX2", "AsyncTracingTransport", "TracingTransport"]


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
