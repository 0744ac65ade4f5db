"""OpenAI chat completions (``POST .../chat/completions``), streamed or not.

The stream accumulator rebuilds the non-streaming ``chat.completion`` object from
``chat.completion.chunk`` events: every choice, content (also Databricks' list-of-content-items
form, joined as text), refusal, tool calls merged by index with complete arguments, logprobs,
finish reasons and the usage of a final usage chunk. It keeps only the reassembled output.
"""

from __future__ import annotations

import json
from typing import Any

from tracer.apis.base import (
    ApiSpec,
    ResponseSummary,
    StreamBase,
    add_piece,
    error_message,
    parse_event,
    token_usage,
)

__all__ = ["CHAT", "ChatCompletions", "ChatStream", "OpenAIChunkStream", "openai_usage"]


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

    def summarize(self, response: Any) -> ResponseSummary:
        """Model, usage, finish reasons, id and error of a ``chat.completion`` object."""
        if not isinstance(response, dict):
            return ResponseSummary()
        choices = response.get("choices")
        reasons = [
            c["finish_reason"]
            for c in (choices if isinstance(choices, list) else ())
            if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)
        ]
        model = response.get("model")
        rid = response.get("id")
        return ResponseSummary(
            model=model if isinstance(model, str) and model else None,
            usage=openai_usage(response.get("usage")),
            finish_reasons=reasons,
            response_id=rid if isinstance(rid, str) else None,
            error=error_message(response) if "error" in response else None,
        )

    def strip_content(self, response: dict[str, Any]) -> dict[str, Any]:
        """The response with each choice reduced to its index and finish reason."""
        stripped = {k: v for k, v in response.items() if k != "choices"}
        choices = response.get("choices")
        if isinstance(choices, list):
            stripped["choices"] = [
                {k: c.get(k) for k in ("index", "finish_reason")}
                for c in choices
                if isinstance(c, dict)
            ]
        return stripped

    def new_stream(self) -> OpenAIChunkStream:
        """A fresh accumulator for one streamed chat completion."""
        return ChatStream()


CHAT = ChatCompletions()


class _Choice:
    __slots__ = ("content", "extra", "finish_reason", "logprobs", "refusal", "role", "tools")

    def __init__(self) -> None:
        self.role: str | None = None
        self.content: list[str] | None = None
        self.refusal: list[str] | None = None
        self.tools: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.logprobs: dict[str, list[Any]] | None = None
        self.extra: dict[str, Any] = {}  # other delta fields (e.g. reasoning_content)

    def add_delta(self, delta: dict[str, Any]) -> None:
        for key, value in delta.items():
            if value is None:
                continue
            if key == "role":
                self.role = self.role or value
            elif key == "content":
                if self.content is None:
                    self.content = []
                text = content_text(value)
                if text:
                    add_piece(self.content, text)
            elif key == "refusal":
                if self.refusal is None:
                    self.refusal = []
                add_piece(self.refusal, str(value))
            elif key == "tool_calls" and isinstance(value, list):
                for call in value:
                    if isinstance(call, dict):
                        self._add_tool_delta(call)
            elif isinstance(value, str) and isinstance(self.extra.get(key), str):
                self.extra[key] += value
            else:
                self.extra[key] = value

    def _add_tool_delta(self, call: dict[str, Any]) -> None:
        index = call.get("index")
        if not isinstance(index, int):
            # Some servers omit the index: a new id starts a new call, otherwise it continues
            # the latest one.
            if call.get("id") or not self.tools:
                index = max(self.tools, default=-1) + 1
            else:
                index = max(self.tools)
        entry = self.tools.get(index)
        if entry is None:
            entry = self.tools[index] = {"id": None, "type": "function", "name": "", "args": []}
        if call.get("id") and not entry["id"]:
            entry["id"] = call["id"]
        if call.get("type"):
            entry["type"] = call["type"]
        function = call.get("function")
        if isinstance(function, dict):
            name = function.get("name")
            if name and not entry["name"]:
                entry["name"] = name
            arguments = function.get("arguments")
            if arguments:
                add_piece(
                    entry["args"],
                    arguments if isinstance(arguments, str) else json.dumps(arguments),
                )

    def add_logprobs(self, logprobs: dict[str, Any]) -> None:
        if self.logprobs is None:
            self.logprobs = {}
        for key, value in logprobs.items():
            if isinstance(value, list):
                self.logprobs.setdefault(key, []).extend(value)

    def message(self) -> dict[str, Any]:
        content = "".join(self.content) if self.content is not None else None
        message: dict[str, Any] = {
            "role": self.role or "assistant",
            "content": None if self.tools and not content else content,
            "refusal": "".join(self.refusal) if self.refusal is not None else None,
        }
        if self.tools:
            message["tool_calls"] = [
                {
                    "id": t["id"],
                    "type": t["type"],
                    "function": {"name": t["name"], "arguments": "".join(t["args"])},
                }
                for _, t in sorted(self.tools.items())
            ]
        message.update(self.extra)
        return message


class OpenAIChunkStream(StreamBase):
    """What chat and legacy-completion streams share: ``[DONE]``, error chunks, the header
    fields of the first chunks, the final usage chunk, and choices found by index (or by
    position when a server omits it). Subclasses merge one choice's piece and build a choice."""

    __slots__ = ("_choices", "_header", "_usage")
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
