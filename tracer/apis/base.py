"""The shape every wire API adapter has: how to read its request, response and stream."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from tracer.apis.keep import Shape, keep
from tracer.config import TracerConfig

__all__ = [
    "ApiSpec",
    "Problems",
    "ResponseSummary",
    "StreamAccumulator",
    "StreamBase",
    "add_piece",
    "count_at",
    "embedding_attributes",
    "error_message",
    "int_or_none",
    "parse_event",
    "renamed",
    "str_or_none",
    "strings_of",
    "token_usage",
]


@dataclass(slots=True)
class ResponseSummary:
    """What the span needs from a response object besides the object itself."""

    model: str | None = None
    usage: dict[str, int] | None = None
    finish_reasons: list[str] = field(default_factory=list)
    response_id: str | None = None
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    #: Output tokens spent on hidden reasoning, when the API reports them (part of the output
    #: tokens: OpenAI ``completion_tokens_details`` / ``output_tokens_details``, Gemini
    #: ``thoughtsTokenCount``, which Gemini counts apart from its candidates).
    reasoning_tokens: int | None = None


class StreamAccumulator(Protocol):
    """Rebuilds the non-streaming response object from a stream's events (no I/O)."""

    completed: bool
    """True once the protocol's terminal event arrived."""

    @property
    def end_markers(self) -> tuple[bytes, ...]:
        """Bytes that every event ending the stream early (:attr:`ended`) contains: the
        recorder parses what it holds as soon as a chunk carries one, else in batches."""

    def add(self, event: str, data: str) -> None:
        """Take one SSE event; must tolerate malformed data (recorded in :attr:`problems`)."""

    def result(self) -> Any:
        """The reassembled object so far (also valid for an unfinished stream)."""

    @property
    def problems(self) -> list[str]:
        """What could not be parsed, in words, for the span's ``tracer.problems``."""

    @property
    def ended(self) -> bool:
        """Nothing more will come: the terminal event or an error event arrived."""

    @property
    def attributes(self) -> dict[str, Any]:
        """Span attributes only the stream knows (e.g. how many partial images it carried)."""


class ApiSpec:
    """A wire API: which span it makes and how it reads requests and responses.

    Subclasses set the class attributes and override what differs; the defaults fit
    OpenAI-style JSON APIs.
    """

    name: str = ""
    """The ``tracer.api`` attribute: ``chat.completions``, ``responses``, ..."""
    operation: str = ""
    """OpenTelemetry GenAI operation name: ``chat``, ``text_completion``, ``embeddings``."""
    span_type: str = "LLM"
    message_format: str | None = None
    content_keys: tuple[str, ...] = ()
    """Request keys that hold prompts/messages (kept out of the span's attributes)."""
    kept_request: Shape = {}
    """What of a request is recorded when content capture is off (see :mod:`tracer.apis.keep`)."""
    kept_response: Shape = {}
    """What of a response is recorded when content capture is off."""
    text_response: bool = False
    """A plain-text (not JSON) answer is a normal answer (``{"text": ...}``, not a problem)."""
    binary_response: bool = False
    """A successful answer that is not JSON is binary (audio): recorded as its media type and
    size, never read into memory."""

    def tools(self, request: dict[str, Any]) -> list[Any] | None:
        """The request's tool definitions in the chat-completions form MLflow displays."""
        tools = request.get("tools")
        return tools if isinstance(tools, list) and tools else None

    def reply_messages(self, response: Any) -> list[dict[str, Any]] | None:
        """The reply as OpenAI-style chat messages, for APIs whose response MLflow's trace UI
        cannot show as a conversation by itself (recorded as ``mlflow.chat.messages``, which
        the UI reads, when content is captured); ``None`` for the others."""
        return None

    def parameters(self, request: dict[str, Any]) -> dict[str, Any]:
        """The request's sampling and length parameters under OpenAI's names (``temperature``,
        ``max_tokens``, ``stop``, ...), for the ``gen_ai.request.*`` attributes."""
        return request

    def summarize(self, response: Any) -> ResponseSummary:
        """Model, usage, finish reasons, id and error message of a response object."""
        return ResponseSummary()

    def outputs(self, response: Any, config: TracerConfig) -> Any:
        """What the span records as outputs for ``response``."""
        if not config.capture_content:
            return self.strip_content(response)
        return response

    def strip_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """The request reduced to :attr:`kept_request` (content capture off)."""
        kept = keep(request, self.kept_request)
        return kept if isinstance(kept, dict) else {}

    def strip_content(self, response: Any) -> Any:
        """The response reduced to :attr:`kept_response` (content capture off); ``None`` when
        it is not an object."""
        return keep(response, self.kept_response)

    #: How the API frames a stream when the server does not label it: ``sse`` or ``ndjson``.
    stream_framing = "sse"
    #: Whether a request that does not say ``stream`` asks for one (Ollama's do).
    streams_by_default = False

    @property
    def streams(self) -> bool:
        """Whether the API has streamed responses (an accumulator to rebuild them)."""
        return type(self).new_stream is not ApiSpec.new_stream

    def new_stream(self) -> StreamAccumulator:
        """A fresh accumulator for one streamed response."""
        raise NotImplementedError


