"""OpenAI Responses API (``POST .../responses``), streamed or not.

A stream of typed events is reassembled into the final ``response`` object: taken whole from
``response.completed`` (or ``response.failed`` / ``response.incomplete``) when one arrives,
otherwise rebuilt from ``response.created`` and the output items, parts and deltas seen so far
(merged by the rule of :mod:`tracer.apis.merge`).
"""

from __future__ import annotations

import copy
from typing import Any

from tracer.apis.base import (
    ApiSpec,
    ResponseSummary,
    StreamBase,
    count_at,
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
    PROMPT_CACHE_RETENTION,
    REASONING_EFFORT,
    SERVICE_TIER,
    TEXT,
    VERBOSITY,
    Shape,
    either,
    one_of,
)
from tracer.apis.merge import Merged

__all__ = [
    "RESPONSES",
    "RESPONSES_REQUEST",
    "RESPONSES_RESPONSE",
    "Responses",
    "ResponsesStream",
    "responses_usage",
]

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


_TOOL = {"type": KIND, "name": TEXT}
#: The settings a Responses request sends and its response echoes back, as kept with content
#: capture off: never ``input``, ``instructions``, ``metadata``, ``user``,
#: ``safety_identifier``, ``prompt_cache_key``, a prompt's variables, schemas or tool
#: descriptions.
_SETTINGS: dict[str, Any] = {
    "model": TEXT,
    "temperature": NUMBER,
    "top_p": NUMBER,
    "max_output_tokens": NUMBER,
    "max_tool_calls": NUMBER,
    "top_logprobs": NUMBER,
    "parallel_tool_calls": FLAG,
    "store": FLAG,
    "background": FLAG,
    "service_tier": SERVICE_TIER,
    "truncation": one_of("auto", "disabled"),
    "prompt_cache_retention": PROMPT_CACHE_RETENTION,
    "reasoning": {
        "effort": REASONING_EFFORT,
        "summary": one_of("auto", "concise", "detailed"),
        "generate_summary": one_of("auto", "concise", "detailed"),
    },
    "text": {
        "format": {"type": one_of("text", "json_object", "json_schema")},
        "verbosity": VERBOSITY,
    },
    "tools": [_TOOL],
    "tool_choice": either(
        one_of("none", "auto", "required"),
        {"type": KIND, "name": TEXT, "mode": one_of("auto", "required")},
    ),
    "previous_response_id": TEXT,
    "conversation": either(TEXT, {"id": TEXT}),
    "prompt": {"id": TEXT, "version": TEXT},
}
RESPONSES_REQUEST: Shape = {
    **_SETTINGS,
    "stream": FLAG,
    "stream_options": {"include_obfuscation": FLAG},
    "include": [
        one_of(
            "file_search_call.results",
            "web_search_call.results",
            "web_search_call.action.sources",
            "message.input_image.image_url",
            "computer_call_output.output.image_url",
            "code_interpreter_call.outputs",
            "reasoning.encrypted_content",
            "message.output_text.logprobs",
        )
    ],
}
RESPONSES_RESPONSE: Shape = {
    **_SETTINGS,
    "id": TEXT,
    "object": TEXT,
    "created_at": NUMBER,
    "completed_at": NUMBER,
    "status": TEXT,
    "usage": COUNTS,
    "error": ERROR,
    "incomplete_details": {"reason": TEXT},
    "output": [
        {
            "type": TEXT,
            "id": TEXT,
            "status": TEXT,
            "role": TEXT,
            "call_id": TEXT,
            "name": TEXT,
            "content": [{"type": TEXT}],
        }
    ],
}


def _function_tool(tool: Any) -> Any:
    """A Responses tool in the chat-completions form MLflow's tool schema and UI read.

    A built-in tool (web search, file search, computer use, code interpreter, MCP, ...) is
    named by its type, as MLflow's own autolog writes it (the request keeps it as sent); a
    custom or namespace tool by its name, with its description."""
    if not isinstance(tool, dict):
        return tool
    kind = tool.get("type")
    if kind == "function" and "function" not in tool:
        definition = {k: v for k, v in tool.items() if k in ("name", "description", "parameters")}
        return {"type": "function", "function": definition}
    if not isinstance(kind, str) or kind == "function":
        return tool
    name = tool.get("name") if kind in ("custom", "namespace") else None
    definition = {"name": name if isinstance(name, str) and name else kind}
    description = tool.get("description")
    if isinstance(description, str) and description:
        definition["description"] = description
    return {"type": "function", "function": definition}


class Responses(ApiSpec):
    """OpenAI Responses API."""

    name = "responses"
    operation = "chat"
    span_type = "CHAT_MODEL"
    message_format = "openai"
    content_keys = ("input", "instructions")
    kept_request = RESPONSES_REQUEST
    kept_response = RESPONSES_RESPONSE

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
            reasoning_tokens=count_at(
                response, "usage", "output_tokens_details", "reasoning_tokens"
            ),
        )
        details = response.get("incomplete_details")
        if isinstance(details, dict) and details.get("reason"):
            summary.attributes["responses.incomplete_reason"] = details["reason"]
        return summary

    def new_stream(self) -> ResponsesStream:
        """A fresh accumulator for one streamed response."""
        return ResponsesStream()


