"""OpenAI legacy completions (``POST .../completions``), streamed or not.

A stream of ``text_completion`` chunks is rebuilt into the non-streaming object: every
choice's text (``n > 1``, ``best_of``, several prompts), logprobs, finish reasons and the
usage of a final usage chunk — which autolog drops.
"""

from __future__ import annotations

from typing import Any

from tracer.apis.base import StreamBase, add_piece, parse_event
from tracer.apis.chat import ChatCompletions

__all__ = ["COMPLETIONS", "CompletionStream", "Completions"]

_HEADER_KEYS = ("id", "created", "model", "system_fingerprint")
_LOGPROB_LISTS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


class Completions(ChatCompletions):
    """OpenAI legacy text completions: read like chat completions (choices with finish
    reasons, OpenAI usage), with their own stream."""

    name = "completions"
    operation = "text_completion"
    span_type = "LLM"
    message_format = "openai"
    content_keys = ("prompt", "suffix")

    def new_stream(self) -> CompletionStream:
        """A fresh accumulator for one streamed completion."""
        return CompletionStream()


COMPLETIONS = Completions()


class CompletionStream(StreamBase):
    """Accumulates ``text_completion`` chunks into one ``text_completion`` object."""

    __slots__ = ("_choices", "_header", "_usage")

    def __init__(self) -> None:
        super().__init__()
        self._header: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
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
        for key in _HEADER_KEYS:
            if key not in self._header and chunk.get(key):  # Azure's first chunk has model ""
                self._header[key] = chunk[key]
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        for position, raw in enumerate(choices if isinstance(choices, list) else ()):
            if not isinstance(raw, dict):
                continue
            index = raw.get("index")
            index = index if isinstance(index, int) else position
            choice = self._choices.setdefault(
                index, {"text": [], "logprobs": None, "finish_reason": None}
            )
            if isinstance(raw.get("text"), str):
                add_piece(choice["text"], raw["text"])
            if raw.get("finish_reason"):
                choice["finish_reason"] = raw["finish_reason"]
            logprobs = raw.get("logprobs")
            if isinstance(logprobs, dict):
                merged = choice["logprobs"] = choice["logprobs"] or {k: [] for k in _LOGPROB_LISTS}
                for key in _LOGPROB_LISTS:
                    if isinstance(logprobs.get(key), list):
                        merged[key].extend(logprobs[key])

    def result(self) -> dict[str, Any] | None:
        """The ``text_completion`` object rebuilt from the events seen so far."""
        if not self._header and not self._choices and self._usage is None:
            return {"error": self._error} if self._error is not None else None
        result: dict[str, Any] = {"id": self._header.get("id"), "object": "text_completion"}
        for key in _HEADER_KEYS[1:]:
            if key in self._header:
                result[key] = self._header[key]
        result["choices"] = [
            {
                "index": index,
                "text": "".join(c["text"]),
                "logprobs": c["logprobs"],
                "finish_reason": c["finish_reason"],
            }
            for index, c in sorted(self._choices.items())
        ]
        if self._usage is not None:
            result["usage"] = self._usage
        if self._error is not None:
            result["error"] = self._error
        return result
