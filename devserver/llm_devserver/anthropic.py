"""Anthropic Messages API (``POST /v1/messages``): messages, tool use, thinking, SSE streams."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from llm_devserver.common import (
    ApiError,
    Controls,
    JsonReply,
    Reply,
    StreamReply,
    as_int,
    content_text,
    count_tokens,
    default_answer,
    event_frame,
    plan_tool_args,
    rand_alnum,
    split_pieces,
    truncate_keep,
)

__all__ = [
    "ERROR_TYPES",
    "anthropic_error",
    "check_headers",
    "count_tokens_reply",
    "messages_reply",
]

MIN_THINKING_BUDGET = 1024
ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request (simulated by the dev server)."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    408: ("timeout_error", "Request timed out."),
    409: ("conflict_error", "Conflict: the request could not be completed."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
    ),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out."),
    529: ("overloaded_error", "Overloaded"),
}
STREAM_ERROR = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def anthropic_error(
    status: int, message: str | None = None, type_: str | None = None, request_id: str = ""
) -> dict[str, Any]:
    """An Anthropic error body ``{"type": "error", "error": {...}, "request_id": ...}``."""
    known_type, known_message = ERROR_TYPES.get(
        status, ("api_error" if status >= 500 else "invalid_request_error", f"Error ({status}).")
    )
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": type_ or known_type, "message": message or known_message},
    }
    if request_id:
        body["request_id"] = request_id
    return body


def check_headers(headers: dict[str, str]) -> None:
    """Reject a request without credentials (401) or ``anthropic-version`` (400)."""
    bearer = headers.get("authorization", "").lower().startswith("bearer ")
    if not headers.get("x-api-key") and not bearer:
        raise ApiError("x-api-key header is required", status=401, type_="authentication_error")
    if not headers.get("anthropic-version"):
        raise ApiError("anthropic-version: header is required")


def _block_text(block: Any) -> str:
    """The text a content block contributes to the prompt."""
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "tool_use":
        return f"{block.get('name', '')} {json.dumps(block.get('input', {}))}"
    if kind == "tool_result":
        return _result_text(block.get("content"))
    if kind == "thinking":
        return str(block.get("thinking", ""))
    return ""


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(_block_text(b) for b in content)
    return content_text(content)


def _blocks(content: Any) -> list[Any]:
    return (
        content if isinstance(content, list) else [{"type": "text", "text": content_text(content)}]
    )


@dataclass
class _Block:
    type: str  # text | tool_use | thinking
    text: str = ""
    id: str = ""
    name: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    signature: str = ""

    def final(self) -> dict[str, Any]:
        """The block as it appears in ``Message.content``."""
        if self.type == "thinking":
            return {"type": "thinking", "thinking": self.text, "signature": self.signature}
        if self.type == "tool_use":
            return {"type": "tool_use", "id": self.id, "name": self.name, "input": self.input}
        return {"type": "text", "text": self.text, "citations": None}

    def start(self) -> dict[str, Any]:
        """The block as announced by ``content_block_start``."""
        if self.type == "thinking":
            return {"type": "thinking", "thinking": "", "signature": ""}
        if self.type == "tool_use":
            return {"type": "tool_use", "id": self.id, "name": self.name, "input": {}}
        return {"type": "text", "text": "", "citations": None}

    def deltas(self) -> list[dict[str, Any]]:
        """The ``content_block_delta`` payloads that build the block."""
        if self.type == "thinking":
            out = [{"type": "thinking_delta", "thinking": p} for p in split_pieces(self.text)]
            return [*out, {"type": "signature_delta", "signature": self.signature}]
        if self.type == "tool_use":
            raw = json.dumps(self.input, ensure_ascii=False)
            pieces = [raw[i : i + 12] for i in range(0, len(raw), 12)]
            return [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]
        return [{"type": "text_delta", "text": p} for p in split_pieces(self.text)]


def _prompt_tokens(request: dict[str, Any]) -> int:
    system = request.get("system")
    total = 3 + count_tokens(_result_text(system) if system is not None else "")
    for message in request["messages"]:
        if isinstance(message, dict):
            total += 4 + count_tokens(
                " ".join(_block_text(b) for b in _blocks(message.get("content")))
            )
    if request.get("tools"):
        total += count_tokens(json.dumps(request["tools"]))
    return total


def _validate(request: dict[str, Any]) -> tuple[str, int]:
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError("model: Field required")
    max_tokens = request.get("max_tokens")
    if max_tokens is None:
        raise ApiError("max_tokens: Field required")
    if as_int(max_tokens) is None or max_tokens < 1:
        raise ApiError("max_tokens: Input should be greater than or equal to 1")
    messages = request.get("messages")
    if messages is None:
        raise ApiError("messages: Field required")
    if not isinstance(messages, list) or not messages:
        raise ApiError("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise ApiError(f"messages.{i}.role: Input should be 'user' or 'assistant'")
    tools = request.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise ApiError("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise ApiError(f"tools.{i}.custom.name: Field required")
    thinking = request.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = as_int(thinking.get("budget_tokens"))
        if budget is None:
            raise ApiError("thinking.enabled.budget_tokens: Field required")
        if budget < MIN_THINKING_BUDGET:
            raise ApiError(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to "
                f"{MIN_THINKING_BUDGET}"
            )
        if max_tokens <= budget:
            raise ApiError(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                "documentation at https://docs.claude.com/en/docs/build-with-claude/"
                "extended-thinking#max-tokens-and-context-window-size"
            )
    return model, max_tokens


def _signature(thinking: str) -> str:
    digest = hashlib.sha256(thinking.encode()).digest()
    return "EqQB" + base64.b64encode(digest * 3).decode("ascii")


@dataclass
class _Message:
    message_id: str
    model: str
    blocks: list[_Block]
    stop_reason: str
    stop_sequence: str | None
    usage: dict[str, Any]

    def body(self) -> dict[str, Any]:
        """The complete ``Message``."""
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [b.final() for b in self.blocks],
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "stop_details": self.stop_details(),
            "usage": self.usage,
        }

    def stop_details(self) -> dict[str, Any] | None:
        """``stop_details``: only set for refusals."""
        if self.stop_reason != "refusal":
            return None
        return {"type": "refusal", "category": None, "explanation": None}

    def stream(self) -> StreamReply:
        """The SSE events: message_start, blocks (ping after the first start), delta, stop."""
        frames: list[bytes] = []

        def emit(type_: str, **fields: Any) -> None:
            frames.append(event_frame(type_, {"type": type_, **fields}))

        start_usage = {
            k: v
            for k, v in self.usage.items()
            if k not in ("output_tokens", "output_tokens_details")
        }
        start_usage["output_tokens"] = 1
        message = {**self.body(), "content": [], "stop_reason": None, "stop_details": None}
        message["usage"] = start_usage
        emit("message_start", message=message)
        for index, block in enumerate(self.blocks):
            emit("content_block_start", index=index, content_block=block.start())
            if index == 0:
                emit("ping")
            for delta in block.deltas():
                emit("content_block_delta", index=index, delta=delta)
            emit("content_block_stop", index=index)
        if not self.blocks:
            emit("ping")
        delta = {
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "stop_details": self.stop_details(),
        }
        usage = {
            "input_tokens": self.usage["input_tokens"],
            "cache_creation_input_tokens": self.usage["cache_creation_input_tokens"],
            "cache_read_input_tokens": self.usage["cache_read_input_tokens"],
            "output_tokens": self.usage["output_tokens"],
            "output_tokens_details": self.usage["output_tokens_details"],
        }
        emit("message_delta", delta=delta, usage=usage)
        emit("message_stop")
        return StreamReply(frames, lambda _sent: event_frame("error", STREAM_ERROR))


def _tool_preamble(calls: list[tuple[str, dict[str, Any]]]) -> str:
    name = calls[0][0]
    if name == "get_weather":
        cities = [str(next(iter(args.values()), "")) for _, args in calls]
        return f"I'll check the weather in {' and '.join(cities)} for you."
    return f"I'll use the {name} tool to help with that."


def messages_reply(request: dict[str, Any], ctl: Controls) -> Reply:
    """Answer a Messages API request (streamed when ``stream`` is true)."""
    model, max_tokens = _validate(request)
    messages: list[dict[str, Any]] = request["messages"]
    last = messages[-1]
    last_blocks = _blocks(last.get("content"))
    results = [
        _result_text(b.get("content"))
        for b in last_blocks
        if isinstance(b, dict) and b.get("type") == "tool_result"
    ]
    answering_results = last.get("role") == "user" and bool(results)
    last_user = ""
    for message in reversed(messages):
        if message.get("role") == "user":
            texts = [
                _block_text(b)
                for b in _blocks(message.get("content"))
                if not isinstance(b, dict) or b.get("type") != "tool_result"
            ]
            last_user = " ".join(t for t in texts if t)
            if last_user:
                break

    tools = request.get("tools") or []
    funcs = [{"name": t["name"], "parameters": t.get("input_schema")} for t in tools]
    raw_choice = request.get("tool_choice")
    choice: dict[str, Any] = raw_choice if isinstance(raw_choice, dict) else {}
    forced = choice.get("name") if choice.get("type") == "tool" else None
    use_tools = bool(funcs) and choice.get("type") != "none" and not answering_results
    calls = plan_tool_args(funcs, forced, last_user) if use_tools else []
    if calls and choice.get("disable_parallel_tool_use") is True:
        calls = calls[:1]

    blocks: list[_Block] = []
    thinking = request.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        if answering_results:
            thought = "The tools returned their results. I should summarise them for the user."
        elif calls:
            thought = f"To answer this I need to call the {calls[0][0]} tool first."
        else:
            question = " ".join(last_user.split())[:200]
            thought = f'The user asks: "{question}". I should answer clearly and concisely.'
        blocks.append(_Block("thinking", text=thought, signature=_signature(thought)))
    thinking_tokens = sum(count_tokens(b.text) for b in blocks)

    stop_reason = "end_turn"
    stop_sequence: str | None = None
    if ctl.refusal is not None:
        blocks.append(_Block("text", text=ctl.refusal))
        stop_reason = "refusal"
    elif calls:
        blocks.append(_Block("text", text=_tool_preamble(calls)))
        for name, args in calls:
            blocks.append(_Block("tool_use", id="toolu_01" + rand_alnum(22), name=name, input=args))
        stop_reason = "tool_use"
    else:
        if ctl.reply is not None:
            text = ctl.reply
        elif answering_results:
            text = "Based on the tools: " + "; ".join(results)
        else:
            text = default_answer(last_user)
        sequences = request.get("stop_sequences")
        for sequence in sequences if isinstance(sequences, list) else []:
            if isinstance(sequence, str) and sequence and sequence in text:
                text = text[: text.index(sequence)]
                stop_reason, stop_sequence = "stop_sequence", sequence
                break
        text, cut = truncate_keep(text, max(0, max_tokens - thinking_tokens))
        if cut:
            stop_reason, stop_sequence = "max_tokens", None
        blocks.append(_Block("text", text=text))
    output_tokens = sum(
        count_tokens(b.text)
        if b.type != "tool_use"
        else count_tokens(f"{b.name} {json.dumps(b.input)}") + 3
        for b in blocks
    )

    created = max(0, ctl.cache_creation_tokens or 0)
    usage = {
        "input_tokens": _prompt_tokens(request),
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": max(0, ctl.cached_tokens or 0),
        "cache_creation": {"ephemeral_5m_input_tokens": created, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"thinking_tokens": thinking_tokens},
        "service_tier": "standard",
    }
    message = _Message(
        message_id="msg_01" + rand_alnum(22),
        model=model,
        blocks=blocks,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        usage=usage,
    )
    if request.get("stream") is True:
        return message.stream()
    return JsonReply(message.body())


def count_tokens_reply(request: dict[str, Any], ctl: Controls) -> Reply:
    """Answer ``POST /v1/messages/count_tokens``."""
    del ctl
    messages = request.get("messages")
    if not isinstance(request.get("model"), str):
        raise ApiError("model: Field required")
    if not isinstance(messages, list) or not messages:
        raise ApiError("messages: at least one message is required")
    return JsonReply({"input_tokens": _prompt_tokens(request)})
