"""Anthropic Messages (``POST .../v1/messages``), streamed or not.

A stream (``message_start``, ``content_block_start``, ``content_block_delta`` with
``text_delta`` / ``input_json_delta`` / ``thinking_delta`` / ``signature_delta`` /
``citations_delta``, ``content_block_stop``, ``message_delta``, ``message_stop``, ``error``)
is reassembled into the final ``Message``; tool inputs are parsed from their JSON fragments.
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
    int_or_none,
    parse_event,
    str_or_none,
    token_usage,
)
from tracer.apis.keep import COUNTS, FLAG, KIND, MESSAGE, NUMBER, TEXT, Shape, one_of
from tracer.apis.merge import Merged

__all__ = ["MESSAGES", "Messages", "MessagesStream", "anthropic_usage"]


def anthropic_usage(usage: Any) -> dict[str, int] | None:
    """MLflow's token-usage dict from an Anthropic ``usage`` object.

    Anthropic's ``input_tokens`` exclude cached tokens; like MLflow's own Anthropic
    integration, the cache reads and writes are added back so input and total count them.
    """
    if not isinstance(usage, dict):
        return None
    cached = int_or_none(usage.get("cache_read_input_tokens"))
    created = int_or_none(usage.get("cache_creation_input_tokens"))
    extra = (cached or 0) + (created or 0)
    given, produced = int_or_none(usage.get("input_tokens")), usage.get("output_tokens")
    if given is None and extra:
        given = 0
    return token_usage(
        given + extra if given is not None else None, produced, None, cached, created
    )


class Messages(ApiSpec):
    """Anthropic Messages API."""

    name = "anthropic.messages"
    operation = "chat"
    span_type = "CHAT_MODEL"
    message_format = "anthropic"
    content_keys = ("messages", "system")
    #: Never ``messages``, ``system``, ``metadata``, stop sequences or tool schemas.
    kept_request: Shape = {
        "model": TEXT,
        "max_tokens": NUMBER,
        "temperature": NUMBER,
        "top_p": NUMBER,
        "top_k": NUMBER,
        "stream": FLAG,
        "service_tier": one_of("auto", "standard_only"),
        "thinking": {
            "type": one_of("enabled", "disabled", "adaptive", "between_tools"),
            "budget_tokens": NUMBER,
        },
        "tools": [{"type": KIND, "name": TEXT}],
        "tool_choice": {
            "type": one_of("auto", "any", "tool", "none"),
            "name": TEXT,
            "disable_parallel_tool_use": FLAG,
        },
    }
    #: Never the content blocks' text, thinking, signatures, tool inputs or citations.
    kept_response: Shape = {
        "id": TEXT,
        "type": TEXT,
        "role": TEXT,
        "model": TEXT,
        "stop_reason": TEXT,
        "usage": COUNTS,
        "error": {"type": TEXT, "message": MESSAGE},
        "content": [{"type": TEXT, "id": TEXT, "name": TEXT}],
    }

    def tools(self, request: dict[str, Any]) -> list[Any] | None:
        """Anthropic tools (``input_schema``) in the chat-completions form."""
        tools = super().tools(request)
        if not tools:
            return None
        return [
            {
                "type": "function",
                "function": {
                    k: v
                    for k, v in (
                        ("name", t.get("name")),
                        ("description", t.get("description")),
                        ("parameters", t.get("input_schema")),
                    )
                    if v is not None
                },
            }
            if isinstance(t, dict) and ("input_schema" in t or t.get("type") in (None, "custom"))
            else t
            for t in tools
        ]

    def summarize(self, response: Any) -> ResponseSummary:
        """Model, usage with cache tokens, stop reason, id and error of a ``Message``."""
        if not isinstance(response, dict):
            return ResponseSummary()
        stop = str_or_none(response.get("stop_reason"))
        return ResponseSummary(
            model=str_or_none(response.get("model")),
            usage=anthropic_usage(response.get("usage")),
            finish_reasons=[stop] if stop else [],
            response_id=str_or_none(response.get("id")),
            error=error_message(response)
            if response.get("type") == "error" or "error" in response
            else None,
        )

    def new_stream(self) -> MessagesStream:
        """A fresh accumulator for one streamed message."""
        return MessagesStream()


MESSAGES = Messages()

#: The field each delta type carries its piece in, and the block field it is merged into.
#: Any other ``<x>_delta`` is merged into its block as it is (without its ``type``), by the rule
#: of :mod:`tracer.apis.merge`.
_DELTA_FIELDS = {
    "text_delta": ("text", "text"),
    "thinking_delta": ("thinking", "thinking"),
    "signature_delta": ("signature", "signature"),
}


class MessagesStream(StreamBase):
    """Accumulates Anthropic stream events into the final ``Message``."""

    __slots__ = ("_blocks", "_citations", "_json", "_message")
    end_markers = (b"message_stop", b"error")

    def __init__(self) -> None:
        super().__init__()
        self._message: dict[str, Any] | None = None
        self._blocks: dict[int, Merged] = {}
        self._json: dict[int, list[str]] = {}  # a tool input's JSON fragments, by block
        self._citations: dict[int, list[Any]] = {}

    def add(self, event: str, data: str) -> None:
        """Take one stream event."""
        payload = parse_event(data, self._problems)
        if payload is None:
            return
        kind = payload.get("type") or event
        if kind == "message_start" and isinstance(payload.get("message"), dict):
            self._message = dict(payload["message"])
        elif kind == "content_block_start":
            index, block = payload.get("index"), payload.get("content_block")
            if isinstance(index, int) and isinstance(block, dict):
                self._blocks[index] = Merged(block)
        elif kind == "content_block_delta":
            self._add_delta(payload.get("index"), payload.get("delta"))
        elif kind == "message_delta":
            message = self._message if self._message is not None else {}
            self._message = message
            if isinstance(payload.get("delta"), dict):
                message.update(payload["delta"])
            if isinstance(payload.get("usage"), dict):
                known = message.get("usage")
                usage = dict(known) if isinstance(known, dict) else {}
                usage.update({k: v for k, v in payload["usage"].items() if v is not None})
                message["usage"] = usage
        elif kind == "message_stop":
            self.completed = True
        elif kind == "error":
            self._error = (
                payload.get("error") if isinstance(payload.get("error"), dict) else payload
            )

    def _add_delta(self, index: Any, delta: Any) -> None:
        if not isinstance(index, int) or not isinstance(delta, dict):
            return
        kind = str(delta.get("type"))
        if kind == "citations_delta":
            self._citations.setdefault(index, []).append(delta.get("citation"))
        elif kind == "input_json_delta":
            piece = delta.get("partial_json")
            if isinstance(piece, str):
                add_piece(self._json.setdefault(index, []), piece)
        else:
            block = self._blocks.get(index)
            if block is None:
                block = self._blocks[index] = Merged({"type": "text"})
            fields = _DELTA_FIELDS.get(kind)
            if fields is None:
                block.add({k: v for k, v in delta.items() if k != "type"})
            elif isinstance(delta.get(fields[0]), str):
                block.add({fields[1]: delta[fields[0]]})

    def _block(self, index: int) -> dict[str, Any]:
        merged = self._blocks.get(index)
        block: dict[str, Any] = merged.result() if merged is not None else {"type": "text"}
        if index in self._json:
            joined = "".join(self._json[index])
            try:
                block["input"] = json.loads(joined) if joined else {}
            except ValueError:
                self._problems.add(f"tool input of block {index} is not complete JSON")
                block["input"] = joined
        if index in self._citations:
            known = block.get("citations")
            block["citations"] = [
                *(known if isinstance(known, list) else []),
                *self._citations[index],
            ]
        return block

    def result(self) -> dict[str, Any] | None:
        """The ``Message`` rebuilt from the events seen so far."""
        if self._message is None and not self._blocks and not self._json:
            return {"type": "error", "error": self._error} if self._error is not None else None
        message = dict(self._message or {"type": "message", "role": "assistant"})
        indices = sorted(set(self._blocks) | set(self._json) | set(self._citations))
        message["content"] = [self._block(i) for i in indices]
        if self._error is not None:
            message["error"] = self._error
        return message
