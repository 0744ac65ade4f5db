"""The tracing transports: route, start a span, forward, observe the response stream.

They are as thin as httpx's own: delegate to the wrapped transport, forward ``close``, and
swap in a response stream that hands every chunk on unchanged, the moment it arrives, after
showing it to the :class:`~tracer.recorder.Recorder`. Errors of the inner transport pass
through unchanged; the tracer's own never reach the caller (see :mod:`tracer.failsafe`).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
from httpx._decoders import SUPPORTED_DECODERS, ContentDecoder, MultiDecoder

from tracer import routes
from tracer.config import TracerConfig
from tracer.failsafe import internal_error
from tracer.recorder import Recorder, RequestInfo

__all__ = ["AsyncTracingTransport", "TracingTransport"]


def _begin(request: httpx.Request, config: TracerConfig) -> Recorder | None:
    """A recorder for ``request`` if it is a traced LLM call, else ``None``."""
    if not config.enabled:
        return None
    try:
        url = request.url
        api = routes.match(request.method, url.path)
        if api is None:
            return None
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = None
        info = RequestInfo(request.method, str(url), url.host, url.port, request.headers, body)
    except Exception as exc:
        internal_error("routing a request", exc, strict=config.strict)
        return None
    return Recorder.begin(api, info, config)


def _decoder_factory(headers: httpx.Headers) -> Callable[[], ContentDecoder] | None:
    """Builds httpx's own decoder for the response's ``Content-Encoding``, if it has one.

    Like httpx, encodings it cannot decode are skipped, so the span parses what the caller
    reads.
    """
    encodings = [
        value.strip().lower()
        for value in headers.get_list("content-encoding", split_commas=True)
        if value.strip().lower() in SUPPORTED_DECODERS
    ]
    if not encodings or encodings == ["identity"]:
        return None

    def build() -> ContentDecoder:
        decoders = [SUPPORTED_DECODERS[e]() for e in encodings]
        return decoders[0] if len(decoders) == 1 else MultiDecoder(children=decoders)

    return build


def _observe(
    response: httpx.Response,
    recorder: Recorder,
    stream_class: type[_ObservedStream] | type[_AsyncObservedStream],
) -> httpx.Response:
    try:
        if response.is_stream_consumed:  # built with its content already read (mocks)
            recorder.on_response(response.status_code, response.headers, None, response.content)
        else:
            recorder.on_response(
                response.status_code, response.headers, _decoder_factory(response.headers)
            )
            response.stream = stream_class(response.stream, recorder)  # type: ignore[arg-type]
    except Exception as exc:
        internal_error("observing a response", exc, strict=recorder.config.strict)
    return response


class _ObservedStream(httpx.SyncByteStream):
    """Hands on each chunk of the inner stream as it arrives; tells the recorder."""

    def __init__(self, inner: httpx.SyncByteStream, recorder: Recorder) -> None:
        self._inner = inner
        self._recorder = recorder
        # Ends the span if the caller drops the response without closing it.
        self._finalizer = weakref.finalize(self, recorder.on_close)

    def __iter__(self) -> Iterator[bytes]:
        recorder = self._recorder
        try:
            for chunk in self._inner:
                recorder.on_chunk(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            recorder.on_error(exc)
            raise
        recorder.on_eof()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._finalizer()


class _AsyncObservedStream(httpx.AsyncByteStream):
    """The async twin of :class:`_ObservedStream`."""

    def __init__(self, inner: httpx.AsyncByteStream, recorder: Recorder) -> None:
        self._inner = inner
        self._recorder = recorder
        self._finalizer = weakref.finalize(self, recorder.on_close)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        recorder = self._recorder
        try:
            async for chunk in self._inner:
                recorder.on_chunk(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            recorder.on_error(exc)
            raise
        recorder.on_eof()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._finalizer()


class TracingTransport(httpx.BaseTransport):
    """Wraps any ``httpx`` transport and records each LLM call through it as an MLflow span.

    Requests to paths that are not LLM APIs pass through untouched and untraced.
    """

    def __init__(
        self, transport: httpx.BaseTransport | None = None, config: TracerConfig | None = None
    ) -> None:
        self.transport = transport if transport is not None else httpx.HTTPTransport()
        self.config = config if config is not None else TracerConfig()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the wrapped transport, recording it if it is an LLM call."""
        recorder = _begin(request, self.config)
        if recorder is None:
            return self.transport.handle_request(request)
        try:
            response = self.transport.handle_request(request)
        except BaseException as exc:
            recorder.on_error(exc)
            raise
        return _observe(response, recorder, _ObservedStream)

    def close(self) -> None:
        """Close the wrapped transport."""
        self.transport.close()


class AsyncTracingTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`TracingTransport`, for ``httpx.AsyncClient``."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        config: TracerConfig | None = None,
    ) -> None:
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self.config = config if config is not None else TracerConfig()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the wrapped transport, recording it if it is an LLM call."""
        recorder = _begin(request, self.config)
        if recorder is None:
            return await self.transport.handle_async_request(request)
        try:
            response = await self.transport.handle_async_request(request)
        except BaseException as exc:
            recorder.on_error(exc)
            raise
        return _observe(response, recorder, _AsyncObservedStream)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.transport.aclose()
