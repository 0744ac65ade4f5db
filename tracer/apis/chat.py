"""OpenAI chat completions (``POST .../chat/completions``), streamed or not.

The stream accumulator rebuilds the non-streaming ``chat.completion`` object from
``chat.completion.chunk`` events: every choice, its delta merged by the one rule of
:mod:`tracer.apis.merge` (content — also Databricks' list-of-content-items form, joined as
text —, refusal, tool calls by index with complete arguments, legacy ``function_call``,
``audio``, reasoning fields of compatible servers and any field yet to be invented), logprobs,
finish reasons and the usage of a final usage chunk. It keeps only the reassembled output.
"""

from __future__ import annotations

import json
from typing import Any

from tracer.apis.base import (
    ApiSpec,
    ResponseSummary,
    StreamBase,
    count_at,
    error_message,
    parse_event,
    strings_of,
    token_usage,
)
from tracer.apis.keep import (
    COUNTS,
    ERROR,
    FLAG,
    NUMBER,
    PROMPT_CACHE_RETENTION,
    REASONING_EFFORT,
    SAMPLING,
    SERVICE_TIER,
    TEXT,
    VERBOSITY,
    VOICE,
    Shape,
    either,
    one_of,
)
from tracer.apis.merge import Merged

__all__ = [
    "CHAT",
    "CHAT_REQUEST",
    "CHAT_RESPONSE",
    "ChatCompletions",
    "ChatStream",
    "OpenAIChunkStream",
    "openai_usage",
]


def openai_usage(usage: Any) -> dict[str, int] | None:
    """MLflow's token-usage dict from an OpenAI ``usage`` object (chat or completions)."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return token_usage(
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        usage.get("total_tokens"),
        cached if cached is not None else usage.get("cache_read_input_tokens"),
        usage.get("cache_creation_input_tokens"),
    )


_TOOL_NAMES = {"function": {"name": TEXT}, "custom": {"name": TEXT}}
_TOOL_TYPE = one_of("function", "custom", "allowed_tools")


#: A chat request with content capture off: sampling and length parameters, enumerated
#: settings, tool names; never messages, prediction, metadata, user, stop sequences, schemas.
CHAT_REQUEST: Shape = {
    **SAMPLING,
    "max_completion_tokens": NUMBER,
    "logprobs": FLAG,
    "top_logprobs": NUMBER,
    "stream_options": {"include_usage": FLAG, "include_obfuscation": FLAG},
    "parallel_tool_calls": FLAG,
    "store": FLAG,
    "service_tier": SERVICE_TIER,
    "reasoning_effort": REASONING_EFFORT,
    "verbosity": VERBOSITY,
    "modalities": [one_of("text", "audio")],
    "audio": {
        "format": one_of("wav", "aac", "mp3", "flac", "opus", "pcm16"),
        "voice": VOICE,
    },
    "response_format": {"type": one_of("text", "json_object", "json_schema")},
    "prompt_cache_retention": PROMPT_CACHE_RETENTION,
    "web_search_options": {"search_context_size": one_of("low", "medium", "high")},
    "tools": [{"type": _TOOL_TYPE, **_TOOL_NAMES}],
    "tool_choice": either(
        one_of("none", "auto", "required"),
        {
            "type": _TOOL_TYPE,
            **_TOOL_NAMES,
            "allowed_tools": {
                "mode": one_of("auto", "required"),
                "tools": [{"type": _TOOL_TYPE, **_TOOL_NAMES}],
            },
        },
    ),
    "functions": [{"name": TEXT}],
    "function_call": either(one_of("none", "auto"), {"name": TEXT}),
}
#: A chat completion with content capture off: ids, model, usage, finish reasons, the names
#: of the tools called; never the message's content, refusal, arguments or audio.
CHAT_RESPONSE: Shape = {
    "id": TEXT,
    "object": TEXT,
    "created": NUMBER,
    "model": TEXT,
    "system_fingerprint": TEXT,
    "service_tier": TEXT,
    "usage": COUNTS,
    "error": ERROR,
    "choices": [
        {
            "index": NUMBER,
            "finish_reason": TEXT,
            "message": {
                "role": TEXT,
                "tool_calls": [{"id": TEXT, "type": TEXT, **_TOOL_NAMES}],
                "function_call": {"name": TEXT},
                "audio": {"id": TEXT, "expires_at": NUMBER},
            },
        }
    ],
}


def content_text(content: Any) -> str | None:
    """Content as text: a string as is; a list of content items joined by their text."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            item["text"]
            for item in content
            if isinstance(item, dict)
            and isinstance(item.get("text"), str)
            and item.get("type", "text") == "text"
        )
    return str(content)


class ChatCompletions(ApiSpec):
    """OpenAI chat completions."""

    name = "chat.completions"
    operation = "chat"
    span_type = "CHAT_MODEL"
    message_format = "openai"
    content_keys: tuple[str, ...] = ("messages",)
    kept_request = CHAT_REQUEST
    kept_response = CHAT_RESPONSE

    def summarize(self, response: Any) -> ResponseSummary:
        """Model, usage, finish reasons, id and error of a ``chat.completion`` object."""
        if not isinstance(response, dict):
            return ResponseSummary()
        reasons = strings_of(response.get("choices"), "finish_reason")
        model = response.get("model")
        rid = response.get("id")
        return ResponseSummary(
            model=model if isinstance(model, str) and model else None,
            usage=openai_usage(response.get("usage")),
            finish_reasons=reasons,
            response_id=rid if isinstance(rid, str) else None,
            error=error_message(response) if "error" in response else None,
            reasoning_tokens=count_at(
                response, "usage", "completion_tokens_details", "reasoning_tokens"
            ),
        )

    def new_stream(self) -> OpenAIChunkStream:
        """A fresh accumulator for one streamed chat completion."""
        return ChatStream()


