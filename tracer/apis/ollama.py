"""Ollama's native API: ``POST /api/chat``, ``/api/generate``, ``/api/embed`` (and the older
``/api/embeddings``).

Ollama streams by default, as newline-delimited JSON (``application/x-ndjson``): each line a
chunk of the final object, the last one carrying ``done: true``, ``done_reason`` and the counts
(``prompt_eval_count`` in, ``eval_count`` out) and durations. The accumulator joins the text
(``message.content``, ``message.thinking``, ``response``, ``thinking``) by the rule of
:mod:`tracer.apis.merge`, keeps every tool call (Ollama sends each one whole, with its
arguments as an object), and takes the rest from the last chunk.
"""

from __future__ import annotations

import json
from typing import Any

from tracer.apis.base import (
    ApiSpec,
    ResponseSummary,
    StreamBase,
    embedding_attributes,
    error_message,
    int_or_none,
    parse_event,
    renamed,
    str_or_none,
    token_usage,
)
from tracer.apis.keep import COUNTS, FLAG, KIND, MESSAGE, NUMBER, TEXT, Shape, either, one_of
from tracer.apis.merge import Merged
from tracer.config import TracerConfig

__all__ = [
    "OLLAMA_CHAT",
    "OLLAMA_EMBED",
    "OLLAMA_GENERATE",
    "OllamaChat",
    "OllamaEmbed",
    "OllamaGenerate",
    "OllamaStream",
    "ollama_usage",
]

_OPTIONS = {
    key: NUMBER
    for key in (
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "typical_p",
        "num_predict",
        "num_ctx",
        "num_keep",
        "seed",
        "repeat_penalty",
        "repeat_last_n",
        "presence_penalty",
        "frequency_penalty",
    )
}
_SETTINGS: dict[str, Any] = {
    "model": TEXT,
    "stream": FLAG,
    "raw": FLAG,
    "think": either(FLAG, one_of("low", "medium", "high")),
    "keep_alive": NUMBER,
    "format": one_of("json"),
    "options": _OPTIONS,
}
#: The counts and durations of the final chunk.
_FINAL: dict[str, Any] = {
    "model": TEXT,
    "created_at": TEXT,
    "done": FLAG,
    "done_reason": TEXT,
    **{
        key: NUMBER
        for key in (
            "total_duration",
            "load_duration",
            "prompt_eval_count",
            "prompt_eval_duration",
            "eval_count",
            "eval_duration",
        )
    },
    "error": MESSAGE,
}


#: ``options`` under OpenAI's names (for ``gen_ai.request.*``).
_PARAMETER_NAMES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "num_predict": "max_tokens",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "stop": "stop",
}


def ollama_usage(response: Any) -> dict[str, int] | None:
    """MLflow's token-usage dict from the counts of a final chunk."""
    if not isinstance(response, dict):
        return None
    return token_usage(response.get("prompt_eval_count"), response.get("eval_count"))


def _summary(response: Any) -> ResponseSummary:
    if not isinstance(response, dict):
        return ResponseSummary()
    reason = str_or_none(response.get("done_reason"))
    summary = ResponseSummary(
        model=str_or_none(response.get("model")),
        usage=ollama_usage(response),
        finish_reasons=[reason] if reason else [],
        error=error_message(response) if response.get("error") else None,
    )
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        nanoseconds = int_or_none(response.get(key))
        if nanoseconds is not None:
            summary.attributes[f"ollama.{key}_ms"] = round(nanoseconds / 1e6, 3)
    return summary


class OllamaChat(ApiSpec):
    """Ollama ``/api/chat``."""

    stream_framing = "ndjson"
    streams_by_default = True

    name = "ollama.chat"
    operation = "chat"
    span_type = "CHAT_MODEL"
    message_format = None
    content_keys = ("messages",)
    #: Never messages, tool descriptions or schemas, or a ``format`` JSON schema.
    kept_request: Shape = {**_SETTINGS, "tools": [{"type": KIND, "function": {"name": TEXT}}]}
    #: Never the message's content, thinking or tool arguments.
    kept_response: Shape = {
        **_FINAL,
        "message": {"role": TEXT, "tool_calls": [{"function": {"name": TEXT}}]},
    }

    def parameters(self, request: dict[str, Any]) -> dict[str, Any]:
        """``options`` under OpenAI's names."""
        return renamed(request.get("options"), _PARAMETER_NAMES)

    def summarize(self, response: Any) -> ResponseSummary:
        """Model, usage, ``done_reason``, error and the durations (``ollama.*_ms``)."""
        return _summary(response)

    def reply_messages(self, response: Any) -> list[dict[str, Any]] | None:
        """The assistant's message, its tool calls in OpenAI's form (an id, the arguments as
        a JSON string)."""
        message = response.get("message") if isinstance(response, dict) else None
        if not isinstance(message, dict):
            return None
        reply: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            reply["tool_calls"] = [
                {
                    "id": call.get("id") or f"call_{i}",
                    "type": "function",
                    "function": {
                        "name": function.get("name"),
                        "arguments": json.dumps(function.get("arguments") or {}),
                    },
                }
                for i, call in enumerate(calls)
                if isinstance(call, dict) and isinstance(function := call.get("function"), dict)
            ]
        return [reply]

    def new_stream(self) -> OllamaStream:
        """A fresh accumulator for one streamed chat."""
        return OllamaStream("message")


