"""A realistic, deterministic, local OpenAI-compatible HTTP server for tests and demos.

The server speaks HTTP/1.1 with keep-alive, mimics the response shapes and headers of
``api.openai.com`` field for field, and can be steered per request through ``x-devserver-*``
request headers (errors, retries, compression, chunk timing, broken streams, ...).

Example::

    from openai import OpenAI
    from tracer.devserver import DevServer

    with DevServer() as server:
        client = OpenAI(base_url=server.base_url, api_key="test")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert server.requests[-1].path == "/v1/chat/completions"

Endpoints:

* ``POST .../chat/completions`` (any prefix) -- chat completions, streaming or not.
* ``GET /v1/models`` -- an OpenAI-style model list.
* ``GET /health`` -- ``{"status": "ok"}`` (a non-LLM path).
* anything else -- 404 with an OpenAI-style error body.

Control headers (all optional, on the request):

* ``x-devserver-status: <code>`` -- answer with that status and an OpenAI error body.
* ``x-devserver-fail-attempts: N`` -- fail (500, or the ``x-devserver-status`` code) while the
  request's ``x-stainless-retry-count`` header (default 0) is < N, then succeed.
* ``x-devserver-encoding: gzip|deflate|br|identity`` -- force the response Content-Encoding.
* ``x-devserver-content-format: list`` -- message/delta ``content`` as a list of text parts.
* ``x-devserver-chunk-delay-ms: N`` -- sleep N ms between stream events.
* ``x-devserver-stream-error-after: K`` -- after K chunks send an in-stream error event.
* ``x-devserver-disconnect-after: K`` -- after K chunks drop the connection mid-body.
* ``x-devserver-reply: <text>`` -- exact reply text (percent-decoded).
* ``x-devserver-cached-tokens: N`` -- report N cached prompt tokens.
* ``x-devserver-refusal: <text>`` -- answer with a refusal (percent-decoded).

Run ``python -m tracer.devserver [--port N]`` to serve until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import re
import secrets
import socket
import string
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["DevServer", "RecordedRequest", "main"]

_ALNUM = string.ascii_letters + string.digits
_KNOWN_CITIES = ("Paris", "London", "Tokyo", "New York", "Berlin", "San Francisco")
_PIECE_SIZES = (3, 2, 4, 2, 3, 4)
_ALT_TOKENS = (" the", " a", ".", ",", " and", " of", " to", " is", " in", " it", "!", " I")
_STOPWORD_TEXT = (
    "the and for are but not you your with what which who whom this that these those "
    "was were has have had does did can could would should will shall from into "
    "about please tell give me my our its his her their them they she him how why "
    "when where there here some any like just also than then"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_MIN_GZIP_SIZE = 256
_OPENAI_VERSION = "2020-10-01"
_STREAM_ERROR: dict[str, Any] = {
    "error": {
        "message": "The server had an error while processing your request.",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}
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
# Helpers: ids, text, tokens
# --------------------------------------------------------------------------------------------


def _rand_alnum(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: ``words * 4 // 3`` (>= 1 for non-empty text)."""
    words = len(text.split())
    if words == 0:
        return 1 if text else 0
    return max(1, words * 4 // 3)


def _split_pieces(text: str) -> list[str]:
    """Split text into small pieces of 2-4 characters (code points, never bytes)."""
    pieces: list[str] = []
    i = k = 0
    while i < len(text):
        size = _PIECE_SIZES[k % len(_PIECE_SIZES)]
        pieces.append(text[i : i + size])
        i += size
        k += 1
    return pieces


def _content_text(content: Any) -> str:
    """Flatten a message ``content`` (string or list of parts) into plain text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return " ".join(parts)
    return str(content)


def _header_text(value: str) -> str:
    """Recover UTF-8 sent raw in a header (decoded as latin-1 by http.server), then unquote."""
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("latin-1").decode("utf-8")
    return unquote(value)


def _parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _find_cities(text: str) -> list[str]:
    found: list[tuple[int, str]] = []
    for city in _KNOWN_CITIES:
        match = re.search(r"\b" + re.escape(city) + r"\b", text, re.IGNORECASE)
        if match:
            found.append((match.start(), city))
    return [city for _, city in sorted(found)]


def _keywords(text: str) -> list[str]:
    """Significant words of ``text``, most relevant (last) first."""
    words = [w for w in re.findall(r"[^\W_]+", text) if len(w) >= 3]
    significant = [w for w in words if w.lower() not in _STOPWORDS]
    return list(reversed(significant or words))


def _logprob_entry(token: str, position: int, top: int) -> dict[str, Any]:
    logprob = -round(0.0002 + (position % 7) * 0.0173 + (position % 3) * 0.0041, 6)
    alternatives = [token, *[a for a in _ALT_TOKENS if a != token]][: max(0, top)]
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode("utf-8")),
        "top_logprobs": [
            {
                "token": alt,
                "logprob": logprob if j == 0 else round(logprob - 1.75 * j - 0.25, 6),
                "bytes": list(alt.encode("utf-8")),
            }
            for j, alt in enumerate(alternatives)
        ],
    }


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
# Completion planning
# --------------------------------------------------------------------------------------------


@dataclass
class _Controls:
    status: int | None = None
    fail_attempts: int | None = None
    retry_count: int = 0
    encoding: str | None = None  # None: default negotiation; "identity": force none
    list_content: bool = False
    chunk_delay: float = 0.0
    stream_error_after: int | None = None
    disconnect_after: int | None = None
    reply: str | None = None
    cached_tokens: int | None = None
    refusal: str | None = None

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> _Controls:
        encoding = headers.get("x-devserver-encoding")
        if encoding is not None:
            encoding = encoding.strip().lower()
            if encoding not in ("gzip", "deflate", "br", "identity"):
                encoding = None
        delay = _parse_int(headers.get("x-devserver-chunk-delay-ms")) or 0
        reply = headers.get("x-devserver-reply")
        refusal = headers.get("x-devserver-refusal")
        return cls(
            status=_parse_int(headers.get("x-devserver-status")),
            fail_attempts=_parse_int(headers.get("x-devserver-fail-attempts")),
            retry_count=_parse_int(headers.get("x-stainless-retry-count")) or 0,
            encoding=encoding,
            list_content=headers.get("x-devserver-content-format", "").strip().lower() == "list",
            chunk_delay=max(0, delay) / 1000.0,
            stream_error_after=_parse_int(headers.get("x-devserver-stream-error-after")),
            disconnect_after=_parse_int(headers.get("x-devserver-disconnect-after")),
            reply=_header_text(reply) if reply is not None else None,
            cached_tokens=_parse_int(headers.get("x-devserver-cached-tokens")),
            refusal=_header_text(refusal) if refusal is not None else None,
        )

    def error_status(self) -> int | None:
        """The simulated error status for this request, or None to answer normally."""
        status = self.status if self.status is not None and 400 <= self.status <= 599 else None
        if self.fail_attempts is not None:
            return (status or 500) if self.retry_count < self.fail_attempts else None
        return status


@dataclass
class _Choice:
    index: int
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)  # (id, name, args)
    finish_reason: str = "stop"
    completion_tokens: int = 0


def _function_tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        return []
    funcs: list[dict[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        func = tool.get("function")
        if isinstance(func, dict) and isinstance(func.get("name"), str):
            funcs.append(func)
    return funcs


def _fill_arguments(params: Any, text: str, city: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    if isinstance(params, dict):
        if isinstance(params.get("properties"), dict):
            props = params["properties"]
        if isinstance(params.get("required"), list):
            required = [r for r in params["required"] if isinstance(r, str)]
    args: dict[str, Any] = {}
    if city is not None:
        key = "city"
        if "city" not in props and "location" in props:
            key = "location"
        elif "city" not in props:
            strings = [r for r in required if props.get(r, {}).get("type", "string") == "string"]
            key = strings[0] if strings else "city"
        args[key] = city
    words = _keywords(text) or ["example"]
    j = 0
    for name in required:
        if name in args:
            continue
        schema = props.get(name) if isinstance(props.get(name), dict) else {}
        kind = schema.get("type", "string")
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            args[name] = enum[0]
        elif kind == "integer":
            args[name] = 1
        elif kind == "number":
            args[name] = 1.5
        elif kind == "boolean":
            args[name] = True
        elif kind == "array":
            args[name] = []
        elif kind == "object":
            args[name] = {}
        elif kind == "null":
            args[name] = None
        else:
            args[name] = words[j % len(words)]
            j += 1
    return args


def _plan_tool_calls(
    funcs: list[dict[str, Any]], tool_choice: Any, text: str
) -> list[tuple[str, str, str]]:
    chosen: dict[str, Any] | None = None
    if isinstance(tool_choice, dict):
        wanted = tool_choice.get("function", {})
        name = wanted.get("name") if isinstance(wanted, dict) else None
        if isinstance(name, str):
            chosen = next((f for f in funcs if f["name"] == name), {"name": name})
    if chosen is None:
        chosen = next((f for f in funcs if f["name"] == "get_weather"), funcs[0])
    name = chosen["name"]
    params = chosen.get("parameters")
    if name == "get_weather":
        arg_sets = [_fill_arguments(params, text, city) for city in _find_cities(text) or ["Paris"]]
    else:
        arg_sets = [_fill_arguments(params, text)]
    return [
        (f"call_{_rand_alnum(24)}", name, json.dumps(a, separators=(",", ":"), ensure_ascii=False))
        for a in arg_sets
    ]


def _base_reply(messages: list[Any], last_user: str) -> str:
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if last.get("role") == "tool":
        contents: list[str] = []
        for message in reversed(messages):
            if not isinstance(message, dict) or message.get("role") != "tool":
                break
            contents.append(_content_text(message.get("content")))
        return "Based on the tools: " + "; ".join(reversed(contents))
    if "capital of france" in last_user.lower():
        return "The capital of France is Paris."
    question = " ".join(last_user.split())
    if len(question) > 200:
        question = question[:200] + "..."
    return f'You asked: "{question}". Here is a thoughtful answer from the local server.'


def _truncate(text: str, limit: int | None) -> tuple[str, bool]:
    if limit is None or limit <= 0 or _count_tokens(text) <= limit:
        return text, False
    words = text.split()
    keep = 1
    while keep < len(words) and (keep + 1) * 4 // 3 <= limit:
        keep += 1
    return " ".join(words[:keep]), True


def _prompt_tokens(messages: list[Any], tools: Any) -> int:
    total = 3
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += 4 + _count_tokens(_content_text(message.get("content")))
        calls = message.get("tool_calls")
        if calls:
            total += _count_tokens(json.dumps(calls))
    if tools:
        total += _count_tokens(json.dumps(tools))
    return total


def _plan_choices(request: dict[str, Any], ctl: _Controls, n: int) -> list[_Choice]:
    messages: list[Any] = request["messages"]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    last_user = ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            last_user = _content_text(message.get("content"))
            break
    funcs = _function_tools(request.get("tools"))
    tool_choice = request.get("tool_choice")
    use_tools = bool(funcs) and tool_choice != "none" and last.get("role") != "tool"
    limit = request.get("max_completion_tokens")
    if not isinstance(limit, int):
        limit = request.get("max_tokens")
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None

    choices: list[_Choice] = []
    for i in range(n):
        choice = _Choice(index=i)
        if ctl.refusal is not None:
            choice.refusal = ctl.refusal
            choice.completion_tokens = _count_tokens(ctl.refusal)
        elif use_tools:
            choice.tool_calls = _plan_tool_calls(funcs, tool_choice, last_user)
            choice.finish_reason = "tool_calls"
            choice.completion_tokens = sum(
                _count_tokens(f"{name} {args}") + 3 for _, name, args in choice.tool_calls
            )
        else:
            text = ctl.reply if ctl.reply is not None else _base_reply(messages, last_user)
            if i > 0:
                text = f"(choice {i}) {text}"
            text, truncated = _truncate(text, limit)
            choice.content = text
            choice.finish_reason = "length" if truncated else "stop"
            choice.completion_tokens = _count_tokens(text)
        choices.append(choice)
    return choices


def _usage(prompt: int, completion: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Disconnect(Exception):
    """Raised inside the handler to drop the connection without finishing the response."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

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
        path = urlsplit(self.path).path
        ctl = _Controls.from_headers(headers)
        if self.command == "POST" and path.rstrip("/").endswith("/chat/completions"):
            self._chat(headers, body, ctl)
        elif self.command == "GET" and path.rstrip("/") == "/v1/models":
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

    # -- responses -------------------------------------------------------------------------

    def _api_headers(self) -> None:
        elapsed = max(1, int((time.monotonic() - self._started) * 1000))
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
        ctl: _Controls | None,
        extra: dict[str, str] | None = None,
    ) -> None:
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

    def _maybe_fail(self, headers: dict[str, str], ctl: _Controls, model: str) -> bool:
        status = ctl.error_status()
        if status is None:
            return False
        auth = headers.get("authorization", "")
        api_key = auth[7:] if auth.lower().startswith("bearer ") else auth
        extra: dict[str, str] = {}
        if _retryable(status):
            extra = {"retry-after": "0", "retry-after-ms": "10"}
        self._send_json(status, _simulated_error(status, model, api_key), headers, ctl, extra)
        return True

    def _bad_request(
        self, headers: dict[str, str], ctl: _Controls, message: str, param: str | None = None
    ) -> None:
        payload = _error_body(message, "invalid_request_error", None, param)
        self._send_json(400, payload, headers, ctl)

    # -- chat completions ------------------------------------------------------------------

    def _chat(self, headers: dict[str, str], body: bytes, ctl: _Controls) -> None:
        model_hint = ""
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            request = None
        if isinstance(request, dict) and isinstance(request.get("model"), str):
            model_hint = request["model"]
        if self._maybe_fail(headers, ctl, model_hint):
            return
        if request is None:
            self._bad_request(headers, ctl, _JSON_PARSE_ERROR)
            return
        if not isinstance(request, dict):
            self._bad_request(headers, ctl, "Invalid type for request body: expected an object.")
            return
        model = request.get("model")
        if not isinstance(model, str) or not model:
            self._bad_request(headers, ctl, "you must provide a model parameter")
            return
        messages = request.get("messages")
        if not isinstance(messages, list):
            self._bad_request(headers, ctl, "Missing required parameter: 'messages'.", "messages")
            return
        if not messages:
            self._bad_request(headers, ctl, "[] is too short - 'messages'", "messages")
            return
        n = request.get("n")
        n = 1 if n is None else n
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
            self._bad_request(headers, ctl, f"Invalid 'n': {n!r}. Expected 1..128.", "n")
            return

        choices = _plan_choices(request, ctl, n)
        prompt = _prompt_tokens(messages, request.get("tools"))
        if ctl.cached_tokens is not None and ctl.cached_tokens >= 0:
            cached = ctl.cached_tokens
            prompt = max(prompt, cached)
        else:
            cached = 64 * (prompt // 64) if prompt >= 64 else 0
        usage = _usage(prompt, sum(c.completion_tokens for c in choices), cached)
        logprobs = request.get("logprobs") is True
        top = request.get("top_logprobs")
        top = top if isinstance(top, int) and not isinstance(top, bool) and top > 0 else 0
        completion_id = "chatcmpl-" + _rand_alnum(29)
        created = int(time.time())
        if request.get("stream") is True:
            options = request.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            self._stream(
                ctl,
                completion_id,
                created,
                model,
                choices,
                usage if include_usage else None,
                logprobs,
                top,
            )
        else:
            payload = self._completion(
                ctl, completion_id, created, model, choices, usage, logprobs, top
            )
            self._send_json(200, payload, headers, ctl)

    def _format_content(self, ctl: _Controls, text: str | None) -> Any:
        if text is None or not ctl.list_content:
            return text
        return [{"type": "text", "text": text}]

    def _completion(
        self,
        ctl: _Controls,
        completion_id: str,
        created: int,
        model: str,
        choices: list[_Choice],
        usage: dict[str, Any],
        logprobs: bool,
        top: int,
    ) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        for choice in choices:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": self._format_content(ctl, choice.content),
                "refusal": choice.refusal,
                "annotations": [],
            }
            if choice.tool_calls:
                message["tool_calls"] = [
                    {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                    for cid, name, args in choice.tool_calls
                ]
            lp: dict[str, Any] | None = None
            if logprobs:
                content_tokens = _split_pieces(choice.content or "")
                refusal_tokens = _split_pieces(choice.refusal or "")
                lp = {
                    "content": [_logprob_entry(t, k, top) for k, t in enumerate(content_tokens)],
                    "refusal": [_logprob_entry(t, k, top) for k, t in enumerate(refusal_tokens)]
                    if choice.refusal is not None
                    else None,
                }
            out.append(
                {
                    "index": choice.index,
                    "message": message,
                    "logprobs": lp,
                    "finish_reason": choice.finish_reason,
                }
            )
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": self.server.fingerprint,
            "choices": out,
            "usage": usage,
            "service_tier": "default",
        }

    def _choice_deltas(
        self, ctl: _Controls, choice: _Choice, logprobs: bool, top: int
    ) -> Iterator[dict[str, Any]]:
        """Yield the streamed ``choices[i]`` objects for one choice."""

        def item(
            delta: dict[str, Any], lp: Any = None, finish: str | None = None
        ) -> dict[str, Any]:
            return {"index": choice.index, "delta": delta, "logprobs": lp, "finish_reason": finish}

        empty_lp = {"content": [], "refusal": None} if logprobs else None
        if choice.tool_calls:
            for k, (cid, name, args) in enumerate(choice.tool_calls):
                call = {
                    "index": k,
                    "id": cid,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
                if k == 0:
                    delta = {"role": "assistant", "content": None, "tool_calls": [call]}
                    delta["refusal"] = None
                    yield item(delta, empty_lp)
                else:
                    yield item({"tool_calls": [call]}, empty_lp)
                for fragment in _split_pieces(args):
                    delta = {"tool_calls": [{"index": k, "function": {"arguments": fragment}}]}
                    yield item(delta, empty_lp)
        elif choice.refusal is not None:
            yield item({"role": "assistant", "content": None, "refusal": ""}, empty_lp)
            for k, piece in enumerate(_split_pieces(choice.refusal)):
                lp = {"content": None, "refusal": [_logprob_entry(piece, k, top)]}
                yield item({"refusal": piece}, lp if logprobs else None)
        else:
            yield item({"role": "assistant", "content": "", "refusal": None}, empty_lp)
            for k, piece in enumerate(_split_pieces(choice.content or "")):
                lp = {"content": [_logprob_entry(piece, k, top)], "refusal": None}
                content = self._format_content(ctl, piece)
                yield item({"content": content}, lp if logprobs else None)
        yield item({}, None, choice.finish_reason)

    def _stream(
        self,
        ctl: _Controls,
        completion_id: str,
        created: int,
        model: str,
        choices: list[_Choice],
        usage: dict[str, Any] | None,
        logprobs: bool,
        top: int,
    ) -> None:
        encoding = ctl.encoding if ctl.encoding != "identity" else None
        encoder = _Encoder(encoding)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        if encoding is not None:
            self.send_header("Content-Encoding", encoding)
        self._api_headers()
        self.end_headers()
        self._headers_sent = True

        def chunk(choice_items: list[dict[str, Any]]) -> dict[str, Any]:
            obj: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": self.server.fingerprint,
                "choices": choice_items,
            }
            if usage is not None:
                obj["usage"] = None
            return obj

        # Interleave the choices round-robin, one choice per chunk (like OpenAI with n > 1).
        iterators = [self._choice_deltas(ctl, c, logprobs, top) for c in choices]
        events: list[dict[str, Any]] = []
        while iterators:
            for it in list(iterators):
                nxt = next(it, None)
                if nxt is None:
                    iterators.remove(it)
                else:
                    events.append(chunk([nxt]))
        if usage is not None:
            final = chunk([])
            final["usage"] = usage
            events.append(final)

        for sent, event in enumerate(events):
            if ctl.stream_error_after is not None and sent >= ctl.stream_error_after:
                self._write_event(encoder, _STREAM_ERROR)
                self._end_stream(encoder)
                return
            if ctl.disconnect_after is not None and sent >= ctl.disconnect_after:
                raise _Disconnect
            if sent and ctl.chunk_delay:
                time.sleep(ctl.chunk_delay)
            self._write_event(encoder, event)
        if ctl.chunk_delay:
            time.sleep(ctl.chunk_delay)
        self._write_raw(encoder, b"data: [DONE]\n\n")
        self._end_stream(encoder)

    def _write_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _write_raw(self, encoder: _Encoder, data: bytes) -> None:
        self._write_chunk(encoder.encode(data))

    def _write_event(self, encoder: _Encoder, obj: Any) -> None:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        self._write_raw(encoder, f"data: {text}\n\n".encode())

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


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m tracer.devserver [--port N] [--verbose]``."""
    parser = argparse.ArgumentParser(
        prog="python -m tracer.devserver",
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


if __name__ == "__main__":
    raise SystemExit(main())
