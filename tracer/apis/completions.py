"""OpenAI legacy completions (``POST .../completions``), streamed or not.

A stream of ``text_completion`` chunks is rebuilt into the non-streaming object: every
choice's text (``n > 1``, ``best_of``, several prompts), logprobs, finish reasons and the
usage of a final usage chunk — which autolog drops.
"""

from __future__ import annotations

from typing import Any

from tracer.apis.base import add_piece
from tracer.apis.chat import ChatCompletions, OpenAIChunkStream

__all__ = ["COMPLETIONS", "CompletionStream", "Completions"]

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


class CompletionStream(OpenAIChunkStream):
    """Accumulates ``text_completion`` chunks into one ``text_completion`` object."""

    __slots__ = ()
    object_name = "text_completion"

    def _add_choice(self, index: int, raw: dict[str, Any]) -> None:
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

    def _choice(self, index: int, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "index": index,
            "text": "".join(state["text"]),
            "logprobs": state["logprobs"],
            "finish_reason": state["finish_reason"],
        }
