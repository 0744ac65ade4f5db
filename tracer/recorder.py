"""One traced HTTP exchange, from request to the end of its response body.

The sync and async transports share all of this; they only feed it events: the response
arrived, a body chunk arrived, the body ended, the caller closed it, an error was raised, or the
stream was garbage-collected. Every entry point is guarded (see :mod:`tracer.failsafe`), and the
span is ended exactly once, whichever of these comes first to finish it.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from tracer import multipart, reaper, redact, routes, sampling, semconv, spans
from tracer.apis.base import ApiSpec, StreamAccumulator, StreamBase
from tracer.apis.keep import without_quotes
from tracer.config import TracerConfig
from tracer.failsafe import internal_error, warn_once
from tracer.redact import RECORDED_REQUEST_HEADERS, RECORDED_RESPONSE_HEADERS, safe_url
from tracer.routes import RouteMatch
from tracer.sse import NDJSONDecoder, SSEDecoder
from tracer.timeline import ChunkTimeline

if TYPE_CHECKING:
    from mlflow.entities import LiveSpan

__all__ = ["BATCH_BYTES", "ContentDecoder", "Headers", "Recorder", "RequestInfo"]

_TEXT_PREVIEW_CHARS = 2000
#: The quoted sample a stream problem ends with (``stream event is not JSON: '...'``).
_QUOTED = re.compile(r": (['\"]).*\Z", re.DOTALL)
_SNIFF_BYTES = 65536
#: How many bytes of an unlabelled body tell its framing (``event:``, ``data:``, ``{``).
_FRAMING_BYTES = 6
_SSE_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")
#: A stream's chunks are parsed once this many bytes of them wait (or at its end, or when one
#: may end it): in a batch, parsing costs less than chunk by chunk, and memory stays bounded.
BATCH_BYTES = 16384
_UNREAD = object()
#: Bytes of a chunk kept to find an end marker cut across two chunks (longer than any marker).
_MARKER_TAIL = 32
#: Deeper JSON cannot be recorded (MLflow's serialisation recurses); no LLM payload nests so.
MAX_DEPTH = 128


def nests_deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` has containers nested more than ``limit`` levels deep (no recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


class Headers(Protocol):
    """Case-insensitive header look-up (``httpx.Headers`` and ``httpx2.Headers`` both fit)."""

    def get(self, key: str, default: Any = None) -> Any: ...


class ContentDecoder(Protocol):
    """An incremental content-encoding decoder (httpx's own decoders fit)."""

    def decode(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class RequestInfo:
    """What the recorder needs of a request, free of any HTTP library's types."""

    __slots__ = ("body", "form", "headers", "host", "method", "path", "port", "url")

    def __init__(
        self,
        method: str,
        url: str,
        host: str,
        port: int | None,
        headers: Headers,
        body: bytes | None,
        path: str = "",
        form: dict[str, Any] | None = None,
    ) -> None:
        self.form = form  # the fields of a multipart upload not read into ``body``
        self.path = path
        self.method = method
        self.url = url
        self.host = host
        self.port = port
        self.headers = headers
        self.body = body


class Recorder:
    """Records one request/response exchange to an LLM endpoint as one span.

    What happens on the caller's thread is kept to what cannot wait: when the request is sent,
    its route, the time and the context; for each chunk of a stream, keeping a reference to
    it. The request is parsed and the span described when the call ends; a stream's chunks are
    parsed in batches (:data:`BATCH_BYTES`, or at once when a chunk may end the stream), and
    the first ones only after they have been handed on, so nothing delays a chunk.
    """

    __slots__ = (
        "_abandoned",
        "_accumulator",
        "_api",
        "_binary",
        "_body",
        "_body_size",
        "_chunk_count",
        "_decode_error",
        "_decoder",
        "_done",
        "_eager",
        "_end_markers",
        "_first_chunk_ms",
        "_lock",
        "_parsing",
        "_pending",
        "_pending_bytes",
        "_problems",
        "_request",
        "_request_body",
        "_response_attrs",
        "_response_headers",
        "_route",
        "_sniff",
        "_sse",
        "_stamp",
        "_started",
        "_status",
        "_stream_type",
        "_tail",
        "_timeline",
        "_tools",
        "_unlabelled",
        "_usage_key",
        "config",
        "request_model",
        "span",
    )

    def __init__(self, route: RouteMatch, request: RequestInfo, config: TracerConfig) -> None:
        self.config = config
        self._problems: list[str] = []
        self._done = False
        self._abandoned: str | None = None  # why the caller never finished the body
        self._lock = threading.Lock()
        self._status = 0
        self._response_attrs: dict[str, Any] = {}
        self._decoder: ContentDecoder | None = None
        self._sse: SSEDecoder | NDJSONDecoder | None = None  # a stream's event decoder
        self._stream_type: type[SSEDecoder] | type[NDJSONDecoder] | None = None
        self._response_headers: Headers | None = None
        self._accumulator: StreamAccumulator | None = None
        self._body: list[bytes] | None = None
        self._binary: str | None = None  # the media type of a binary answer, only counted
        self._body_size = 0
        self._parsing = True
        self._chunk_count = 0
        self._first_chunk_ms: float | None = None
        self._sniff: bytearray | None = None  # a stream's first bytes, until an event arrives
        self._unlabelled = False  # a body whose first bytes say whether it is a stream
        self._decode_error: str | None = None
        # A stream's chunks not parsed yet; until its first event, at most one, with the
        # time it arrived (``_stamp``), so the time to first chunk is exact.
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._stamp = 0
        self._end_markers: tuple[bytes, ...] = ()
        self._tail = b""  # the end of the last chunk, for a marker cut across two
        self._eager = False  # parse each chunk at once: an ending event may be under way
        self._route = route
        self._request = request
        self._request_body: Any = _UNREAD
        self._api: ApiSpec | None = route.api  # None: the body says (Databricks invocations)
        self._tools: list[Any] | None = None
        self.request_model: str | None = None
        # MLflow's own autolog for the sending SDK records the call's usage: the trace must
        # count it once, so this span keeps it under its own name. Decided now: it looks at
        # the call stack of the request.
        self._usage_key = (
            "tracer.tokenUsage"
            if spans.autolog_records(request.headers.get("user-agent") or "")
            else "mlflow.chat.tokenUsage"
        )
        parent = spans.active_parent()
        # the traceparent header needs the span's ids: such a span starts now
        pending = spans.pending(parent, config.export, defer=not config.propagate_context)
        if pending is not None:
            if route.api is not None:  # what it is called should describing it fail
                pending.name, pending.span_type = route.api.operation, route.api.span_type
            self.span: LiveSpan | spans.PendingSpan = pending
        else:
            name, span_type, inputs, attributes = self._describe()
            self.span = spans.start(name, span_type, parent, inputs, attributes, config.export)
        self._started = time.perf_counter_ns()
        self._timeline: ChunkTimeline | None = None
        if config.chunk_events != "off":
            self._timeline = ChunkTimeline(
                config.chunk_events,
                self._started,
                time.time_ns(),
                max_bytes=config.max_body_bytes,
                values=config.capture_content and config.redact is None,
                media=config.capture_media,
            )

    @property
    def api(self) -> ApiSpec:
        """The API of the call: by its route, else by its request body."""
        if self._api is None:
            self._api = routes.api_for_body(self._body_of_request())
        return self._api

    def _body_of_request(self) -> Any:
        if self._request_body is _UNREAD:
            self._request_body = self._parse_request(self._request)
        return self._request_body

    def _describe(self) -> tuple[str, str, Any, dict[str, Any]]:
        """The span's name, type, inputs and attributes, from the request."""
        config, request, route = self.config, self._request, self._route
        body = self._body_of_request()
        request_body = body if isinstance(body, dict) else {}
        api = self.api
        model = request_body.get("model")
        self.request_model = (
            model
            if isinstance(model, str) and model
            else route.model or route.endpoint or route.deployment
        )

        # The request is walked once: its parameters (attributes) are scrubbed, and the inputs
        # and tools are built from them; only the content keys are scrubbed on their own.
        media = not config.capture_media
        deep = nests_deeper(body, MAX_DEPTH)
        if config.capture_content:
            attributes = {k: v for k, v in request_body.items() if k not in api.content_keys}
        else:  # only what the API's allow-list keeps, in the inputs and the attributes alike
            attributes = api.strip_request(request_body)
        if deep:  # hostile input: keep the parameters that are not too deep
            for key in [k for k, v in attributes.items() if nests_deeper(v, MAX_DEPTH)]:
                del attributes[key]
                self._problems.append(
                    f"request parameter {key!r} nests deeper than {MAX_DEPTH} levels; not recorded"
                )
        attributes = redact.scrub(attributes, media=media)
        self._tools = api.tools(attributes)
        inputs: Any = None
        if body is None:
            pass
        elif not config.capture_content:
            inputs = dict(attributes)
        elif deep:
            self._problems.append(f"the inputs nest deeper than {MAX_DEPTH} levels; not recorded")
        elif isinstance(body, dict):
            inputs = {
                k: attributes[k] if k in attributes else redact.scrub(v, media=media)
                for k, v in body.items()
            }
        else:
            inputs = redact.scrub(body, media=media)
        inputs = self._redacted(inputs, "inputs")
        attributes["tracer.api"] = api.name
        provider = semconv.provider(
            api,
            request.host,
            request.path,
            route.deployment,
            route.endpoint,
            request.headers.get("user-agent") or "",
        )
        attributes.update(semconv.request_attributes(api, provider, self.request_model, attributes))
        if api.message_format:
            attributes["mlflow.message.format"] = api.message_format
        if route.deployment:
            attributes["azure.openai.deployment"] = route.deployment
        if route.endpoint:
            attributes["databricks.serving_endpoint"] = route.endpoint
        attributes["http.request.method"] = request.method
        attributes["url.full"] = safe_url(request.url)
        attributes["server.address"] = request.host
        if request.port is not None:
            attributes["server.port"] = request.port
        retry = request.headers.get("x-stainless-retry-count")
        if retry is not None and retry.isdigit():
            attributes["http.request.resend_count"] = int(retry)
        for name in RECORDED_REQUEST_HEADERS:
            value = request.headers.get(name)
            if value is not None:
                attributes[f"http.request.header.{name}"] = value
        name = f"{api.operation} {self.request_model}" if self.request_model else api.operation
        return name, api.span_type, inputs, attributes

    def _describe_pending(self, span: spans.PendingSpan) -> None:
        """Fill in a span started when the request was sent; the request's problems come
        first, as they would have had it been described then."""
        known = len(self._problems)
        span.name, span.span_type, span.inputs, span.attributes = self._describe()
        if known:
            self._problems[:] = self._problems[known:] + self._problems[:known]

    @classmethod
    def begin(
        cls, route: RouteMatch, request: RequestInfo, config: TracerConfig
    ) -> Recorder | None:
        """Start recording, or return ``None`` (the request then goes on untraced)."""
        try:
            if not spans.ready():
                return None
            return cls(route, request, config)
        except Exception as exc:
            internal_error("starting a span", exc, strict=config.strict)
            return None

    # --- events from the transport -------------------------------------------------------

    def on_response(
        self,
        status: int,
        headers: Headers,
        decoder: Callable[[], ContentDecoder] | None,
        preloaded: bytes | None = None,
    ) -> None:
        """The response head arrived. ``decoder`` builds the content-encoding decoder;
        ``preloaded`` is an already-read (decoded) body, which ends the recording at once."""
        try:
            self._status = status
            self._response_attrs["http.response.status_code"] = status
            self._response_headers = headers  # recorded when the call ends
            content_type = (headers.get("content-type") or "").lower()
            if "event-stream" in content_type:
                self._stream_type = SSEDecoder  # set up with its first chunk
            elif "ndjson" in content_type:
                self._stream_type = NDJSONDecoder
            elif self.api.binary_response and status < 400 and "json" not in content_type:
                self._binary = content_type or "application/octet-stream"
            else:
                self._body = []
                # A stream the server did not label (a gateway, a proxy rewriting headers, a
                # test double) is told by its first bytes, as the SDK reads it by its request.
                self._unlabelled = status < 400 and self.api.streams
            if preloaded is not None:
                if self._unlabelled:
                    self._sniff_body(preloaded, final=True)
                else:
                    self._start_stream()
                    self._stamp = time.perf_counter_ns()  # all of it arrived now
                    self._feed(preloaded)
                self._end_of_body()
            elif decoder is not None:
                self._decoder = decoder()
        except Exception as exc:
            self._internal(exc)

    def note_cassette(self, path: str, *, replayed: bool) -> None:
        """The call went through a cassette: answered from it (``replayed``) or recorded."""
        self._response_attrs["tracer.cassette"] = path
        self._response_attrs["tracer.replayed"] = replayed

    def _start_stream(self) -> None:
        """Set up a stream's decoder and accumulator, once (not before its first chunk)."""
        if self._sse is not None or self._stream_type is None:
            return
        self._sse = self._stream_type(max_line_bytes=self.config.max_body_bytes)
        self._accumulator = self.api.new_stream()
        self._end_markers = self._accumulator.end_markers
        self._sniff = bytearray()

    def _record_response_headers(self) -> None:
        headers, self._response_headers = self._response_headers, None
        if headers is None:
            return
        attrs = self._response_attrs
        for name in RECORDED_RESPONSE_HEADERS:
            value = headers.get(name)
            if value is not None:
                attrs[f"http.response.header.{name}"] = (
                    safe_url(value) if name == "location" else value
                )

    def on_chunk(self, chunk: bytes) -> None:
        """A piece of the raw (possibly compressed) response body arrived.

        A stream's chunk is only kept here (decoded first if the body is compressed, so that
        an event ending the stream is seen in it): until the first event, the previous chunk
        is parsed now (the caller has had it); after it, chunks are parsed in batches, or at
        once when one may end the stream (it holds an end marker, also one cut across two
        chunks)."""
        if self._done or not self._parsing:
            return
        if self._stream_type is None:
            if self._unlabelled:
                decoded = self._decoded(chunk)
                if decoded is not None:
                    self._sniff_body(decoded, final=False)
                return
            self._take(chunk)
            return
        if self._first_chunk_ms is None and self._pending:
            self._drain()
            if self._done or not self._parsing:
                return
        decoded = self._decoded(chunk)
        if decoded is None:
            return
        self._stream_chunk(decoded)

    def _sniff_body(self, data: bytes, *, final: bool) -> None:
        """Keep the (decoded) start of an unlabelled body until its first bytes tell whether it
        is the API's stream; if it is, read it as one from there on."""
        try:
            self._feed(data)
            if self._body is None:  # too large: passed through unparsed
                self._unlabelled = False
                return
            head = b"".join(self._body)
            start = head.lstrip()
            if not final and len(start) < _FRAMING_BYTES and b"\n" not in start:
                return  # too little to tell yet
            self._unlabelled = False
            framing = self._framing(start)
            if framing is None:
                return
            self._stream_type = framing
            self._body, self._body_size = None, 0
            self._response_attrs["stream.unlabelled"] = True
            if head:
                self._stream_chunk(head)
        except Exception as exc:
            self._internal(exc)

    def _framing(self, start: bytes) -> type[SSEDecoder] | type[NDJSONDecoder] | None:
        """The stream decoder an unlabelled body's first bytes call for: SSE field lines
        (never JSON, so whatever the request said), or NDJSON objects for an API that streams
        them when its request asked for a stream."""
        if start.startswith(_SSE_FIELDS):
            return SSEDecoder
        if self.api.stream_framing == "ndjson" and start.startswith(b"{"):
            request = self._body_of_request()
            if isinstance(request, dict) and request.get("stream", self.api.streams_by_default):
                return NDJSONDecoder
        return None

    def _stream_chunk(self, chunk: bytes) -> None:
        """A decoded chunk of a stream: kept, and parsed when its time comes."""
        stream_type = self._stream_type
        assert stream_type is not None
        if self._timeline is not None:
            self._timeline.chunk(time.perf_counter_ns())
        self._pending.append(chunk)
        if self._first_chunk_ms is None:
            self._stamp = time.perf_counter_ns()
            # Before the stream is set up (with its first parse) only the markers every API
            # shares are known: an error event first still ends the span at once.
            markers = self._end_markers or StreamBase.end_markers
        else:
            self._pending_bytes += len(chunk)
            markers = self._end_markers
        tail = self._tail
        if len(chunk) >= _MARKER_TAIL:
            self._tail = chunk[-_MARKER_TAIL:]
        else:
            self._tail = (tail + chunk)[-_MARKER_TAIL:]
        eager = self._eager
        if not eager:
            seam = tail + chunk[:_MARKER_TAIL]
            for marker in markers:
                if marker in chunk or marker in seam:
                    eager = True
                    break
        if eager:
            # The event that may end the stream could be cut here: the chunks that follow
            # are parsed at once too, until one ends where an event ends.
            self._eager = not chunk.endswith(stream_type.EVENT_ENDS)
            self._drain()
        elif self._pending_bytes >= BATCH_BYTES:
            self._drain()

    def _drain(self) -> None:
        """Parse the chunks that wait (a stream's: already decoded)."""
        try:
            self._start_stream()
        except Exception as exc:
            self._internal(exc)
            return
        pending = self._pending
        self._pending, self._pending_bytes = [], 0
        for chunk in pending:
            if self._done or not self._parsing:
                return
            if self._timeline is not None:
                self._timeline.parsing()
            try:
                self._feed(chunk)
            except Exception as exc:
                self._internal(exc)

    def _take(self, chunk: bytes) -> None:
        """Decode and parse one chunk of a body that is not a stream."""
        try:
            decoded = self._decoded(chunk)
            if decoded is not None:
                self._feed(decoded)
        except Exception as exc:
            self._internal(exc)

    def _decoded(self, chunk: bytes) -> bytes | None:
        """``chunk`` through the content-encoding decoder, if any; ``None`` if it does not
        decode (parsing stops there, as httpx fails on it too)."""
        if self._decoder is None:
            return chunk
        try:
            return self._decoder.decode(chunk)
        except Exception as exc:
            self._undecodable(exc)
            return None

    def on_eof(self) -> None:
        """The response body was read to its end."""
        if self._done:
            return
        self._drain()  # also sets up a stream that had no chunk
        if self._done:
            return
        try:
            if self._parsing and self._decoder is not None:
                try:
                    self._feed(self._decoder.flush())
                except Exception as exc:
                    self._undecodable(exc)
            self._end_of_body()
        except Exception as exc:
            self._internal(exc)

    def on_close(self) -> None:
        """The caller closed the response (possibly before reading it all) or dropped it."""
        if self._done:
            return
        try:
            self._finish()
        except Exception as exc:
            self._internal(exc)

    def on_abandoned(self, at_ns: int, reason: str) -> None:
        """The caller dropped the response without closing it (``reason`` is
        ``"garbage-collected"``), or it was still open at exit (``"open at exit"``), at
        ``at_ns`` (``time.time_ns()``): the span ends then, with what was read. Called by
        :mod:`tracer.reaper`, never from the finalizer itself."""
        if self._done:
            return
        self._abandoned = reason
        try:
            self._finish(end_time_ns=at_ns)
        except Exception as exc:
            self._internal(exc)

    def on_error(self, exc: BaseException) -> None:
        """The inner transport raised ``exc`` (sending, or reading the body); it is re-raised
        unchanged by the caller of this method."""
        if self._done:
            return
        try:
            self._finish(exception=exc)
        except Exception as inner:
            self._internal(inner)

    # --- internals -----------------------------------------------------------------------

    def _recordable(self, value: Any, field: str) -> Any:
        """``value`` as it may be recorded: not nested too deeply, credentials in URLs masked,
        inline media omitted (unless configured), then the user's redaction applied."""
        if nests_deeper(value, MAX_DEPTH):
            self._problems.append(f"the {field} nest deeper than {MAX_DEPTH} levels; not recorded")
            return None
        return self._redacted(redact.scrub(value, media=not self.config.capture_media), field)

    def _redacted(self, value: Any, field: str) -> Any:
        """``value`` after the user's redaction (``TracerConfig.redact``), if any. A redaction
        that fails records nothing rather than too much."""
        if self.config.redact is None or value is None:
            return value
        try:
            return self.config.redact(value, field)
        except Exception as exc:
            self._problems.append(
                f"the redact function raised {type(exc).__name__} on the {field}; "
                f"{field} not recorded"
            )
            warn_once(
                ("redact", field, type(exc).__name__),
                "tracer: TracerConfig.redact raised %s: %s; the span's %s are not recorded",
                type(exc).__name__,
                exc,
                field,
            )
            return None

    def _parse_request(self, request: RequestInfo) -> Any:
        body = request.body
        if body is None and request.form is not None:
            return request.form
        if body is None:
            self._problems.append("request body was not available (streamed upload)")
            return None
        if len(body) > self.config.max_body_bytes:
            self._problems.append(
                f"request body of {len(body)} bytes exceeds TRACER_MAX_BODY_BYTES "
                f"({self.config.max_body_bytes}); not parsed"
            )
            return None
        content_type = request.headers.get("content-type") or ""
        if "multipart/" in content_type.lower():
            try:
                form = multipart.form_of_body(content_type, body)
            except Exception as exc:  # a malformed upload is the server's to refuse
                self._problems.append(f"request body is not a readable form: {exc}")
                return None
            if form is not None:
                return form
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            self._problems.append(f"request body is not JSON: {exc}")
            return None

    def _feed(self, data: bytes) -> None:
        if not data or not self._parsing:
            return
        if self._sse is not None:
            if self._sniff is not None and len(self._sniff) < _SNIFF_BYTES:
                self._sniff.extend(data[: _SNIFF_BYTES - len(self._sniff)])
            for event in self._sse.feed(data):
                self._on_event(event.event, event.data)
                if self._done:
                    return
        elif self._binary is not None:
            self._body_size += len(data)
        elif self._body is not None:
            self._body_size += len(data)
            if self._body_size > self.config.max_body_bytes:
                self._stop_parsing(
                    f"response body exceeds TRACER_MAX_BODY_BYTES ({self.config.max_body_bytes});"
                    " not parsed"
                )
            else:
                self._body.append(data)

    def _on_event(self, event: str, data: str) -> None:
        assert self._accumulator is not None
        self._sniff = None
        if data != "[DONE]":
            self._chunk_count += 1
            if self._timeline is not None:
                self._timeline.event(data)
            if self._first_chunk_ms is None:
                self._first_chunk_ms = (self._stamp - self._started) / 1e6
        self._accumulator.add(event, data)
        if self._accumulator.ended:
            # Ends the span now: some SDKs raise on an error event and keep the response open.
            self._finish()

    def _end_of_body(self) -> None:
        if self._sse is not None and self._parsing:
            for event in self._sse.flush():
                self._on_event(event.event, event.data)
                if self._done:
                    return
        self._finish()

    def _undecodable(self, exc: Exception) -> None:
        """The body does not match its Content-Encoding: httpx fails on it as we did."""
        self._stop_parsing(f"response body could not be decoded: {exc}")
        self._decode_error = f"{type(exc).__name__}: {exc}"

    def _stop_parsing(self, problem: str) -> None:
        self._parsing = False
        self._problems.append(problem)
        self._body = None

    def _internal(self, exc: Exception) -> None:
        """An error inside the tracer: end the span with what it has, then report it."""
        self._parsing = False
        if not self._done:
            self._problems.append(f"tracer internal error: {type(exc).__name__}: {exc}")
            # If it fails, _finish still ended the span with that failure named; the first
            # error is the one reported.
            with contextlib.suppress(Exception):
                self._finish()
        internal_error("recording a response", exc, strict=self.config.strict)

    def _response_object(self, failed: bool) -> Any:
        if self._accumulator is not None and (
            self._chunk_count or not (self._sniff or b"").strip()
        ):
            return self._accumulator.result()
        if self._accumulator is not None:
            # Labelled text/event-stream but not one event in it: read it as a plain body.
            self._body, self._body_size = [bytes(self._sniff or b"")], len(self._sniff or b"")
            self._accumulator = self._sse = None
        if self._binary is not None:
            return {"content_type": self._binary, "size": self._body_size}
        if not self._body:
            if self._parsing and not failed and self._status not in (0, 204, 304):
                self._problems.append("response body is empty")
            return None
        raw = b"".join(self._body)
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            if self.api.text_response and self._status < 400:  # e.g. a transcript as text
                return {"text": raw.decode("utf-8", errors="replace")}
            self._problems.append("response body is not JSON")
            text = raw[:_TEXT_PREVIEW_CHARS].decode("utf-8", errors="replace")
            return {"text": text}

    def _finish(
        self, exception: BaseException | None = None, end_time_ns: int | None = None
    ) -> None:
        """End the span, once, with everything known; if working that out fails, end it
        anyway with the failure named, then let the failure be reported."""
        if self._pending and not self._done:
            self._drain()  # what arrived is recorded, also when the caller stopped reading
        with self._lock:
            if self._done:
                return
            self._done = True
        reaper.forget(self)
        if end_time_ns is None:  # now, not after MLflow's set-up of the span (seconds at first)
            end_time_ns = time.time_ns()
        try:
            self._record_response_headers()
            self._start_stream()  # a stream that ended before its first chunk
            if isinstance(self.span, spans.PendingSpan):
                self._describe_pending(self.span)
            outputs, attrs, error = self._result(exception)
        except Exception as failure:
            problem = f"tracer internal error: {type(failure).__name__}: {failure}"
            spans.finish(
                self.span,
                outputs=None,
                attributes={**self._response_attrs, "tracer.problems": [*self._problems, problem]},
                exception=exception,
                end_time_ns=end_time_ns,
            )
            raise
        if not self._sampled_in(attrs, exception is not None or error is not None):
            return
        events = None
        if self._timeline is not None and self._accumulator is not None:
            events = self._timeline.events()
            if self._timeline.truncated:
                attrs.setdefault("tracer.problems", []).append(
                    "chunk events stopped at TRACER_MAX_BODY_BYTES of values"
                )
        spans.finish(
            self.span,
            outputs=outputs,
            attributes=attrs,
            tools=self._tools,
            exception=exception,
            error=error,
            end_time_ns=end_time_ns,
            events=events,
        )

    def _sampled_in(self, attrs: dict[str, Any], failed: bool) -> bool:
        """Whether ``TRACER_SAMPLE`` keeps this span (a root span still held, whose trace it
        alone makes); a kept span says why. One left out is counted."""
        rule = self.config.sample
        span = self.span
        if rule is None or not isinstance(span, spans.PendingSpan) or span.local:
            return True
        usage = attrs.get(self._usage_key)
        tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
        duration_ms = (time.perf_counter_ns() - self._started) / 1e6
        reason = rule.decide(failed=failed, duration_ms=duration_ms, tokens=tokens)
        if reason is None:
            sampling.count_left_out()
            return False
        attrs["tracer.sample.reason"] = reason
        attrs["tracer.sample.ratio"] = rule.ratio
        return True

    def _result(
        self, exception: BaseException | None
    ) -> tuple[Any, dict[str, Any], tuple[str, str] | None]:
        """The span's outputs, response attributes and API error (if any)."""
        response = self._response_object(failed=exception is not None)
        summary = self.api.summarize(response)
        outputs = self._recordable(self.api.outputs(response, self.config), "outputs")
        attrs = self._response_attrs
        attrs.update(summary.attributes)
        if self.config.capture_content:
            # Read from the outputs as recorded (scrubbed and redacted), never from more.
            reply = self.api.reply_messages(outputs)
            if reply is not None:  # what MLflow's trace UI shows as the assistant's turn
                attrs["mlflow.chat.messages"] = reply
        attrs.update(semconv.response_attributes(summary))
        model = summary.model or self.request_model
        if model:
            attrs["mlflow.llm.model"] = model
        if summary.usage:
            attrs[self._usage_key] = summary.usage
        if self._usage_key != "mlflow.chat.tokenUsage":
            # MLflow's store reads usage from these too when a span has none of its own.
            for name in semconv.USAGE_ATTRIBUTES:
                attrs.pop(name, None)
        if self._accumulator is not None:
            attrs.update(self._accumulator.attributes)
            attrs["stream.completed"] = self._accumulator.completed
            attrs["stream.chunk_count"] = self._chunk_count
            if self._first_chunk_ms is not None:
                attrs["stream.time_to_first_chunk_ms"] = round(self._first_chunk_ms, 3)
            problems = self._accumulator.problems
            if not self.config.capture_content:  # they quote the start of a bad event
                problems = [_QUOTED.sub(": (content not recorded)", p) for p in problems]
            self._problems.extend(problems)
            if self._abandoned is not None:
                attrs["stream.abandoned"] = True
        if self._abandoned == "open at exit":
            self._problems.append("the response was still open at exit; recorded what was read")
        elif self._abandoned is not None and self._accumulator is None:
            self._problems.append("the response was dropped before its body was read")
        if self._sse is not None:
            if self._sse.oversized_lines:
                self._problems.append(
                    f"{self._sse.oversized_lines} stream line(s) exceeded TRACER_MAX_BODY_BYTES"
                    " and were skipped"
                )
            if self._sse.oversized_events:
                self._problems.append(
                    f"{self._sse.oversized_events} stream event(s) exceeded "
                    "TRACER_MAX_BODY_BYTES and were skipped"
                )
            if self._sse.invalid_utf8_lines:
                self._problems.append(
                    f"{self._sse.invalid_utf8_lines} stream line(s) were not valid UTF-8"
                )
        if self._problems:
            attrs["tracer.problems"] = self._problems
        error = None
        if exception is None and (self._status >= 400 or summary.error):
            kind = f"HTTP {self._status}" if self._status >= 400 else "StreamError"
            message = redact.mask_urls(summary.error or f"HTTP {self._status}")
            if not self.config.capture_content:  # APIs quote the offending request value
                message = without_quotes(message)
            error = (kind, message)
        elif exception is None and self._decode_error is not None:
            error = ("DecodingError", self._decode_error)
        return outputs, attrs, error
