"""OpenAI moderations (``POST .../moderations``) and audio: transcriptions and translations
(``.../audio/transcriptions``, ``.../audio/translations``, multipart uploads) and speech
(``.../audio/speech``, JSON in, audio out).

- A moderation is a ``GUARDRAIL`` span; ``moderation.flagged`` says whether any input was
  flagged and ``moderation.categories`` which categories were.
- An upload's span records its form fields and, for the file, its name, media type and size,
  never its bytes (:mod:`tracer.multipart`). A transcription in a text format (``text``,
  ``srt``, ``vtt``) is recorded as ``{"text": ...}``; a streamed one
  (``transcript.text.delta`` / ``.done`` events) as the non-streaming ``{"text", "usage"}``.
- Speech is recorded as the audio's media type and size (``{"content_type", "size"}``), never
  its bytes; streamed as ``speech.audio.delta`` events (``stream_format: "sse"``), the same,
  with the usage of ``speech.audio.done``.

OpenTelemetry's GenAI conventions name none of these operations; the spans are named
``moderation``, ``transcription``, ``translation`` and ``speech`` with the model.
"""

from __future__ import annotations

from typing import Any

from tracer.apis.base import (
    ApiSpec,
    ResponseSummary,
    StreamBase,
    add_piece,
    error_message,
    parse_event,
    str_or_none,
    token_usage,
)
from tracer.apis.keep import (
    COUNTS,
    ERROR,
    FLAG,
    KIND,
    NUMBER,
    NUMERIC,
    TEXT,
    VOICE,
    Shape,
    either,
    one_of,
)
from tracer.redact import decoded_size

__all__ = [
    "MODERATIONS",
    "SPEECH",
    "TRANSCRIPTIONS",
    "TRANSLATIONS",
    "Moderations",
    "Speech",
    "SpeechStream",
    "TranscriptStream",
    "Transcriptions",
    "Translations",
    "audio_usage",
]


def audio_usage(usage: Any) -> dict[str, int] | None:
    """MLflow's token-usage dict from an audio ``usage`` object of ``type: "tokens"`` (a
    ``duration`` usage counts seconds, not tokens: ``None``)."""
    if not isinstance(usage, dict):
        return None
    return token_usage(
        usage.get("input_tokens"), usage.get("output_tokens"), usage.get("total_tokens")
    )


class Moderations(ApiSpec):
    """OpenAI moderations: a ``GUARDRAIL`` span."""

    name = "moderations"
    operation = "moderation"
    span_type = "GUARDRAIL"
    message_format = None
    content_keys = ("input",)
    kept_request: Shape = {"model": TEXT}
    #: The flags and scores per category (not content); never the inputs.
    kept_response: Shape = {
        "id": TEXT,
        "model": TEXT,
        "error": ERROR,
        "results": [
            {
                "flagged": FLAG,
                "categories": COUNTS,
                "category_scores": COUNTS,
            }
        ],
    }

    def summarize(self, response: Any) -> ResponseSummary:
        """Model, id, error, ``moderation.flagged`` and ``moderation.categories``."""
        if not isinstance(response, dict):
            return ResponseSummary()
        summary = ResponseSummary(
            model=str_or_none(response.get("model")),
            response_id=str_or_none(response.get("id")),
            error=error_message(response) if response.get("error") else None,
        )
        results = response.get("results")
        if isinstance(results, list):
            results = [r for r in results if isinstance(r, dict)]
            summary.attributes["moderation.flagged"] = any(r.get("flagged") for r in results)
            flagged = sorted(
                {
                    name
                    for r in results
                    if isinstance(r.get("categories"), dict)
                    for name, on in r["categories"].items()
                    if on is True
                }
            )
            summary.attributes["moderation.categories"] = flagged
        return summary


MODERATIONS = Moderations()