class Problems:
    """A short, bounded list of parse problems for ``tracer.problems``."""

    __slots__ = ("items",)
    LIMIT = 10

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, text: str) -> None:
        """Record one problem (beyond the limit, problems are counted, not kept)."""
        if len(self.items) < self.LIMIT:
            self.items.append(text)


class StreamBase:
    """What every stream accumulator shares: the terminal flag, the error event and the
    parse problems."""

    __slots__ = ("_error", "_problems", "completed")
    #: Error events of every API spell ``error`` (see :attr:`StreamAccumulator.end_markers`).
    end_markers: tuple[bytes, ...] = (b"error",)

    def __init__(self) -> None:
        self.completed = False
        self._error: Any = None
        self._problems = Problems()

    @property
    def problems(self) -> list[str]:
        """What could not be parsed, in words."""
        return self._problems.items

    @property
    def ended(self) -> bool:
        """The stream is over: its terminal event or an error event arrived."""
        return self.completed or self._error is not None

    @property
    def attributes(self) -> dict[str, Any]:
        """Span attributes only the stream knows; none by default."""
        return {}


#: Pieces held before they are joined: a stream of many tiny deltas then costs about the size
#: of its text, not the per-object overhead of every piece.
_PIECES = 256


def add_piece(pieces: list[str], text: str) -> None:
    """Append a streamed text piece to ``pieces``, joining them every few hundred."""
    pieces.append(text)
    if len(pieces) >= _PIECES:
        pieces[:] = ["".join(pieces)]


def error_message(body: Any) -> str | None:
    """The message of an error body: OpenAI's ``{"error": {"message": ...}}``, Anthropic's
    ``{"type": "error", "error": {...}}``, or a bare ``{"message": ...}``."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message:
            return message
        return str(error)
    if isinstance(error, str) and error:
        return error
    message = body.get("message")
    if isinstance(message, str) and message:
        return message
    return None


def strings_of(items: Any, key: str) -> list[str]:
    """The string ``key`` of each object in the list ``items`` (finish reasons of choices or
    candidates); anything else is skipped."""
    return [
        item[key]
        for item in (items if isinstance(items, list) else ())
        if isinstance(item, dict) and isinstance(item.get(key), str)
    ]


def count_at(value: Any, *path: str) -> int | None:
    """The whole number at ``path`` in nested objects, else ``None``."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return int_or_none(value)


def int_or_none(value: Any) -> int | None:
    """``value`` if it is an int (and not a bool), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def token_usage(
    given: Any,
    produced: Any,
    total: Any = None,
    cache_read: Any = None,
    cache_creation: Any = None,
) -> dict[str, int] | None:
    """MLflow's token-usage dict (``mlflow.chat.tokenUsage``) from counts a response reported;
    ``None`` when it reported neither input nor output tokens. Non-integer counts are ignored."""
    given, produced = int_or_none(given), int_or_none(produced)
    if given is None and produced is None:
        return None
    result = {"input_tokens": given or 0, "output_tokens": produced or 0}
    total = int_or_none(total)
    result["total_tokens"] = total if total is not None else (given or 0) + (produced or 0)
    if (cache_read := int_or_none(cache_read)) is not None:
        result["cache_read_input_tokens"] = cache_read
    if (cache_creation := int_or_none(cache_creation)) is not None:
        result["cache_creation_input_tokens"] = cache_creation
    return result


def embedding_attributes(lengths: list[int | None]) -> dict[str, int]:
    """``embeddings.count`` (how many vectors) and, when they all have one,
    ``embeddings.dimensions`` (their length; ``None`` for a vector that could not be
    measured)."""
    attributes = {"embeddings.count": len(lengths)}
    measured = {n for n in lengths if n is not None}
    if len(measured) == 1:
        attributes["embeddings.dimensions"] = measured.pop()
    return attributes


def renamed(values: Any, names: dict[str, str]) -> dict[str, Any]:
    """The entries of the object ``values`` named in ``names``, under their new names."""
    if not isinstance(values, dict):
        return {}
    return {new: values[old] for old, new in names.items() if old in values}


def str_or_none(value: Any) -> str | None:
    """``value`` if it is a non-empty string, else ``None``."""
    return value if isinstance(value, str) and value else None


def parse_event(data: str, problems: Problems) -> dict[str, Any] | None:
    """The JSON object of one stream event, or ``None`` (recorded as a problem; an OpenAI-style
    ``[DONE]`` in another API's stream is no problem)."""
    if data == "[DONE]":
        return None
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        problems.add(f"stream event is not JSON: {data[:80]!r}")
        return None
    if not isinstance(value, dict):
        problems.add(f"stream event is not a JSON object: {data[:80]!r}")
        return None
    return value