RESPONSES = Responses()


#: Where each delta event's text goes in its output item (``{part}``: the event's
#: ``content_index`` or ``summary_index``). Any other ``response.<field>.delta`` event of an
#: output item is joined into the item's ``<field>``.
_DELTA_PATHS = {
    "response.output_text.delta": ("content", "text", "output_text"),
    "response.refusal.delta": ("content", "refusal", "refusal"),
    "response.reasoning_text.delta": ("content", "text", "reasoning_text"),
    "response.reasoning_summary_text.delta": ("summary", "text", "summary_text"),
    "response.function_call_arguments.delta": (None, "arguments", None),
    "response.custom_tool_call_input.delta": (None, "input", None),
    "response.mcp_call_arguments.delta": (None, "arguments", None),
    "response.code_interpreter_call_code.delta": (None, "code", None),
}


class ResponsesStream(StreamBase):
    """Accumulates Responses API stream events into the final ``response`` object.

    Until a terminal event brings the whole response, each output item is rebuilt from its
    ``response.output_item.added`` object, its parts (``response.content_part.added``,
    ``response.reasoning_summary_part.added``) and its delta events, merged by the rule of
    :mod:`tracer.apis.merge`; a ``response.output_item.done`` item replaces it whole.
    """

    __slots__ = ("_done", "_final", "_items", "_response")
    end_markers = (*(kind.encode() for kind in _TERMINAL), b"error")

    def __init__(self) -> None:
        super().__init__()
        self._response: dict[str, Any] | None = None  # from response.created / in_progress
        self._final: dict[str, Any] | None = None  # from a terminal event
        self._items: dict[int, Merged] = {}
        self._done: dict[int, dict[str, Any]] = {}

    def add(self, event: str, data: str) -> None:
        """Take one typed event of the stream."""
        payload = parse_event(data, self._problems)
        if payload is None:
            return
        kind = payload.get("type") or event
        if not isinstance(kind, str):
            return
        if kind in _TERMINAL:
            if isinstance(payload.get("response"), dict):
                self._final = payload["response"]
            self.completed = True
        elif kind in ("response.created", "response.in_progress", "response.queued"):
            if isinstance(payload.get("response"), dict):
                self._response = payload["response"]
        elif kind == "error":
            self._error = payload
        else:
            index = payload.get("output_index")
            if isinstance(index, int) and not isinstance(index, bool):
                self._add_item_event(kind, index, payload)

    def _add_item_event(self, kind: str, index: int, payload: dict[str, Any]) -> None:
        item = payload.get("item")
        if kind == "response.output_item.done" and isinstance(item, dict):
            self._done[index] = item
            self._items.pop(index, None)
            return
        if index in self._done:
            return
        if kind == "response.output_item.added" and isinstance(item, dict):
            self._items[index] = Merged(item)
            return
        part = payload.get("part")
        if kind == "response.content_part.added" and isinstance(part, dict):
            self._merge(index, "message", {"content": [{**part, "index": _part(payload)}]})
        elif kind == "response.reasoning_summary_part.added" and isinstance(part, dict):
            self._merge(index, "reasoning", {"summary": [{**part, "index": _part(payload)}]})
        elif kind.endswith(".delta") and isinstance(payload.get("delta"), str):
            parts, field, part_type = _DELTA_PATHS.get(
                kind, (None, kind.removeprefix("response.").removesuffix(".delta"), None)
            )
            delta: dict[str, Any] = {field: payload["delta"]}
            if parts is not None:
                delta = {parts: [{"index": _part(payload), "type": part_type, **delta}]}
            bare = "function_call" if field == "arguments" and parts is None else "message"
            self._merge(index, bare, delta)

    def _merge(self, index: int, bare_type: str, delta: dict[str, Any]) -> None:
        item = self._items.get(index)
        if item is None:  # deltas whose item was never announced: kept in a bare item
            item = self._items[index] = Merged({"type": bare_type})
        item.add(delta)

    def result(self) -> dict[str, Any] | None:
        """The final ``response`` object, or one rebuilt from what arrived so far."""
        if self._final is not None:
            return self._final
        indices = sorted(set(self._items) | set(self._done))
        if self._response is None and not indices:
            return {"error": self._error} if self._error is not None else None
        result = copy.deepcopy(self._response) if self._response is not None else {}
        result.setdefault("object", "response")
        result["output"] = [
            self._done[i] if i in self._done else _complete(self._items[i].result())
            for i in indices
        ]
        if self._error is not None:
            result["error"] = {k: v for k, v in self._error.items() if k != "type"}
        return result


def _complete(item: dict[str, Any]) -> dict[str, Any]:
    """A rebuilt item in the final schema: an ``output_text`` part has ``annotations``."""
    for part in item.get("content") or ():
        if isinstance(part, dict) and part.get("type") == "output_text":
            part.setdefault("annotations", [])
    return item


def _part(payload: dict[str, Any]) -> int:
    """The part a delta event belongs to (``content_index`` or ``summary_index``; 0 if none)."""
    for key in ("content_index", "summary_index"):
        value = payload.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0
