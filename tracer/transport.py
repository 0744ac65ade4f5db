"""The tracing transports: route, start a span, forward, observe the response stream.

They are as thin as httpx's own: delegate to the wrapped transport, forward ``close``, and
swap in a response stream that hands every chunk on unchanged, the moment it arrives, after
showing it to the :class:`~tracer.recorder.Recorder`. Errors of the inner transport pass
through unchanged; the tracer's own never reach the caller (see :mod:`tracer.failsafe`).

The logic lives in small mixins shared by the ``httpx`` classes here and the ``httpx2`` ones
in :mod:`tracer.httpx2`; each library contributes only its base classes and decoders.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx
from httpx._decoders import SUPPORTED_DECODERS, MultiDecoder

from tracer import _cassette_wire, multipart, nesting, reaper, routes, spans
from tracer.config import TracerConfig
from tracer.failsafe import internal_error
from tracer.recorder import ContentDecoder, Recorder, RequestInfo

__all__ = ["AsyncTracingTransport", "TracingTransport", "begin_recording"]


class Library:
    """What differs between ``httpx`` and ``httpx2`` for the transports."""

    def __init__(
        self,
        name: str,
        request_not_read: type[Exception],
        supported_encodings: Sequence[str],
        build_decoder: Callable[[list[str]], ContentDecoder],
        module: Any,
    ) -> None:
        self.name = name
        self.module = module  # the library itself: its Response, byte streams and errors
        self.request_not_read = request_not_read
        self.supported_encodings = frozenset(supported_encodings)
        self.build_decoder = build_decoder

    def decoder_factory(self, headers: Any) -> Callable[[], ContentDecoder] | None:
        """Builds the library's own decoder for the response's ``Content-Encoding``.

        Like the library itself, encodings it cannot decode are skipped, so the span parses
        what the caller reads.
        """
        encodings = [
            value.strip().lower()
            for value in headers.get_list("content-encoding", split_commas=True)
            if value.strip().lower() in self.supported_encodings
        ]
        if not encodings or encodings == ["identity"]:
            return None
        return functools.partial(self.build_decoder, encodings)


def _httpx_decoder(encodings: list[str]) -> ContentDecoder:
    decoders = [SUPPORTED_DECODERS[e]() for e in encodings]
    return decoders[0] if len(decoders) == 1 else MultiDecoder(children=decoders)


HTTPX = Library("httpx", httpx.RequestNotRead, list(SUPPORTED_DECODERS), _httpx_decoder, httpx)


def _begin(request: Any, config: TracerConfig, library: Library) -> Recorder | None:
    """A recorder for ``request`` if it is a traced LLM call, else ``None``."""
    if not config.enabled or nesting.inside():
        return None
    try:
        url = request.url
        route = routes.match(request.method, url.path, config.routes)
        if route is None:
            return None
        form = None
        try:
            body: bytes | None = request.content
        except library.request_not_read:
            body = None
            form = multipart.form_of_stream(request.stream)  # an upload: its fields, no bytes
        info = RequestInfo(
            request.method, str(url), url.host, url.port, request.headers, body, url.path, form
        )
    except Exception as exc:
        internal_error("routing a request", exc, strict=config.strict)
        return None
    return begin_recording(route, info, config, request.headers)


def begin_recording(
    route: routes.RouteMatch, info: RequestInfo, config: TracerConfig, headers: Any
) -> Recorder | None:
    """Start the span of a routed request; add the trace context to its (mutable) ``headers``
    when ``config.propagate_context``. ``None`` when the call goes on untraced."""
    recorder = Recorder.begin(route, info, config)
    if recorder is not None and config.propagate_context:
        try:
            headers.update(spans.traceparent(recorder.span))
        except Exception as exc:
            internal_error("propagating the trace context", exc, strict=config.strict)
    return recorder


def _observe(response: Any, recorder: Recorder, stream_class: type, library: Library) -> Any:
    try:
        if response.is_stream_consumed:  # built with its content already read (mocks)
            recorder.on_response(response.status_code, response.headers, None, response.content)
        else:
            recorder.on_response(
                response.status_code, response.headers, library.decoder_factory(response.headers)
            )
            response.stream = stream_class(response.stream, recorder)
    except Exception as exc:
        internal_error("observing a response", exc, strict=recorder.config.strict)
    return response


def _cassette_failed(taken: Any, recorder: Recorder | None, exc: BaseException) -> None:
    """No response came through the cassette: nothing to record into it; the span fails."""
    if not isinstance(taken, dict):
        taken.discard()
    if recorder is not None:
        recorder.on_error(exc)


def _answered(
    response: Any,
    recorder: Recorder | None,
    taken: Any,
    tape: Any,
    stream_class: type,
    library: Library,
) -> Any:
    """A response from a cassette (or recorded into one), shown to the span's recorder."""
    if recorder is None:
        return response
    recorder.note_cassette(str(tape.path), replayed=isinstance(taken, dict))
    return _observe(response, recorder, stream_class, library)


