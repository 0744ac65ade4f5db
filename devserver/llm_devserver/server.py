"""A realistic, deterministic, local LLM API server for tests and demos (127.0.0.1 only).

The server speaks HTTP/1.1 with keep-alive, mimics the response shapes and headers of the real
services field for field, and can be steered per request through ``x-devserver-*`` request
headers (errors, retries, compression, chunk timing, broken streams, ...).

Example::

    from openai import OpenAI
    from llm_devserver import DevServer

    with DevServer() as server:
        client = OpenAI(base_url=server.base_url, api_key="test")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert server.requests[-1].path == "/v1/chat/completions"

Endpoints (``POST`` unless noted; "any prefix" means any path ending that way):

* ``.../chat/completions`` (any prefix) -- OpenAI chat completions, streaming or not.
* ``.../completions`` (any prefix, not chat) -- legacy completions (``text_completion``).
* ``.../embeddings`` (any prefix) -- embeddings (float or base64, default 8 dimensions).
* ``.../responses`` (any prefix) -- the Responses API, with typed SSE events when streaming.
* ``.../images/generations`` (any prefix) -- image generation: small real PNGs as ``b64_json``
  or URLs (``GET /v1/images/files/img-...png`` serves them); ``dall-e-2`` (default),
  ``dall-e-3`` (revised prompt, ``n=1``) and ``gpt-image-*`` (``usage``, streaming with
  ``partial_images``).
* ``/v1/messages`` (and ``/v1/messages/count_tokens``) -- the Anthropic Messages API; needs
  ``x-api-key`` (or a bearer token) and ``anthropic-version`` headers.
* ``/openai/deployments/{deployment}/chat/completions|completions|embeddings|images/generations``
  ``?api-version=...`` and ``/openai/v1/chat/completions|completions|responses|embeddings|``
  ``images/generations`` -- Azure OpenAI
  (content-filter annotations, real model names, ``apim-request-id``, Azure error bodies).
* ``/serving-endpoints/{endpoint}/invocations`` -- Databricks Model Serving: the body's
  ``messages`` / ``prompt`` / ``input`` picks chat / completions / embeddings; the endpoint
  name is the model (``/serving-endpoints/chat/completions`` is plain chat).
* ``/{v}/models/{model}:generateContent|streamGenerateContent|embedContent|``
  ``batchEmbedContents|countTokens`` (``{v}``: ``v1``, ``v1beta``, ``v1alpha``) -- Google Gemini
  (the Developer API as ``google-genai`` calls it): ``functionCall`` parts, thought summaries,
  ``usageMetadata``, SSE streams with ``?alt=sse``; needs ``x-goog-api-key`` / ``?key=`` (any
  value) or a bearer token, else 403. Google error bodies (``{"error": {"code", "message",
  "status"}}``).
* ``/{v}/projects/{p}/locations/{l}/publishers/google/models/{model}:...`` (and
  ``/{v}/publishers/google/models/{model}:...``) -- the same on Vertex AI, plus ``:predict``
  embeddings; needs a bearer token or an API key, else 401.
* ``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/embeddings``, ``/api/show``,
  ``GET /api/tags|ps|version`` -- Ollama's native API: NDJSON streams
  (``application/x-ndjson``, streamed unless ``"stream": false``), ``{"error": "..."}`` errors.
* ``.../moderations`` (any prefix) -- OpenAI moderations (deterministic flags for words like
  "kill"; strings, or multimodal ``text``/``image_url`` parts).
* ``.../audio/transcriptions`` and ``.../audio/translations`` (any prefix) -- uploads as
  ``multipart/form-data``; ``json``/``text``/``srt``/``vtt``/``verbose_json``/``diarized_json``,
  token or duration ``usage``, ``transcript.text.*`` SSE streams for ``gpt-4o(-mini)-transcribe``.
* ``.../audio/speech`` (any prefix) -- small valid (silent) ``mp3``/``opus``/``aac``/``flac``/
  ``wav``/``pcm`` files, sent chunked; ``stream_format: "sse"`` streams ``speech.audio.*`` events.
* ``/v2/chat``, ``/v2/embed``, ``/v2/rerank`` (any prefix) -- Cohere's v2 API (typed SSE events
  when ``"stream": true``, tool plans and calls, citations); needs a bearer token, else 401;
  ``{"id", "message"}`` error bodies.
* ``/openai/v1/chat/completions``, ``/openai/v1/audio/transcriptions|translations``,
  ``GET /openai/v1/models`` from a Groq client (``User-Agent: Groq/Python ...`` or
  ``AsyncGroq/...``, or a ``gsk_...`` bearer key) -- Groq: ``x_groq`` ids, timing ``usage``, the
  stream's usage in the last chunk's ``x_groq.usage``. Other ``/openai/v1`` clients get Azure.
* ``GET /v1/models`` -- an OpenAI-style model list; ``GET /health`` -- ``{"status": "ok"}``.
* anything else -- 404 with an OpenAI-style error body.

Control headers (all optional, on the request; each API answers errors in its own format):

* ``x-devserver-status: <code>`` -- answer with that status and an error body.
* ``x-devserver-fail-mode: reset`` -- fail by dropping the connection without a response.
* ``x-devserver-fail-attempts: N`` -- fail (500, or the ``x-devserver-status`` code) while the
  request's ``x-stainless-retry-count`` header (default 0) is < N, then succeed (the ``cohere``
  SDK sends no such header: its retries all fail).
* ``x-devserver-encoding: gzip|deflate|br|identity`` -- force the response Content-Encoding.
* ``x-devserver-content-format: list`` -- chat message/delta ``content`` as a list of parts.
* ``x-devserver-chunk-delay-ms: N`` -- sleep N ms between stream events.
* ``x-devserver-stream-error-after: K`` -- after K events send the API's in-stream error event
  (Cohere: a ``message-end`` with ``finish_reason: "ERROR"``; binary speech audio just stops).
* ``x-devserver-disconnect-after: K`` -- after K events drop the connection mid-body.
* ``x-devserver-reasoning-tokens: N`` -- chat: report N reasoning tokens (billed as completion
  tokens, in ``completion_tokens_details``).
* ``x-devserver-stream-content-type: <type>|none`` -- label a stream with another
  ``Content-Type`` (``application/json``, ``text/plain``), or with none.
* ``x-devserver-reply: <text>`` -- exact reply text (percent-decoded).
* ``x-devserver-cached-tokens: N`` -- report N cached prompt tokens (Anthropic:
  ``cache_read_input_tokens``; Gemini: ``cachedContentTokenCount``).
* ``x-devserver-cache-creation-tokens: N`` -- Anthropic ``cache_creation_input_tokens``.
* ``x-devserver-refusal: <text>`` -- answer with a refusal (percent-decoded; Gemini: a
  ``SAFETY`` stop without content).
* ``x-devserver-responses-end: completed|failed|incomplete|none`` -- how a Responses API
  answer ends (``none``: a stream without any terminal event).

Run ``llm-devserver [--port N]`` (or ``python -m llm_devserver``) to serve until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import re
import secrets
import socket
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from llm_devserver import anthropic as _anthropic
from llm_devserver import audio as _audio
from llm_devserver import azure as _azure
from llm_devserver import cohere as _cohere
from llm_devserver import gemini as _gemini
from llm_devserver import groq as _groq
from llm_devserver import ollama as _ollama
from llm_devserver.chat import chat_reply
from llm_devserver.common import (
    ApiError,
    Controls,
    JsonReply,
    Reply,
    StreamReply,
    rand_alnum,
)
from llm_devserver.completions import completions_reply
from llm_devserver.databricks import databricks_error, invocations_reply
from llm_devserver.embeddings import embeddings_reply
from llm_devserver.images import image_file, images_reply
from llm_devserver.responses import responses_reply

__all__ = ["DevServer", "RecordedRequest", "main"]

_Controls = Controls  # the historical private name
_MIN_GZIP_SIZE = 256
_OPENAI_VERSION = "2020-10-01"
_MODELS: tuple[tuple[str, int, str], ...] = (
    ("gpt-4o-mini", 1721172741, "system"),
    ("gpt-4o", 1715367049, "system"),
    ("gpt-4.1", 1744316542, "system"),
    ("gpt-4.1-mini", 1744318173, "system"),
    ("o3-mini", 1737146383, "system"),
    ("text-embedding-3-small", 1705948997, "system"),
)
_JSON_PARSE_ERROR = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)
_ANTHROPIC_PARSE_ERROR = "There was an error parsing the body of your request: invalid JSON."
_PARSE_ERRORS = {
    "anthropic": _ANTHROPIC_PARSE_ERROR,
    "gemini": "Invalid JSON payload received. Unexpected token.",
    "ollama": _ollama.PARSE_ERROR,
    "cohere": _cohere.PARSE_ERROR,
}
_COHERE: dict[str, Callable[[dict[str, Any], Controls], Reply]] = {
    "/v2/chat": _cohere.chat_reply,
    "/v2/embed": _cohere.embed_reply,
    "/v2/rerank": _cohere.rerank_reply,
}
_AUDIO_FORMS = ("/audio/transcriptions", "/audio/translations")
_OLLAMA_POST: dict[str, Callable[[dict[str, Any], Controls], Reply]] = {
    "/api/chat": _ollama.chat_reply,
    "/api/generate": _ollama.generate_reply,
    "/api/embed": _ollama.embed_reply,
    "/api/embeddings": _ollama.embeddings_reply,
    "/api/show": _ollama.show_reply,
}
_OLLAMA_GET: dict[str, Callable[[], dict[str, Any]]] = {
    "/api/tags": _ollama.tags_reply,
    "/api/ps": _ollama.ps_reply,
    "/api/version": _ollama.version_reply,
}
_AZURE_DEPLOYMENT = re.compile(
    r"/openai/deployments/([^/]+)/(chat/completions|completions|embeddings|images/generations)"
)
_AZURE_V1 = re.compile(
    r"/openai/v1/(chat/completions|completions|responses|embeddings|images/generations)"
)
_INVOCATIONS = re.compile(r"/serving-endpoints/([^/]+)/invocations")
_ONE_MINUTE = timedelta(minutes=1)
_ANTHROPIC_ORG = "5c0f6a8e-6a43-4d9e-9d5c-1f3b2a7c9e10"
_AZURE_APIS = {
    "chat/completions": "chat",
    "completions": "completions",
    "embeddings": "embeddings",
    "responses": "responses",
    "images/generations": "images",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as received by the :class:`DevServer`.

    Attributes:
        method: The HTTP method, e.g. ``"POST"``.
        path: The request target including the query string, e.g. ``"/v1/models?x=1"``.
        headers: Request headers with lower-cased names (repeated headers joined by ``", "``).
        body: The raw (de-chunked) request body.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.body)


# --------------------------------------------------------------------------------------------
# Compression
# --------------------------------------------------------------------------------------------


class _Encoder:
    """Incremental Content-Encoding compressor; each ``encode`` output is independently usable."""

    def __init__(self, encoding: str | None) -> None:
        self.encoding = encoding
        self._zlib: Any = None
        self._brotli: Any = None
        if encoding == "gzip":
            self._zlib = zlib.compressobj(6, zlib.DEFLATED, 31)
        elif encoding == "deflate":
            self._zlib = zlib.compressobj(6, zlib.DEFLATED, 15)
        elif encoding == "br":
            brotli = importlib.import_module("brotli")  # only needed when a client forces br
            self._brotli = brotli.Compressor()

    def encode(self, data: bytes) -> bytes:
        """Compress ``data`` and flush so the receiver can decode it immediately."""
        if self._zlib is not None:
            return bytes(self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH))
        if self._brotli is not None:
            return bytes(self._brotli.process(data) + self._brotli.flush())
        return data

    def finish(self) -> bytes:
        """Terminate the compressed stream."""
        if self._zlib is not None:
            return bytes(self._zlib.flush(zlib.Z_FINISH))
        if self._brotli is not None:
            return bytes(self._brotli.finish())
        return b""

    def oneshot(self, data: bytes) -> bytes:
        """Compress a whole body."""
        return self.encode(data) + self.finish()


def _accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            if q.startswith("q="):
                try:
                    return float(q[2:]) > 0
                except ValueError:
                    return True
            return True
    return False


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

_ERRORS: dict[int, tuple[str, str, str]] = {
    400: (
        "Invalid request (simulated by the dev server).",
        "invalid_request_error",
        "invalid_request_error",
    ),
    403: (
        "You are not allowed to access this resource.",
        "invalid_request_error",
        "permission_denied",
    ),
    404: (
        "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    408: ("Request timed out.", "server_error", "timeout"),
    409: ("Conflict: the request could not be completed.", "invalid_request_error", "conflict"),
    422: ("Unprocessable entity.", "invalid_request_error", "unprocessable_entity"),
    429: (
        "Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3, "
        "Requested 1. Please try again in 0s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        "server_error",
    ),
    502: ("Bad gateway.", "server_error", "bad_gateway"),
    503: (
        "The engine is currently overloaded, please try again later.",
        "server_error",
        "service_unavailable",
    ),
    504: ("Gateway timeout.", "server_error", "gateway_timeout"),
}


def _error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _simulated_error(status: int, model: str, api_key: str) -> dict[str, Any]:
    if status == 401:
        masked = f"{api_key[:3]}{'*' * 8}{api_key[-4:]}" if len(api_key) > 8 else "****"
        message = (
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        return _error_body(message, "invalid_request_error", "invalid_api_key")
    known = _ERRORS.get(status)
    if known is not None:
        message, type_, code = known
        return _error_body(message.format(model=model or "unknown"), type_, code)
    if status >= 500:
        return _error_body(f"Server error ({status}).", "server_error", "server_error")
    return _error_body(f"Request failed ({status}).", "invalid_request_error", "request_failed")


def _retryable(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Disconnect(Exception):
    """Raised inside the handler to drop the connection without finishing the response."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # 1,000 concurrent streams connect at once in the tests

    def __init__(self, address: tuple[str, int], owner: DevServer) -> None:
        self.owner = owner
        self.fingerprint = "fp_" + secrets.token_hex(5)
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # client went away, timeouts, ...
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tracer-devserver/0.1"
    sys_version = ""
    server: _HTTPServer

    # -- lifecycle -------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.owner.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        """Handle GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Handle POST."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Handle PUT."""
        self._dispatch()

    def do_PATCH(self) -> None:
        """Handle PATCH."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Handle DELETE."""
        self._dispatch()

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._started = time.monotonic()
        self._headers_sent = False
        self._flavor = "openai"  # which API's headers and error bodies this answer uses
        self._request_id = "req_011C" + rand_alnum(20)
        self._deployment: str | None = None
        self._api = "chat"
        self._api_version: str | None = None
        self._gemini_route: _gemini.GeminiRoute | None = None
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        try:
            body = self._read_body(headers)
        except (ValueError, OSError):
            self.close_connection = True
            return
        self.server.owner._record(RecordedRequest(self.command, self.path, headers, body))
        try:
            self._route(headers, body)
        except (_Disconnect, ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:
            self.close_connection = True
            if not self._headers_sent:
                try:
                    payload = _error_body(
                        f"The dev server failed: {type(exc).__name__}: {exc}", "server_error"
                    )
                    self._send_json(500, payload, headers, None)
                except OSError:
                    pass

    def _read_body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(headers.get("content-length", "0") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _route(self, headers: dict[str, str], body: bytes) -> None:
        split = urlsplit(self.path)
        path = split.path
        trimmed = path.rstrip("/")
        ctl = Controls.from_headers(headers)
        post = self.command == "POST"
        invocation = _INVOCATIONS.fullmatch(trimmed) if post else None
        gemini = _gemini.parse_path(trimmed) if post else None
        if gemini is not None:
            self._gemini(gemini, split.query, headers, body, ctl)
        elif trimmed.startswith("/api/"):
            self._ollama(trimmed, headers, body, ctl)
        elif post and trimmed.endswith(tuple(_COHERE)):
            self._cohere(trimmed, headers, body, ctl)
        elif trimmed.startswith("/openai/v1/") and _groq.is_groq(headers):
            self._groq(trimmed, headers, body, ctl)
        elif post and trimmed.startswith("/openai/"):
            self._azure(trimmed, split.query, headers, body, ctl)
        elif invocation is not None:
            self._flavor = "databricks"
            endpoint = unquote(invocation.group(1))
            fingerprint = self.server.fingerprint

            def invoke(request: dict[str, Any]) -> Reply:
                return invocations_reply(endpoint, request, ctl, fingerprint=fingerprint)

            self._call(headers, body, ctl, invoke, model_hint=endpoint)
        elif post and trimmed.endswith("/v1/messages"):
            self._flavor = "anthropic"
            self._call(
                headers,
                body,
                ctl,
                lambda request: _anthropic.messages_reply(request, ctl),
                precheck=lambda: _anthropic.check_headers(headers),
            )
        elif post and trimmed.endswith("/v1/messages/count_tokens"):
            self._flavor = "anthropic"
            self._call(
                headers,
                body,
                ctl,
                lambda request: _anthropic.count_tokens_reply(request, ctl),
                precheck=lambda: _anthropic.check_headers(headers),
            )
        elif post and trimmed.endswith("/moderations"):
            self._call(headers, body, ctl, lambda request: _audio.moderations_reply(request, ctl))
        elif post and trimmed.endswith("/audio/speech"):
            self._call(headers, body, ctl, lambda request: _audio.speech_reply(request, ctl))
        elif post and trimmed.endswith(_AUDIO_FORMS):
            translate = trimmed.endswith("/audio/translations")
            self._form_call(
                headers,
                body,
                ctl,
                lambda form: _audio.transcription_reply(form, ctl, translate=translate),
            )
        elif post and trimmed.endswith("/chat/completions"):
            fingerprint = self.server.fingerprint
            self._call(
                headers,
                body,
                ctl,
                lambda request: chat_reply(request, ctl, fingerprint=fingerprint),
            )
        elif post and trimmed.endswith("/completions"):
            fingerprint = self.server.fingerprint
            self._call(
                headers,
                body,
                ctl,
                lambda request: completions_reply(request, ctl, fingerprint=fingerprint),
            )
        elif post and trimmed.endswith("/embeddings"):
            self._call(headers, body, ctl, lambda request: embeddings_reply(request, ctl))
        elif post and trimmed.endswith("/responses"):
            self._call(headers, body, ctl, lambda request: responses_reply(request, ctl))
        elif post and trimmed.endswith("/images/generations"):
            origin = self._origin(headers)
            self._call(
                headers, body, ctl, lambda request: images_reply(request, ctl, origin=origin)
            )
        elif self.command == "GET" and (image := image_file(path)) is not None:
            if not self._maybe_fail(headers, ctl, ""):
                self._send_bytes(200, image, "image/png", ctl)
        elif self.command == "GET" and trimmed == "/v1/models":
            if not self._maybe_fail(headers, ctl, ""):
                data = [
                    {"id": mid, "object": "model", "created": created, "owned_by": owner}
                    for mid, created, owner in _MODELS
                ]
                self._send_json(200, {"object": "list", "data": data}, headers, ctl)
        elif self.command == "GET" and path == "/health":
            if not self._maybe_fail(headers, ctl, ""):
                self._send_json(200, {"status": "ok"}, headers, ctl)
        else:
            message = f"Invalid URL ({self.command} {path})"
            self._send_json(404, _error_body(message, "invalid_request_error"), headers, ctl)

    def _gemini(
        self,
        route: _gemini.GeminiRoute,
        query: str,
        headers: dict[str, str],
        body: bytes,
        ctl: Controls,
    ) -> None:
        """Google Gemini: the Developer API or (``publishers/google`` paths) Vertex AI."""
        self._flavor = "gemini"
        self._gemini_route = route
        if route.method not in _gemini.METHODS or (route.method == "predict" and not route.vertex):
            payload = _gemini.gemini_error(404, "Method not found.", route=route)
            self._send_json(404, payload, headers, ctl)
            return
        self._call(
            headers,
            body,
            ctl,
            lambda request: _gemini.gemini_reply(route, request, ctl, query=query),
            model_hint=route.model,
            precheck=lambda: _gemini.check_auth(headers, query, route.vertex),
        )

    def _ollama(self, path: str, headers: dict[str, str], body: bytes, ctl: Controls) -> None:
        """Ollama's native API (``/api/...``); unknown paths get gin's plain-text 404."""
        self._flavor = "ollama"
        post_handler = _OLLAMA_POST.get(path) if self.command == "POST" else None
        get_handler = _OLLAMA_GET.get(path) if self.command == "GET" else None
        if post_handler is not None:
            handler = post_handler
            self._call(headers, body, ctl, lambda request: handler(request, ctl))
        elif get_handler is not None:
            if not self._maybe_fail(headers, ctl, ""):
                self._send_json(200, get_handler(), headers, ctl)
        else:
            self._send_bytes(404, b"404 page not found", "text/plain", ctl)

    def _cohere(self, path: str, headers: dict[str, str], body: bytes, ctl: Controls) -> None:
        """Cohere's v2 API (``/v2/chat``, ``/v2/embed``, ``/v2/rerank``; any prefix)."""
        self._flavor = "cohere"
        handler = next(h for suffix, h in _COHERE.items() if path.endswith(suffix))
        self._call(
            headers,
            body,
            ctl,
            lambda request: handler(request, ctl),
            precheck=lambda: _cohere.check_auth(headers),
        )

    def _groq(self, path: str, headers: dict[str, str], body: bytes, ctl: Controls) -> None:
        """Groq's OpenAI-compatible API (``/openai/v1/...`` from a Groq client)."""
        self._flavor = "groq"
        api = path.removeprefix("/openai/v1")
        post = self.command == "POST"

        def check_auth() -> None:
            if not headers.get("authorization", "").lower().startswith("bearer "):
                raise ApiError("Invalid API Key", status=401, code="invalid_api_key")

        if post and api == "/chat/completions":
            fingerprint = self.server.fingerprint
            self._call(
                headers,
                body,
                ctl,
                lambda request: _groq.chat_completion_reply(request, ctl, fingerprint=fingerprint),
                precheck=check_auth,
            )
        elif post and api in _AUDIO_FORMS:
            translate = api == "/audio/translations"
            self._form_call(
                headers,
                body,
                ctl,
                lambda form: _audio.transcription_reply(
                    form, ctl, translate=translate, groq_id=_groq.request_id()
                ),
                precheck=check_auth,
            )
        elif self.command == "GET" and api == "/models":
            if not self._maybe_fail(headers, ctl, ""):
                self._send_json(200, _groq.models_reply(), headers, ctl)
        else:
            self._send_json(404, _groq.unknown_url(self.command, path), headers, ctl)

    def _azure(
        self, path: str, query: str, headers: dict[str, str], body: bytes, ctl: Controls
    ) -> None:
        """Azure OpenAI: a deployment path (``api-version`` required) or the ``/openai/v1`` API."""
        self._flavor = "azure"
        versions = parse_qs(query).get("api-version")
        self._api_version = versions[0] if versions else None
        deployment_match = _AZURE_DEPLOYMENT.fullmatch(path)
        v1_match = _AZURE_V1.fullmatch(path)
        if deployment_match is not None:
            deployment: str | None = unquote(deployment_match.group(1))
            api = _AZURE_APIS[deployment_match.group(2)]
            if not self._api_version:
                self._send_json(400, _azure.missing_api_version(), headers, ctl)
                return
        elif v1_match is not None:
            deployment, api = None, _AZURE_APIS[v1_match.group(1)]
        else:
            self._send_json(404, _azure.not_found(), headers, ctl)
            return
        self._deployment, self._api = deployment, api
        fingerprint = self.server.fingerprint

        def build(request: dict[str, Any]) -> Reply:
            name = deployment if deployment is not None else request.get("model")
            if not isinstance(name, str) or not name:
                raise ApiError("you must provide a model parameter")
            model = _azure.deployment_model(name, api)
            if api == "chat":
                return chat_reply(
                    request, ctl, fingerprint=fingerprint, model=model, azure_style=True
                )
            if api == "completions":
                return completions_reply(
                    request, ctl, fingerprint=fingerprint, model=model, azure_style=True
                )
            if api == "embeddings":
                return embeddings_reply(request, ctl, model=model)
            if api == "images":
                return images_reply(
                    request, ctl, origin=self._origin(headers), model=model, azure_style=True
                )
            return responses_reply(request, ctl, model=model)

        self._call(headers, body, ctl, build, model_hint=deployment)

    # -- one API call -----------------------------------------------------------------------

    def _call(
        self,
        headers: dict[str, str],
        body: bytes,
        ctl: Controls,
        build: Callable[[dict[str, Any]], Reply | _audio.BytesReply],
        *,
        model_hint: str | None = None,
        precheck: Callable[[], None] | None = None,
    ) -> None:
        """Simulated failures, then checks and JSON parsing, then ``build``'s reply."""
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            request = None
        if model_hint is None:
            model = request.get("model") if isinstance(request, dict) else None
            model_hint = model if isinstance(model, str) else ""
        if self._maybe_fail(headers, ctl, model_hint):
            return
        try:
            if precheck is not None:
                precheck()
            if request is None:
                raise ApiError(_PARSE_ERRORS.get(self._flavor, _JSON_PARSE_ERROR))
            if not isinstance(request, dict):
                raise ApiError("Invalid type for request body: expected an object.")
            reply = build(request)
        except ApiError as err:
            self._send_json(err.status, self._error_payload(err), headers, ctl)
            return
        self._send_reply(headers, ctl, reply)

    def _form_call(
        self,
        headers: dict[str, str],
        body: bytes,
        ctl: Controls,
        build: Callable[[_audio.Form], Reply | _audio.BytesReply],
        *,
        precheck: Callable[[], None] | None = None,
    ) -> None:
        """Like :meth:`_call`, for a ``multipart/form-data`` upload."""
        form: _audio.Form | None = None
        problem: ApiError | None = None
        try:
            form = _audio.parse_form(headers.get("content-type", ""), body)
        except ApiError as err:
            problem = err
        if self._maybe_fail(headers, ctl, (form.value("model") if form else None) or ""):
            return
        try:
            if precheck is not None:
                precheck()
            if form is None:
                raise problem or ApiError("Could not parse multipart form.")
            reply = build(form)
        except ApiError as err:
            self._send_json(err.status, self._error_payload(err), headers, ctl)
            return
        self._send_reply(headers, ctl, reply)

    def _send_reply(
        self, headers: dict[str, str], ctl: Controls, reply: Reply | _audio.BytesReply
    ) -> None:
        """Send a builder's reply: JSON, a plain body, or a stream."""
        if isinstance(reply, JsonReply):
            self._send_json(reply.status, reply.payload, headers, ctl, reply.headers)
        elif isinstance(reply, _audio.BytesReply):
            self._send_bytes(reply.status, reply.body, reply.content_type, ctl, api_headers=True)
        else:
            self._send_stream(ctl, reply)

    def _error_payload(self, err: ApiError) -> Any:
        """``err`` in the current API's error format."""
        if err.payload is not None:
            return err.payload
        if self._flavor == "anthropic":
            return _anthropic.anthropic_error(err.status, err.message, err.type, self._request_id)
        if self._flavor == "databricks":
            return databricks_error(err.status, err.message)
        if self._flavor == "gemini":
            return _gemini.gemini_error(err.status, err.message, route=self._gemini_route)
        if self._flavor == "ollama":
            return _ollama.ollama_error(err.status, err.message)
        if self._flavor == "cohere":
            return _cohere.cohere_error(err.status, err.message)
        return _error_body(err.message, err.type, err.code, err.param)

    # -- responses -------------------------------------------------------------------------

    def _api_headers(self) -> None:
        elapsed = max(1, int((time.monotonic() - self._started) * 1000))
        if self._flavor == "azure":
            for name, value in _azure.azure_headers(self._deployment, elapsed).items():
                self.send_header(name, value)
            return
        if self._flavor == "gemini":
            for name, value in _gemini.response_headers(elapsed).items():
                self.send_header(name, value)
            return
        if self._flavor == "ollama":
            return
        if self._flavor in ("cohere", "groq"):
            module = _cohere if self._flavor == "cohere" else _groq
            for name, value in module.response_headers(elapsed).items():
                self.send_header(name, value)
            return
        if self._flavor == "databricks":
            self.send_header("x-request-id", str(uuid.uuid4()))
            self.send_header("server-timing", f"request_processing;dur={elapsed}")
            return
        if self._flavor == "anthropic":
            reset = datetime.now(timezone.utc).replace(microsecond=0) + _ONE_MINUTE
            stamp = reset.isoformat().replace("+00:00", "Z")
            self.send_header("request-id", self._request_id)
            self.send_header("anthropic-organization-id", _ANTHROPIC_ORG)
            for kind, limit in (
                ("requests", 4000),
                ("input-tokens", 2000000),
                ("output-tokens", 400000),
                ("tokens", 2400000),
            ):
                prefix = f"anthropic-ratelimit-{kind}"
                self.send_header(f"{prefix}-limit", str(limit))
                self.send_header(f"{prefix}-remaining", str(limit - 1))
                self.send_header(f"{prefix}-reset", stamp)
            return
        self.send_header("x-request-id", "req_" + secrets.token_hex(16))
        self.send_header("openai-version", _OPENAI_VERSION)
        self.send_header("openai-organization", "devserver-org")
        self.send_header("openai-processing-ms", str(elapsed))
        self.send_header("x-ratelimit-limit-requests", "10000")
        self.send_header("x-ratelimit-limit-tokens", "10000000")
        self.send_header("x-ratelimit-remaining-requests", "9999")
        self.send_header("x-ratelimit-remaining-tokens", "9999990")
        self.send_header("x-ratelimit-reset-requests", "6ms")
        self.send_header("x-ratelimit-reset-tokens", "0s")

    def _send_json(
        self,
        status: int,
        payload: Any,
        headers: dict[str, str],
        ctl: Controls | None,
        extra: dict[str, str] | None = None,
    ) -> None:
        if self._flavor == "ollama":  # Go's encoding/json: compact
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        else:
            body = json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8")
        encoding = ctl.encoding if ctl is not None else None
        if encoding == "identity":
            encoding = None
        elif (
            encoding is None
            and len(body) >= _MIN_GZIP_SIZE
            and _accepts_gzip(headers.get("accept-encoding", ""))
        ):
            encoding = "gzip"
        if encoding is not None:
            body = _Encoder(encoding).oneshot(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if encoding is not None:
            self.send_header("Content-Encoding", encoding)
        self._api_headers()
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._headers_sent = True
        self.wfile.write(body)

    def _origin(self, headers: dict[str, str]) -> str:
        """``http://host:port`` as the client addressed this server."""
        host = headers.get("host") or f"{self.server.owner.host}:{self.server.owner.port}"
        return f"http://{host}"

    def _send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str,
        ctl: Controls,
        *,
        api_headers: bool = False,
    ) -> None:
        """A non-JSON body (an image, a transcript), compressed only when a control header asks;
        ``api_headers`` adds the API's response headers."""
        encoding = ctl.encoding if ctl.encoding != "identity" else None
        if encoding is not None:
            body = _Encoder(encoding).oneshot(body)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if encoding is not None:
            self.send_header("Content-Encoding", encoding)
        if api_headers:
            self._api_headers()
        self.end_headers()
        self._headers_sent = True
        self.wfile.write(body)

    def _maybe_fail(self, headers: dict[str, str], ctl: Controls, model: str) -> bool:
        status = ctl.error_status()
        if status is None:
            return False
        if headers.get("x-devserver-fail-mode", "").strip().lower() == "reset":
            raise _Disconnect  # the connection drops before any response
        extra: dict[str, str] = {}
        if _retryable(status) and self._flavor not in ("gemini", "ollama"):
            extra = {"retry-after": "0", "retry-after-ms": "10"}
        if self._flavor == "gemini":
            payload: Any = _gemini.gemini_error(status, route=self._gemini_route)
        elif self._flavor == "ollama":
            payload = _ollama.ollama_error(status, model=model)
        elif self._flavor == "anthropic":
            payload = _anthropic.anthropic_error(status, request_id=self._request_id)
            if _retryable(status):
                extra["x-should-retry"] = "true"
        elif self._flavor == "databricks":
            payload = databricks_error(status)
        elif self._flavor == "cohere":
            payload = _cohere.cohere_error(status, model=model)
        elif self._flavor == "groq":
            payload = _groq.groq_error(status, model=model)
        else:
            auth = headers.get("authorization", "")
            api_key = auth[7:] if auth.lower().startswith("bearer ") else auth
            if self._flavor == "azure":
                api_key = headers.get("api-key", api_key)
            payload = _simulated_error(status, model, api_key)
            if self._flavor == "azure":
                payload = _azure.azure_error(status, self._api, self._api_version, payload)
        self._send_json(status, payload, headers, ctl, extra)
        return True

    # -- streams ---------------------------------------------------------------------------

    def _send_stream(self, ctl: Controls, reply: StreamReply) -> None:
        """Send pre-encoded SSE frames or NDJSON lines, honouring the delay/error/disconnect
        controls."""
        encoding = ctl.encoding if ctl.encoding != "identity" else None
        encoder = _Encoder(encoding)
        self.send_response(200)
        content_type = ctl.stream_content_type or reply.content_type
        if content_type.strip().lower() != "none":
            self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        if reply.content_type.startswith("text/event-stream"):
            self.send_header("Cache-Control", "no-cache")
        if encoding is not None:
            self.send_header("Content-Encoding", encoding)
        self._api_headers()
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self._headers_sent = True

        for sent, frame in enumerate(reply.frames):
            if ctl.stream_error_after is not None and sent >= ctl.stream_error_after:
                self._write_raw(encoder, reply.error_frame(sent))
                self._end_stream(encoder)
                return
            if ctl.disconnect_after is not None and sent >= ctl.disconnect_after:
                raise _Disconnect
            if sent and ctl.chunk_delay:
                time.sleep(ctl.chunk_delay)
            self._write_raw(encoder, frame)
        if ctl.chunk_delay:
            time.sleep(ctl.chunk_delay)
        if reply.trailer:
            self._write_raw(encoder, reply.trailer)
        self._end_stream(encoder)

    def _write_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _write_raw(self, encoder: _Encoder, data: bytes) -> None:
        self._write_chunk(encoder.encode(data))

    def _end_stream(self, encoder: _Encoder) -> None:
        self._write_chunk(encoder.finish())
        self.wfile.write(b"0\r\n\r\n")


# --------------------------------------------------------------------------------------------
# Public server
# --------------------------------------------------------------------------------------------


class DevServer:
    """A local OpenAI-compatible server running in a daemon thread.

    Use it as a context manager (``with DevServer() as server: ...``) or call
    :meth:`start` / :meth:`stop`. Only loopback addresses are accepted as ``host``;
    ``port=0`` picks a free port.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, verbose: bool = False) -> None:
        """Configure (but do not start) the server."""
        if host == "localhost":
            host = "127.0.0.1"
        if not host.startswith("127."):
            raise ValueError(f"DevServer only binds loopback addresses, not {host!r}")
        self.host = host
        self.verbose = verbose
        self._port = port
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> DevServer:
        """Bind the socket and start serving in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((self.host, self._port), self)
        self._port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"tracer-devserver-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and close the socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with httpd.conn_lock:
            open_connections = list(httpd.connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- info ----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port (the requested one until :meth:`start` has run)."""
        return self._port

    @property
    def url(self) -> str:
        """The server root, e.g. ``"http://127.0.0.1:54321"``."""
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``url + "/v1"``), as taken by ``OpenAI(base_url=...)``."""
        return self.url + "/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (the live list)."""
        return self._requests

    def clear(self) -> None:
        """Forget all recorded requests."""
        with self._lock:
            self._requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)


def main(argv: list[str] | None = None, *, prog: str = "llm-devserver") -> int:
    """Command-line entry point: ``llm-devserver [--port N] [--verbose]`` (also
    ``python -m llm_devserver``); prints the base URL, then serves until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve a local, deterministic OpenAI-compatible API on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free port)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server = DevServer(port=args.port, verbose=args.verbose).start()
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
