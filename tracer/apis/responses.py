"""OpenAI Responses API (``POST .../responses``), streamed or not.

A stream of typed events is reassembled into the final ``response`` object: taken whole from
``response.completed`` (or ``response.failed`` / ``response.incomplete``) when one arrives,
otherwise rebuilt from ``response.created`` and the output items and deltas seen so far.
"""

from __future__ import annotations

import copy
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

__all__ = ["RESPONSES", "Responses", "ResponsesStream", "responses_usage"]

_TERMINAL = ("response.completed", "response.failed", "response.incomplete")


def responses_usage(usage: Any) -> dict[str, int] | None:
    """MLflow's token-usage dict from a Responses API ``usage`` object."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details")
    return token_usage(
        usage.get("input_tokens"),
        usage.get("output_tokens"),
        usage.get("total_tokens"),
        details.get("cached_tokens") if isinstance(details, dict) else None,
    )


def _function_tool(tool: Any) -> Any:
    """A Responses tool in the chat-completions form MLflow's tool view expects."""
    if not isinstance(tool, dict):
        return tool
    if tool.get("type") == "function" and "function" not in tool:
        definition = {k: v for k, v in tool.items() if k in ("name", "description", "parameters")}
        return {"type": "function", "function": definition}
    return tool


class Responses(ApiSpec):
    """OpenAI Responses API."""

    name = "responses"
    operation = "chat"
    span_type = "CHAT_MODEL"
    message_format = "openai"
    content_keys = ("input", "instructions")

    def tools(self, request: dict[str, Any]) -> list[Any] | None:
        """Function tools converted to the chat-completions form."""
        tools = super().tools(request)
        return [_function_tool(t) for t in tools] if tools else None

    def summarize(self, response: Any) -> ResponseSummary:
        """Model, usage (with cached tokens), status as finish reason, id and error."""
        if not isinstance(response, dict):
            return ResponseSummary()
        status = str_or_none(response.get("status"))
        error = None
        if response.get("error"):
            error = error_message(response) or "response failed"
        elif status == "failed":
            error = "response failed"
        summary = ResponseSummary(
            model=str_or_none(response.get("model")),
            usage=responses_usage(response.get("usage")),
            finish_reasons=[status] if status else [],
            response_id=str_or_none(response.get("id")),
            error=error,
        )
        details = response.get("incomplete_details")
        if isinstance(details, dict) and details.get("reason"):
            summary.attributes["responses.incomplete_reason"] = details["reason"]
        return summary

    def strip_content(self, response: dict[str, Any]) -> dict[str, Any]:
        """The response without its output items' content (types and statuses kept)."""
        stripped = {k: v for k, v in response.items() if k not in ("output", "instructions")}
        if isinstance(response.get("output"), list):
            stripped["output"] = [
                {k: item.get(k) for k in ("type", "id", "status")}
                for item in response["output"]
                if isinstance(item, dict)
            ]
        return stripped

    def new_stream(self) -> ResponsesStream:
        """A fresh accumulator for one streamed response."""
        return ResponsesStream()


RESPONSES = Responses()


class ResponsesStream(StreamBase):
    """Accumulates Responses API stream events into the final ``response`` object."""

    __slots__ = ("_args", "_final", "_items", "_response", "_texts")

    def __init__(self) -> None:
        super().__init__()
        self._response: dict[str, Any] | None = None  # from response.created / in_progress
        self._final: dict[str, Any] | None = None  # from a terminal event
        self._items: dict[int, dict[str, Any]] = {}
        self._texts: dict[tuple[int, int], list[str]] = {}
        self._args: dict[int, list[str]] = {}

    def add(self, event: str, data: str) -> None:
        """Take one typed event of the stream."""
        payload = parse_event(data, self._problems)
        if payload is None:
            return
        kind = payload.get("type") or event
        if kind in _TERMINAL:
            if isinstance(payload.get("response"), dict):
                self._final = payload["response"]
            self.completed = True
        elif kind in ("response.created", "response.in_progress", "response.queued"):
            if isinstance(payload.get("response"), dict):
                self._response = payload["response"]
        elif kind == "error":
            self._error = payload
        elif kind in ("response.output_item.added", "response.output_item.done"):
            index, item = payload.get("output_index"), payload.get("item")
            if isinstance(index, int) and isinstance(item, dict):
                self._items[index] = item
                if kind.endswith(".done"):
                    self._args.pop(index, None)
                    for key in [k for k in self._texts if k[0] == index]:
                        del self._texts[key]
        elif kind == "response.output_text.delta":
            index, part = payload.get("output_index"), payload.get("content_index")
            if isinstance(index, int) and isinstance(payload.get("delta"), str):
                key = (index, part if isinstance(part, int) else 0)
                add_piece(self._texts.setdefault(key, []), payload["delta"])
        elif kind == "response.function_call_arguments.delta":
            index = payload.get("output_index")
            if isinstance(index, int) and isinstance(payload.get("delta"), str):
                add_piece(self._args.setdefault(index, []), payload["delta"])

    def result(self) -> dict[str, Any] | None:
        """The final ``response`` object, or one rebuilt from what arrived so far."""
        if self._final is not None:
            return self._final
        # Deltas whose output item was never announced are kept too, in a bare item.
        indices = sorted(set(self._items) | set(self._args) | {k[0] for k in self._texts})
        if self._response is None and not indices:
            return {"error": self._error} if self._error is not None else None
        result = copy.deepcopy(self._response) if self._response is not None else {}
        result.setdefault("object", "response")
        output = []
        for index in indices:
            bare = {"type": "function_call" if index in self._args else "message"}
            item = copy.deepcopy(self._items.get(index, bare))
            if index in self._args:
                item["arguments"] = "".join(self._args[index])
            texts = sorted((k[1], v) for k, v in self._texts.items() if k[0] == index)
            if texts:
                parts = item.get("content")
                if not isinstance(parts, list):
                    parts = item["content"] = []
                for content_index, pieces in texts:
                    text = "".join(pieces)
                    if 0 <= content_index < len(parts) and isinstance(parts[content_index], dict):
                        parts[content_index]["text"] = text
                    else:  # a part not announced (or a nonsensical index): appended, bounded
                        parts.append({"type": "output_text", "text": text, "annotations": []})
            output.append(item)
        result["output"] = output
        if self._error is not None:
            result["error"] = {k: v for k, v in self._error.items() if k != "type"}
        return result
