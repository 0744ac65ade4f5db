"""Helpers shared by the dev server's per-API builders: text, tokens, tools, controls, replies."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

__all__ = [
    "ALNUM",
    "ApiError",
    "Controls",
    "JsonReply",
    "Reply",
    "StreamReply",
    "as_int",
    "cached_split",
    "compact",
    "content_text",
    "count_tokens",
    "data_frame",
    "default_answer",
    "event_frame",
    "fill_arguments",
    "find_cities",
    "header_text",
    "keywords",
    "logprob_entry",
    "logprob_value",
    "parse_int",
    "plan_tool_args",
    "rand_alnum",
    "rand_hex",
    "required_model",
    "split_pieces",
    "truncate",
    "truncate_keep",
]

ALNUM = string.ascii_letters + string.digits
KNOWN_CITIES = ("Paris", "London", "Tokyo", "New York", "Berlin", "San Francisco")
PIECE_SIZES = (3, 2, 4, 2, 3, 4)
ALT_TOKENS = (" the", " a", ".", ",", " and", " of", " to", " is", " in", " it", "!", " I")
_STOPWORD_TEXT = (
    "the and for are but not you your with what which who whom this that these those "
    "was were has have had does did can could would should will shall from into "
    "about please tell give me my our its his her their them they she him how why "
    "when where there here some any like just also than then"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
RESPONSES_ENDINGS = ("completed", "failed", "incomplete", "none")


# --------------------------------------------------------------------------------------------
# Ids, text, tokens
# --------------------------------------------------------------------------------------------


def rand_alnum(n: int) -> str:
    """``n`` random ASCII letters and digits."""
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def rand_hex(n: int) -> str:
    """``n`` random lower-case hex digits."""
    return secrets.token_hex((n + 1) // 2)[:n]


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: ``words * 4 // 3`` (>= 1 for non-empty text)."""
    words = len(text.split())
    if words == 0:
        return 1 if text else 0
    return max(1, words * 4 // 3)


def split_pieces(text: str) -> list[str]:
    """Split text into small pieces of 2-4 characters (code points, never bytes)."""
    pieces: list[str] = []
    i = k = 0
    while i < len(text):
        size = PIECE_SIZES[k % len(PIECE_SIZES)]
        pieces.append(text[i : i + size])
        i += size
        k += 1
    return pieces


def content_text(content: Any) -> str:
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


def header_text(value: str) -> str:
    """Recover UTF-8 sent raw in a header (decoded as latin-1 by http.server), then unquote."""
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("latin-1").decode("utf-8")
    return unquote(value)


def parse_int(value: str | None) -> int | None:
    """An integer header value, or None when absent or not an integer."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def as_int(value: Any) -> int | None:
    """``value`` if it is a JSON integer (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def find_cities(text: str) -> list[str]:
    """Known city names mentioned in ``text``, in order of appearance."""
    found: list[tuple[int, str]] = []
    for city in KNOWN_CITIES:
        match = re.search(r"\b" + re.escape(city) + r"\b", text, re.IGNORECASE)
        if match:
            found.append((match.start(), city))
    return [city for _, city in sorted(found)]


def keywords(text: str) -> list[str]:
    """Significant words of ``text``, most relevant (last) first."""
    words = [w for w in re.findall(r"[^\W_]+", text) if len(w) >= 3]
    significant = [w for w in words if w.lower() not in STOPWORDS]
    return list(reversed(significant or words))


def logprob_value(position: int) -> float:
    """The deterministic log probability of the token at ``position``."""
    return -round(0.0002 + (position % 7) * 0.0173 + (position % 3) * 0.0041, 6)


def logprob_entry(token: str, position: int, top: int) -> dict[str, Any]:
    """A chat-style ``logprobs.content[i]`` entry with ``top`` alternatives."""
    logprob = logprob_value(position)
    alternatives = [token, *[a for a in ALT_TOKENS if a != token]][: max(0, top)]
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


def default_answer(last_user: str) -> str:
    """The reply to a plain question (no tools involved)."""
    if "capital of france" in last_user.lower():
        return "The capital of France is Paris."
    question = " ".join(last_user.split())
    if len(question) > 200:
        question = question[:200] + "..."
    return f'You asked: "{question}". Here is a thoughtful answer from the local server.'


def truncate(text: str, limit: int | None) -> tuple[str, bool]:
    """Cut ``text`` to about ``limit`` tokens (whitespace collapsed); True when cut."""
    if limit is None or limit <= 0 or count_tokens(text) <= limit:
        return text, False
    words = text.split()
    keep = 1
    while keep < len(words) and (keep + 1) * 4 // 3 <= limit:
        keep += 1
    return " ".join(words[:keep]), True


def truncate_keep(text: str, limit: int | None) -> tuple[str, bool]:
    """Like :func:`truncate`, but keep the original whitespace of the kept prefix."""
    if limit is None or limit < 0 or count_tokens(text) <= limit:
        return text, False
    if limit == 0:
        return "", True
    words = list(re.finditer(r"\S+", text))
    keep = 1
    while keep < len(words) and (keep + 1) * 4 // 3 <= limit:
        keep += 1
    return text[: words[keep - 1].end()], True


def cached_split(prompt: int, ctl: Controls) -> tuple[int, int]:
    """``(prompt_tokens, cached_tokens)``: the header's count, else 64-token blocks of >= 64."""
    if ctl.cached_tokens is not None and ctl.cached_tokens >= 0:
        return max(prompt, ctl.cached_tokens), ctl.cached_tokens
    return prompt, (64 * (prompt // 64) if prompt >= 64 else 0)


# --------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------


def fill_arguments(params: Any, text: str, city: str | None = None) -> dict[str, Any]:
    """Arguments for a JSON-schema ``params``: the city, then each required property."""
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
    words = keywords(text) or ["example"]
    j = 0
    for name in required:
        if name in args:
            continue
        raw = props.get(name)
        schema: dict[str, Any] = raw if isinstance(raw, dict) else {}
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


def plan_tool_args(
    funcs: list[dict[str, Any]], forced: str | None, text: str
) -> list[tuple[str, dict[str, Any]]]:
    """``(name, arguments)`` of the calls to make: ``get_weather`` once per city in ``text``.

    ``funcs`` are ``{"name", "parameters"}`` dicts; ``forced`` names the tool to call (if any).
    """
    chosen: dict[str, Any] | None = None
    if forced is not None:
        chosen = next((f for f in funcs if f["name"] == forced), {"name": forced})
    if chosen is None:
        chosen = next((f for f in funcs if f["name"] == "get_weather"), funcs[0])
    name = chosen["name"]
    params = chosen.get("parameters")
    if name == "get_weather":
        return [
            (name, fill_arguments(params, text, city)) for city in find_cities(text) or ["Paris"]
        ]
    return [(name, fill_arguments(params, text))]


# --------------------------------------------------------------------------------------------
# Control headers
# --------------------------------------------------------------------------------------------


@dataclass
class Controls:
    """The ``x-devserver-*`` control headers of one request."""

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
    cache_creation_tokens: int | None = None
    responses_end: str = "completed"
    stream_content_type: str | None = None  # "none": no Content-Type header on a stream
    reasoning_tokens: int = 0  # chat: hidden reasoning tokens billed as completion tokens

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> Controls:
        """Read the controls from lower-cased request headers."""
        encoding = headers.get("x-devserver-encoding")
        if encoding is not None:
            encoding = encoding.strip().lower()
            if encoding not in ("gzip", "deflate", "br", "identity"):
                encoding = None
        delay = parse_int(headers.get("x-devserver-chunk-delay-ms")) or 0
        reply = headers.get("x-devserver-reply")
        refusal = headers.get("x-devserver-refusal")
        ending = headers.get("x-devserver-responses-end", "completed").strip().lower()
        return cls(
            status=parse_int(headers.get("x-devserver-status")),
            fail_attempts=parse_int(headers.get("x-devserver-fail-attempts")),
            retry_count=parse_int(headers.get("x-stainless-retry-count")) or 0,
            encoding=encoding,
            list_content=headers.get("x-devserver-content-format", "").strip().lower() == "list",
            chunk_delay=max(0, delay) / 1000.0,
            stream_error_after=parse_int(headers.get("x-devserver-stream-error-after")),
            disconnect_after=parse_int(headers.get("x-devserver-disconnect-after")),
            reply=header_text(reply) if reply is not None else None,
            cached_tokens=parse_int(headers.get("x-devserver-cached-tokens")),
            refusal=header_text(refusal) if refusal is not None else None,
            cache_creation_tokens=parse_int(headers.get("x-devserver-cache-creation-tokens")),
            responses_end=ending if ending in RESPONSES_ENDINGS else "completed",
            stream_content_type=headers.get("x-devserver-stream-content-type"),
            reasoning_tokens=max(0, parse_int(headers.get("x-devserver-reasoning-tokens")) or 0),
        )

    def error_status(self) -> int | None:
        """The simulated error status for this request, or None to answer normally."""
        status = self.status if self.status is not None and 400 <= self.status <= 599 else None
        if self.fail_attempts is not None:
            return (status or 500) if self.retry_count < self.fail_attempts else None
        return status


# --------------------------------------------------------------------------------------------
# Replies
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """A client error a builder reports; the server renders it in the API's own error format.

    ``payload``, when given, is sent verbatim instead of the API's standard rendering.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
        payload: Any = None,
    ) -> None:
        """Describe the error."""
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type_
        self.payload = payload


def required_model(request: dict[str, Any], model: str | None) -> str:
    """``model`` (given by the path: Azure, Databricks), else the body's, which must be set."""
    if model is not None:
        return model
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError("you must provide a model parameter")
    return model


@dataclass
class JsonReply:
    """A complete JSON response."""

    payload: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamReply:
    """A streamed response, as pre-encoded frames (SSE events, or NDJSON lines).

    ``error_frame(n)`` renders the in-stream error sent instead of frame ``n`` when the request
    asks for ``x-devserver-stream-error-after``; ``trailer`` ends a complete stream;
    ``content_type`` is the response's ``Content-Type`` (``application/x-ndjson`` for Ollama).
    """

    frames: list[bytes]
    error_frame: Callable[[int], bytes]
    trailer: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/event-stream; charset=utf-8"


Reply = JsonReply | StreamReply


def compact(obj: Any) -> str:
    """Compact JSON, UTF-8 kept as is (how the real APIs write stream events)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def data_frame(obj: Any) -> bytes:
    """One ``data:``-only SSE frame."""
    return f"data: {compact(obj)}\n\n".encode()


def event_frame(name: str, obj: Any) -> bytes:
    """One SSE frame with an ``event:`` line."""
    return f"event: {name}\ndata: {compact(obj)}\n\n".encode()