class _Watched:
    """What both stream classes share: the recorder, and a finalizer for a stream the caller
    drops without closing, which only hands the span to :mod:`tracer.reaper` (a finalizer
    runs at any moment, MLflow's own set-up included: it must not call MLflow)."""

    def __init__(self, inner: Any, recorder: Recorder) -> None:
        self._inner = inner
        self._recorder = recorder
        self._finalizer = reaper.finalizer(self, recorder, strict=recorder.config.strict)

    def _closed(self) -> None:
        """The caller closed the stream: the span ends now, on the caller's thread."""
        if self._finalizer.detach() is not None:
            self._recorder.on_close()


class ObservedStream(_Watched):
    """Hands on each chunk of the inner stream as it arrives; tells the recorder."""

    def __iter__(self) -> Iterator[bytes]:
        recorder = self._recorder
        inner = iter(self._inner)
        reaper.hold(inner)
        try:
            for chunk in inner:
                recorder.on_chunk(chunk)
                yield chunk
        except GeneratorExit:
            # Freed with the SDK's reference cycle, inside a garbage collection: the inner
            # iterator, closed here, would close the pooled connection under the pool's lock,
            # which this thread may hold. The reaper thread closes it instead.
            if reaper.collecting() and hasattr(inner, "close"):
                reaper.close_later(inner.close, None)
            raise
        except BaseException as exc:
            recorder.on_error(exc)
            raise
        finally:
            reaper.release(inner)
        recorder.on_eof()

    def close(self) -> None:
        if reaper.collecting():  # see reaper.close_later: this thread may hold the pool's lock
            pending = self._finalizer.detach() is not None
            reaper.close_later(self._inner.close, self._recorder if pending else None)
            return
        try:
            self._inner.close()
        finally:
            self._closed()


class AsyncObservedStream(_Watched):
    """The async twin of :class:`ObservedStream`."""

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
            self._closed()


class SyncTracing:
    """The sync transport logic; concrete classes add a library's ``BaseTransport``."""

    library: Library
    stream_class: type
    default_transport: Callable[[], Any]

    def __init__(self, transport: Any = None, config: TracerConfig | None = None) -> None:
        self.transport = transport if transport is not None else self.default_transport()
        self.config = config if config is not None else TracerConfig()
        if self.config.enabled:
            spans.settle_autolog()

    def handle_request(self, request: Any) -> Any:
        """Send ``request`` through the wrapped transport, recording it if it is an LLM call."""
        tape = _cassette_wire.in_use(request, self.config)
        if tape is not None:
            return self._through_cassette(request, tape)
        recorder = _begin(request, self.config, self.library)
        if recorder is None:
            return self.transport.handle_request(request)
        token = nesting.enter()
        try:
            response = self.transport.handle_request(request)
        except BaseException as exc:
            recorder.on_error(exc)
            raise
        finally:
            nesting.leave(token)
        return _observe(response, recorder, self.stream_class, self.library)

    def _through_cassette(self, request: Any, tape: Any) -> Any:
        try:
            body = request.content
        except self.library.request_not_read:
            body = request.read()  # an upload: matched by its fields and files' digests
        taken = _cassette_wire.take(tape, request, body, self.config)
        recorder = _begin(request, self.config, self.library)
        token = nesting.enter()
        try:
            if isinstance(taken, dict):
                delay = _cassette_wire.head_delay(taken, tape)
                if delay:
                    time.sleep(delay)
                response = _cassette_wire.replayed_response(
                    taken, tape, request, self.library.module, asynchronous=False
                )
            else:
                response = _cassette_wire.recording_stream(
                    self.transport.handle_request(request), taken, self.library, False
                )
        except BaseException as exc:
            _cassette_failed(taken, recorder, exc)
            raise
        finally:
            nesting.leave(token)
        return _answered(response, recorder, taken, tape, self.stream_class, self.library)

    def close(self) -> None:
        """Close the wrapped transport."""
        self.transport.close()