_FORMATS = one_of("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
#: An uploaded file's type and size (its name, chosen by the user, is content).
_FILE = {"content_type": TEXT, "size": NUMBER}
_GRANULARITY = one_of("word", "segment")


class Transcriptions(ApiSpec):
    """OpenAI audio transcriptions (a multipart upload; streamed for some models)."""

    name = "audio.transcriptions"
    operation = "transcription"
    span_type = "LLM"
    message_format = None
    content_keys = ("prompt",)
    text_response = True
    #: The file's type and size, the model and settings; never the prompt, the file's name or
    #: the text.
    kept_request: Shape = {
        "model": TEXT,
        "file": _FILE,
        "language": KIND,
        "response_format": _FORMATS,
        "temperature": NUMERIC,
        "timestamp_granularities[]": either(_GRANULARITY, [_GRANULARITY]),
        "stream": either(FLAG, one_of("true", "false")),
        "chunking_strategy": one_of("auto"),
    }
    kept_response: Shape = {
        "usage": COUNTS,
        "duration": NUMBER,
        "error": ERROR,
    }

    def parameters(self, request: dict[str, Any]) -> dict[str, Any]:
        """The form's ``temperature`` as a number."""
        try:
            return {"temperature": float(request["temperature"])}
        except (KeyError, TypeError, ValueError):
            return {}

    def summarize(self, response: Any) -> ResponseSummary:
        """Usage (token-based models), error, and ``audio.duration_s`` (``verbose_json``)."""
        if not isinstance(response, dict):
            return ResponseSummary()
        summary = ResponseSummary(
            usage=audio_usage(response.get("usage")),
            error=error_message(response) if response.get("error") else None,
        )
        usage = response.get("usage")
        seconds = response.get("duration")
        if isinstance(usage, dict) and usage.get("type") == "duration":
            seconds = usage.get("seconds", seconds)
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
            summary.attributes["audio.duration_s"] = seconds
        return summary

    def new_stream(self) -> TranscriptStream:
        """A fresh accumulator for one streamed transcription."""
        return TranscriptStream()


TRANSCRIPTIONS = Transcriptions()


class Translations(Transcriptions):
    """OpenAI audio translations (into English; a multipart upload)."""

    name = "audio.translations"
    operation = "translation"


TRANSLATIONS = Translations()


class TranscriptStream(StreamBase):
    """Accumulates ``transcript.text.delta`` events into ``{"text", "usage"}``; the
    ``transcript.text.done`` event, when it arrives, gives the whole text."""

    __slots__ = ("_done", "_pieces", "_usage")
    end_markers = (b"transcript.text.done", b"error")

    def __init__(self) -> None:
        super().__init__()
        self._pieces: list[str] = []
        self._done: str | None = None
        self._usage: Any = None

    def add(self, event: str, data: str) -> None:
        """Take one event."""
        payload = parse_event(data, self._problems)
        if payload is None:
            return
        kind = payload.get("type") or event
        if kind == "transcript.text.delta" and isinstance(payload.get("delta"), str):
            add_piece(self._pieces, payload["delta"])
        elif kind == "transcript.text.done":
            if isinstance(payload.get("text"), str):
                self._done = payload["text"]
            self._usage = payload.get("usage", self._usage)
            self.completed = True
        elif kind == "error" or payload.get("error"):
            self._error = payload.get("error") or payload

    def result(self) -> dict[str, Any] | None:
        """``{"text", "usage"}`` from the events seen so far."""
        if self._done is None and not self._pieces and self._error is None:
            return None
        result: dict[str, Any] = {
            "text": self._done if self._done is not None else "".join(self._pieces)
        }
        if self._usage is not None:
            result["usage"] = self._usage
        if self._error is not None:
            result["error"] = self._error
        return result


class Speech(ApiSpec):
    """OpenAI speech: text in, audio out (recorded as its type and size)."""

    name = "audio.speech"
    operation = "speech"
    span_type = "LLM"
    message_format = None
    content_keys = ("input", "instructions")
    binary_response = True
    kept_request: Shape = {
        "model": TEXT,
        "voice": VOICE,
        "response_format": one_of("mp3", "opus", "aac", "flac", "wav", "pcm"),
        "speed": NUMBER,
        "stream_format": one_of("sse", "audio"),
    }
    kept_response: Shape = {"content_type": TEXT, "size": NUMBER, "usage": COUNTS, "error": ERROR}

    def summarize(self, response: Any) -> ResponseSummary:
        """Usage (streamed speech reports it), error, ``audio.size`` and ``audio.content_type``."""
        if not isinstance(response, dict):
            return ResponseSummary()
        summary = ResponseSummary(
            usage=audio_usage(response.get("usage")),
            error=error_message(response) if response.get("error") else None,
        )
        if isinstance(response.get("size"), int):
            summary.attributes["audio.size"] = response["size"]
        if isinstance(response.get("content_type"), str):
            summary.attributes["audio.content_type"] = response["content_type"]
        return summary

    def new_stream(self) -> SpeechStream:
        """A fresh accumulator for speech streamed as events (``stream_format: "sse"``)."""
        return SpeechStream()


SPEECH = Speech()


class SpeechStream(StreamBase):
    """Counts the audio of ``speech.audio.delta`` events (base64) without keeping it; the
    ``speech.audio.done`` event gives the usage."""

    __slots__ = ("_size", "_usage")
    end_markers = (b"speech.audio.done", b"error")

    def __init__(self) -> None:
        super().__init__()
        self._size = 0
        self._usage: Any = None

    def add(self, event: str, data: str) -> None:
        """Take one event."""
        payload = parse_event(data, self._problems)
        if payload is None:
            return
        kind = payload.get("type") or event
        if kind == "speech.audio.delta" and isinstance(payload.get("audio"), str):
            self._size += decoded_size(payload["audio"])
        elif kind == "speech.audio.done":
            self._usage = payload.get("usage", self._usage)
            self.completed = True
        elif kind == "error" or payload.get("error"):
            self._error = payload.get("error") or payload

    def result(self) -> dict[str, Any] | None:
        """``{"content_type", "size", "usage"}`` of the audio streamed so far."""
        result: dict[str, Any] = {"content_type": "audio/base64-events", "size": self._size}
        if self._usage is not None:
            result["usage"] = self._usage
        if self._error is not None:
            result["error"] = self._error
        return result
