"""OpenAI legacy completions (``POST .../completions``), streamed or not.

A stream of ``text_completion`` chunks is rebuilt into the non-streaming object: every
choice's text (``n > 1``, ``best_of``, several prompts) and any other field of a choice, merged
by the rule of :mod:`tracer.apis.merge`; logprobs, finish reasons and the usage of a final
usage chunk — which autolog drops.
"""

from __future__ import annotations

from typing import Any

from tracer.apis.chat import ChatCompletions, OpenAIChunkStream
from tracer.apis.keep import COUNTS, ERROR, FLAG, NUMBER, SAMPLING, TEXT, Shape
from tracer.apis.merge import Merged

__all__ = ["COMPLETIONS", "CompletionStream", "Completions"]

_LOGPROB_LISTS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")
#: Choice fields that are not merged as deltas: read on their own.
_CHOICE_FIELDS = ("index", "finish_reason", "logprobs")


class Completions(ChatCompletions):
    """OpenAI legacy text completions: read like chat completions (choices with finish
    reasons, OpenAI usage), with their own stream."""

    name = "completions"
    operation = "text_completion"
    span_type = "LLM"
    message_format = "openai"
    content_keys = ("prompt", "suffix")
    kept_request: Shape = {
        **SAMPLING,
        "best_of": NUMBER,
        "echo": FLAG,
        "logprobs": NUMBER,
        "stream_options": {"include_usage": FLAG, "include_obfuscation": FLAG},
    }
    kept_response: Shape = {
        "id": TEXT,
        "object": TEXT,
        "created": NUMBER,
        "model": TEXT,
        "system_fingerprint": TEXT,
        "usage": COUNTS,
        "error": ERROR,
        "choices": [{"index": NUMBER, "finish_reason": TEXT}],
    }

    def new_stream(self) -> CompletionStream:
        """A fresh accumulator for one streamed completion."""
        return CompletionStream()


COMPLETIONS = Completions()


class CompletionStream(OpenAIChunkStream):
    """Accumulates ``text_completion`` chunks into one ``text_completion`` object."""

    __slots__ = ()
    object_name = "text_completion"

    def _add_choice(self, index: int, raw: dict[str, Any]) -> None:
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = {
                "merged": Merged(),
                "logprobs": None,
                "finish_reason": None,
            }
        choice["merged"].add({k: v for k, v in raw.items() if k not in _CHOICE_FIELDS})
        if raw.get("finish_reason"):
            choice["finish_reason"] = raw["finish_reason"]
        logprobs = raw.get("logprobs")
        if isinstance(logprobs, dict):
            merged = choice["logprobs"] = choice["logprobs"] or {k: [] for k in _LOGPROB_LISTS}
            for key in _LOGPROB_LISTS:
                if isinstance(logprobs.get(key), list):
                    merged[key].extend(logprobs[key])

    def _choice(self, index: int, state: dict[str, Any]) -> dict[str, Any]:
        merged = state["merged"].result()
        text = merged.pop("text", "")
        choice = {
            "index": index,
            "text": text if isinstance(text, str) else str(text),
            "logprobs": state["logprobs"],
            "finish_reason": state["finish_reason"],
        }
        choice.update(merged)
        return choice
