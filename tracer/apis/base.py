"""The shape every wire API adapter has: how to read its request, response and stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["ApiSpec", "ResponseSummary", "StreamAccumulator", "error_message"]


@dataclass(slots=True)
class ResponseSummary:
    """What the span needs from a response object besides the object itself."""

    model: str | None = None
    usage: dict[str, int] | None = None
    finish_reasons: list[str] = field(default_factory=list)
    response_id: str | None = None
    error: str | None = None


class StreamAccumulator(Protocol):
    """Rebuilds the non-streaming response object from a stream's events (no I/O)."""

    completed: bool
    """True once the protocol's terminal event arrived."""

    def add(self, event: str, data: str) -> None:
        """Take one SSE event; must tolerate malformed data (recorded in :attr:`problems`)."""

    def result(self) -> dict[str, Any] | None:
        """The reassembled object so far (also valid for an unfinished stream)."""

    @property
    def problems(self) -> list[str]:
        """What could not be parsed, in words, for the span's ``tracer.problems``."""


class ApiSpec(Protocol):
    """A wire API: which span it makes and how it reads requests and responses."""

    operation: str
    """OpenTelemetry GenAI operation name: ``chat``, ``text_completion``, ``embeddings``."""
    span_type: str
    message_format: str | None
    content_keys: tuple[str, ...]
    """Request keys that hold prompts/messages (kept out of attributes, dropped when content
    capture is off)."""

    def summarize(self, response: Any) -> ResponseSummary:
        """Model, usage, finish reasons, id and error message of a response object."""

    def strip_content(self, response: dict[str, Any]) -> dict[str, Any]:
        """The response without prompts or completions (content capture off)."""

    def new_stream(self) -> StreamAccumulator:
        """A fresh accumulator for one streamed response."""


def error_message(body: Any) -> str | None:
    """The message of an OpenAI-style error body (``{"error": {"message": ...}}``)."""
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