OLLAMA_CHAT = OllamaChat()


class OllamaGenerate(ApiSpec):
    """Ollama ``/api/generate``."""

    stream_framing = "ndjson"
    streams_by_default = True

    name = "ollama.generate"
    operation = "text_completion"
    span_type = "LLM"
    message_format = None
    content_keys = ("prompt", "suffix", "system", "template", "images", "context")
    kept_request: Shape = dict(_SETTINGS)
    #: Never the response, its thinking or its ``context`` (the conversation's tokens).
    kept_response: Shape = dict(_FINAL)

    def parameters(self, request: dict[str, Any]) -> dict[str, Any]:
        """``options`` under OpenAI's names."""
        return renamed(request.get("options"), _PARAMETER_NAMES)

    def summarize(self, response: Any) -> ResponseSummary:
        """Model, usage, ``done_reason``, error and the durations (``ollama.*_ms``)."""
        return _summary(response)

    def new_stream(self) -> OllamaStream:
        """A fresh accumulator for one streamed generation."""
        return OllamaStream(None)


OLLAMA_GENERATE = OllamaGenerate()


#: The text fields of ``/api/generate`` chunks, joined; every other field is the latest.
_GENERATE_TEXT = ("response", "thinking")


class OllamaStream(StreamBase):
    """Accumulates NDJSON chunks into the final object: the text joined (``message`` for chat,
    ``response`` and ``thinking`` for generate), tool calls appended, every other field from
    the latest chunk that has it."""

    __slots__ = ("_fields", "_message_key", "_text", "_tool_calls")
    #: ``"done": true`` may be spelt with any spacing; a ``done`` key is in every line.
    end_markers = (b"true", b"error")

    def __init__(self, message_key: str | None) -> None:
        super().__init__()
        self._message_key = message_key
        self._fields: dict[str, Any] = {}
        self._text = Merged()
        self._tool_calls: list[Any] = []

    def add(self, event: str, data: str) -> None:
        """Take one line of the stream."""
        chunk = parse_event(data, self._problems)
        if chunk is None:
            return
        if chunk.get("error"):
            self._error = chunk["error"]
            return
        if self._message_key is not None:
            message = chunk.pop(self._message_key, None)
            if isinstance(message, dict):
                calls = message.get("tool_calls")
                if isinstance(calls, list):
                    self._tool_calls.extend(calls)
                self._text.add({k: v for k, v in message.items() if k != "tool_calls"})
        else:
            self._text.add({k: chunk.pop(k) for k in _GENERATE_TEXT if k in chunk})
        self._fields.update((k, v) for k, v in chunk.items() if v is not None)
        if chunk.get("done") is True:
            self.completed = True

    def result(self) -> dict[str, Any] | None:
        """The non-streaming object rebuilt from the lines seen so far."""
        text = self._text.result()
        if not self._fields and not text and not self._tool_calls:
            return {"error": self._error} if self._error is not None else None
        result = dict(self._fields)
        if self._message_key is None:
            result.update(text)
        else:
            message = {"role": "assistant", "content": ""} | text
            if self._tool_calls:
                message["tool_calls"] = list(self._tool_calls)
            result[self._message_key] = message
        if self._error is not None:
            result["error"] = self._error
        return result


class OllamaEmbed(ApiSpec):
    """Ollama ``/api/embed`` (and the older ``/api/embeddings``): vectors replaced by their
    dimension unless ``TRACER_CAPTURE_EMBEDDINGS``."""

    name = "ollama.embed"
    operation = "embeddings"
    span_type = "EMBEDDING"
    message_format = None
    content_keys = ("input", "prompt")
    kept_request: Shape = {
        "model": TEXT,
        "truncate": FLAG,
        "dimensions": NUMBER,
        "keep_alive": NUMBER,
        "options": _OPTIONS,
    }
    kept_response: Shape = {
        **{k: v for k, v in _FINAL.items() if not k.startswith(("done", "eval"))},
        "dimensions": [NUMBER],
        "embedding_dimensions": NUMBER,
        "usage": COUNTS,
    }

    def summarize(self, response: Any) -> ResponseSummary:
        """Model, usage (``prompt_eval_count``), error, ``embeddings.count`` and
        ``embeddings.dimensions``."""
        summary = _summary(response)
        if isinstance(response, dict):
            vectors = response.get("embeddings")
            if not isinstance(vectors, list) and isinstance(response.get("embedding"), list):
                vectors = [response["embedding"]]
            if isinstance(vectors, list):
                summary.attributes.update(
                    embedding_attributes([len(v) if isinstance(v, list) else None for v in vectors])
                )
        return summary

    def outputs(self, response: Any, config: TracerConfig) -> Any:
        """The response with the vectors replaced by their dimensions (``dimensions``, or
        ``embedding_dimensions`` for ``/api/embeddings``), unless embeddings are captured."""
        if isinstance(response, dict) and not (
            config.capture_embeddings and config.capture_content
        ):
            response = dict(response)
            vectors = response.pop("embeddings", None)
            if isinstance(vectors, list):
                response["dimensions"] = [len(v) if isinstance(v, list) else None for v in vectors]
            vector = response.pop("embedding", None)
            if isinstance(vector, list):
                response["embedding_dimensions"] = len(vector)
        return super().outputs(response, config)


OLLAMA_EMBED = OllamaEmbed()