class AsyncTracing:
    """The async transport logic; concrete classes add a library's ``AsyncBaseTransport``."""

    library: Library
    stream_class: type
    default_transport: Callable[[], Any]

    def __init__(self, transport: Any = None, config: TracerConfig | None = None) -> None:
        self.transport = transport if transport is not None else self.default_transport()
        self.config = config if config is not None else TracerConfig()
        if self.config.enabled:
            spans.settle_autolog()

    async def handle_async_request(self, request: Any) -> Any:
        """Send ``request`` through the wrapped transport, recording it if it is an LLM call."""
        tape = _cassette_wire.in_use(request, self.config)
        if tape is not None:
            return await self._through_cassette(request, tape)
        recorder = _begin(request, self.config, self.library)
        if recorder is None:
            return await self.transport.handle_async_request(request)
        token = nesting.enter()
        try:
            response = await self.transport.handle_async_request(request)
        except BaseException as exc:
            recorder.on_error(exc)
            raise
        finally:
            nesting.leave(token)
        return _observe(response, recorder, self.stream_class, self.library)

    async def _through_cassette(self, request: Any, tape: Any) -> Any:
        try:
            body = request.content
        except self.library.request_not_read:
            body = await request.aread()  # an upload: matched by its fields and files' digests
        taken = _cassette_wire.take(tape, request, body, self.config)
        recorder = _begin(request, self.config, self.library)
        token = nesting.enter()
        try:
            if isinstance(taken, dict):
                delay = _cassette_wire.head_delay(taken, tape)
                if delay:
                    import anyio

                    await anyio.sleep(delay)
                response = _cassette_wire.replayed_response(
                    taken, tape, request, self.library.module, asynchronous=True
                )
            else:
                response = _cassette_wire.recording_stream(
                    await self.transport.handle_async_request(request), taken, self.library, True
                )
        except BaseException as exc:
            _cassette_failed(taken, recorder, exc)
            raise
        finally:
            nesting.leave(token)
        return _answered(response, recorder, taken, tape, self.stream_class, self.library)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.transport.aclose()


class _HttpxStream(ObservedStream, httpx.SyncByteStream):
    pass


class _HttpxAsyncStream(AsyncObservedStream, httpx.AsyncByteStream):
    pass


class TracingTransport(SyncTracing, httpx.BaseTransport):
    """Wraps any ``httpx`` transport and records each LLM call through it as an MLflow span.

    ``TracingTransport(transport=None, config=None)``: the wrapped transport defaults to
    ``httpx.HTTPTransport()``, the configuration to ``TracerConfig()`` (``TRACER_*``).
    Requests to paths that are not LLM APIs pass through untouched and untraced.
    """

    library = HTTPX
    stream_class = _HttpxStream
    default_transport = httpx.HTTPTransport


class AsyncTracingTransport(AsyncTracing, httpx.AsyncBaseTransport):
    """The async twin of :class:`TracingTransport`, for ``httpx.AsyncClient``."""

    library = HTTPX
    stream_class = _HttpxAsyncStream
    default_transport = httpx.AsyncHTTPTransport