CHAT = ChatCompletions()


class _Choice:
    """One streamed choice: its delta merged by :class:`~tracer.apis.merge.Merged`, its finish
    reason and its logprobs (token lists, concatenated)."""

    __slots__ = ("delta", "finish_reason", "logprobs")

    def __init__(self) -> None:
        self.delta = Merged()
        self.finish_reason: str | None = None
        self.logprobs: dict[str, list[Any]] | None = None

    def add_delta(self, delta: dict[str, Any]) -> None:
        content = delta.get("content")
        if isinstance(content, list):  # Databricks' list of content items: its text
            delta = {**delta, "content": content_text(content)}
        self.delta.add(delta)

    def add_logprobs(self, logprobs: dict[str, Any]) -> None:
        if self.logprobs is None:
            self.logprobs = {}
        for key, value in logprobs.items():
            if isinstance(value, list):
                self.logprobs.setdefault(key, []).extend(value)

    def message(self) -> dict[str, Any]:
        merged = self.delta.result()
        tools = merged.pop("tool_calls", None)
        content = merged.pop("content", None)
        if content is not None and not isinstance(content, str):
            content = content_text(content)
        refusal = merged.pop("refusal", None)
        message: dict[str, Any] = {
            "role": merged.pop("role", None) or "assistant",
            "content": None if tools and not content else content,
            "refusal": refusal if isinstance(refusal, str) or refusal is None else str(refusal),
        }
        if isinstance(tools, list) and tools:
            message["tool_calls"] = [_tool_call(call) for call in tools]
        message.update(merged)
        return message


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """A merged tool-call delta in the non-streaming form (arguments always a string)."""
    function = call.get("function")
    function = dict(function) if isinstance(function, dict) else {}
    arguments = function.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    function["name"] = function.get("name") or ""
    function["arguments"] = arguments
    result = {"id": call.get("id"), "type": call.get("type") or "function", "function": function}
    result.update((k, v) for k, v in call.items() if k not in result)
    return result


class OpenAIChunkStream(StreamBase):
    """What chat and legacy-completion streams share: ``[DONE]``, error chunks, the header
    fields of the first chunks, the final usage chunk, and choices found by index (or by
    position when a server omits it). Subclasses merge one choice's piece and build a choice."""

    __slots__ = ("_choices", "_header", "_usage")
    end_markers = (b"[DONE]", b"error")
    object_name = ""
    header_keys: tuple[str, ...] = ("id", "created", "model", "system_fingerprint")

    def __init__(self) -> None:
        super().__init__()
        self._header: dict[str, Any] = {}
        self._choices: dict[int, Any] = {}
        self._usage: Any = None

    def add(self, event: str, data: str) -> None:
        """Take one SSE event of the stream."""
        if data == "[DONE]":
            self.completed = True
            return
        chunk = parse_event(data, self._problems)
        if chunk is None:
            return
        if chunk.get("error"):
            self._error = chunk["error"]
            return
        for key in self.header_keys:
            if key not in self._header and chunk.get(key):  # Azure's first chunk has model ""
                self._header[key] = chunk[key]
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        x_groq = chunk.get("x_groq")  # Groq streams its usage in the last chunk's x_groq
        if isinstance(x_groq, dict) and x_groq.get("usage") and self._usage is None:
            self._usage = x_groq["usage"]
        choices = chunk.get("choices")
        for position, raw in enumerate(choices if isinstance(choices, list) else ()):
            if isinstance(raw, dict):
                index = raw.get("index")
                self._add_choice(index if isinstance(index, int) else position, raw)

    def _add_choice(self, index: int, raw: dict[str, Any]) -> None:
        raise NotImplementedError

    def _choice(self, index: int, state: Any) -> dict[str, Any]:
        raise NotImplementedError

    def result(self) -> dict[str, Any] | None:
        """The non-streaming object rebuilt from the events seen so far."""
        if not self._header and not self._choices and self._usage is None:
            return {"error": self._error} if self._error is not None else None
        result: dict[str, Any] = {"id": self._header.get("id"), "object": self.object_name}
        for key in self.header_keys[1:]:
            if key in self._header:
                result[key] = self._header[key]
        result["choices"] = [self._choice(i, state) for i, state in sorted(self._choices.items())]
        if self._usage is not None:
            result["usage"] = self._usage
        if self._error is not None:
            result["error"] = self._error
        return result


class ChatStream(OpenAIChunkStream):
    """Accumulates ``chat.completion.chunk`` events into one ``chat.completion`` object."""

    __slots__ = ()
    object_name = "chat.completion"
    header_keys = ("id", "created", "model", "system_fingerprint", "service_tier")

    def _add_choice(self, index: int, raw: dict[str, Any]) -> None:
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = _Choice()
        delta = raw.get("delta")
        if isinstance(delta, dict):
            choice.add_delta(delta)
        if raw.get("finish_reason"):
            choice.finish_reason = raw["finish_reason"]
        if isinstance(raw.get("logprobs"), dict):
            choice.add_logprobs(raw["logprobs"])

    def _choice(self, index: int, state: _Choice) -> dict[str, Any]:
        return {
            "index": index,
            "message": state.message(),
            "logprobs": state.logprobs,
            "finish_reason": state.finish_reason,
        }
