"""OpenAI Responses API (``POST .../responses``): response objects and typed SSE streams."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from llm_devserver.common import (
    ApiError,
    Controls,
    JsonReply,
    Reply,
    StreamReply,
    as_int,
    cached_split,
    content_text,
    count_tokens,
    default_answer,
    event_frame,
    keywords,
    plan_tool_args,
    rand_alnum,
    rand_hex,
    split_pieces,
    truncate_keep,
)

__all__ = ["responses_reply"]

MIN_OUTPUT_TOKENS = 16
REASONING_TOKENS = {"minimal": 16, "low": 64, "medium": 192, "high": 448, "xhigh": 768}
SUMMARY_MODES = ("auto", "concise", "detailed")
FAILED_MESSAGE = (
    "The server had an error processing your request. Sorry about that! You can retry your "
    "request, or contact us through our help center at help.openai.com if you keep seeing "
    "this error."
)
STREAM_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"


def _resp_id(prefix: str) -> str:
    return f"{prefix}_{rand_hex(50)}"


@dataclass
class _Item:
    """One output item: a reasoning item, an assistant message or a function call."""

    type: str
    id: str
    status: str = "completed"
    text: str | None = None
    refusal: str | None = None
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    summary: str | None = None
    encrypted: str | None = None

    def part(self) -> dict[str, Any]:
        """The message's (single) final content part."""
        if self.refusal is not None:
            return {"type": "refusal", "refusal": self.refusal}
        return {"type": "output_text", "annotations": [], "logprobs": [], "text": self.text or ""}

    def empty_part(self) -> dict[str, Any]:
        """The content part as announced by ``response.content_part.added``."""
        if self.refusal is not None:
            return {"type": "refusal", "refusal": ""}
        return {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}

    def final(self) -> dict[str, Any]:
        """The item as it appears in ``response.output``."""
        if self.type == "message":
            return {
                "id": self.id,
                "type": "message",
                "status": self.status,
                "content": [self.part()],
                "role": "assistant",
            }
        if self.type == "function_call":
            return {
                "id": self.id,
                "type": "function_call",
                "status": self.status,
                "arguments": self.arguments,
                "call_id": self.call_id,
                "name": self.name,
            }
        item: dict[str, Any] = {"id": self.id, "type": "reasoning", "summary": self.summaries()}
        if self.encrypted is not None:
            item["encrypted_content"] = self.encrypted
        return item

    def summaries(self) -> list[dict[str, Any]]:
        """A reasoning item's summary parts."""
        return [] if self.summary is None else [{"type": "summary_text", "text": self.summary}]

    def added(self) -> dict[str, Any]:
        """The item as announced by ``response.output_item.added``."""
        if self.type == "message":
            return {
                "id": self.id,
                "type": "message",
                "status": "in_progress",
                "content": [],
                "role": "assistant",
            }
        if self.type == "function_call":
            return {
                "id": self.id,
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": self.call_id,
                "name": self.name,
            }
        item: dict[str, Any] = {"id": self.id, "type": "reasoning", "summary": []}
        if self.encrypted is not None:
            item["encrypted_content"] = self.encrypted
        return item


@dataclass
class _Input:
    """What the server reads from ``input``."""

    last_user: str = ""
    tool_outputs: list[str] = field(default_factory=list)  # trailing function_call_output items
    ends_with_tool_output: bool = False
    tokens: int = 3


def _read_input(value: Any) -> _Input:
    if value is None:
        raise ApiError("Missing required parameter: 'input'.", param="input")
    if isinstance(value, str):
        return _Input(last_user=value, tokens=3 + 4 + count_tokens(value))
    if not isinstance(value, list):
        raise ApiError(
            "Invalid type for 'input': expected one of a string or array of input items.",
            param="input",
            code="invalid_type",
        )
    parsed = _Input()
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ApiError(
                f"Invalid type for 'input[{i}]': expected an object.",
                param=f"input[{i}]",
                code="invalid_type",
            )
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            text = content_text(item.get("content"))
            if item.get("role") == "user":
                parsed.last_user = text
        elif kind == "function_call_output":
            text = content_text(item.get("output"))
        elif kind == "function_call":
            text = f"{item.get('name', '')} {item.get('arguments', '')}"
        else:
            text = content_text(item.get("content") or item.get("summary"))
        parsed.tokens += 4 + count_tokens(text)
    trailing: list[str] = []
    for item in reversed(value):
        kind = item.get("type")
        if kind == "function_call_output":
            trailing.append(content_text(item.get("output")))
        elif kind != "function_call":
            break
    parsed.tool_outputs = list(reversed(trailing))
    last = value[-1] if value else {}
    parsed.ends_with_tool_output = last.get("type") == "function_call_output"
    return parsed


def _function_tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ApiError("Invalid type for 'tools': expected an array.", param="tools")
    funcs: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise ApiError(f"Invalid type for 'tools[{i}]': expected an object.", param="tools")
        if tool.get("type") != "function":
            continue
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise ApiError(
                f"Missing required parameter: 'tools[{i}].name'.",
                param=f"tools[{i}].name",
                code="missing_required_parameter",
            )
        funcs.append({"name": tool["name"], "parameters": tool.get("parameters")})
    return funcs


def _echo_tools(tools: Any) -> list[Any]:
    out: list[Any] = []
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict) and tool.get("type") == "function":
            out.append(
                {
                    "type": "function",
                    "description": tool.get("description"),
                    "name": tool["name"],
                    "parameters": tool.get("parameters"),
                    "strict": tool.get("strict", True),
                }
            )
        else:
            out.append(tool)
    return out


def _summary_text(use_tools: bool, tool_name: str, parsed: _Input) -> str:
    if parsed.ends_with_tool_output:
        return (
            "**Summarising the tool results**\n\nThe tools returned their results; "
            "I'll summarise them for the user."
        )
    if use_tools:
        return f"**Planning a tool call**\n\nTo answer this I need to call `{tool_name}` first."
    topic = ", ".join(reversed(keywords(parsed.last_user)[:3])) or "the question"
    return f"**Answering the question**\n\nThe user asks about {topic}. I'll answer directly."


@dataclass
class _Plan:
    request: dict[str, Any]
    ctl: Controls
    model: str
    response_id: str
    created_at: int
    items: list[_Item]
    status: str  # completed | incomplete | failed
    usage: dict[str, Any]

    def response(self, status: str, output: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The full ``response`` object at ``status`` (``output`` defaults to the final one)."""
        req = self.request
        raw_reasoning = req.get("reasoning")
        reasoning: dict[str, Any] = raw_reasoning if isinstance(raw_reasoning, dict) else {}
        text_config: dict[str, Any] = {"format": {"type": "text"}, "verbosity": "medium"}
        if isinstance(req.get("text"), dict):
            text_config.update(req["text"])
        done = status != "in_progress"
        error = None
        incomplete = None
        if status == "failed":
            error = {"code": "server_error", "message": FAILED_MESSAGE}
        elif status == "incomplete":
            incomplete = {"reason": "max_output_tokens"}
        metadata = req.get("metadata")
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": req.get("background") is True,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": req.get("instructions"),
            "max_output_tokens": req.get("max_output_tokens"),
            "max_tool_calls": req.get("max_tool_calls"),
            "model": self.model,
            "output": ([i.final() for i in self.items] if output is None else output)
            if done
            else [],
            "parallel_tool_calls": req.get("parallel_tool_calls", True) is not False,
            "previous_response_id": req.get("previous_response_id"),
            "prompt_cache_key": req.get("prompt_cache_key"),
            "reasoning": {
                "effort": reasoning.get("effort"),
                "summary": reasoning.get("summary") or reasoning.get("generate_summary"),
            },
            "safety_identifier": req.get("safety_identifier"),
            "service_tier": "default",
            "store": req.get("store", True) is not False,
            "temperature": req.get("temperature", 1.0),
            "text": text_config,
            "tool_choice": req.get("tool_choice", "auto"),
            "tools": _echo_tools(req.get("tools")),
            "top_logprobs": req.get("top_logprobs") or 0,
            "top_p": req.get("top_p", 1.0),
            "truncation": req.get("truncation") or "disabled",
            "usage": self.usage if done and status != "failed" else None,
            "user": req.get("user"),
            "metadata": metadata if isinstance(metadata, dict) else {},
        }

    def stream(self) -> StreamReply:
        """The typed event stream, ending as ``x-devserver-responses-end`` asks."""
        frames: list[bytes] = []

        def emit(type_: str, **fields: Any) -> None:
            data = {"type": type_, **fields, "sequence_number": len(frames)}
            frames.append(event_frame(type_, data))

        emit("response.created", response=self.response("in_progress"))
        emit("response.in_progress", response=self.response("in_progress"))
        for index, item in enumerate(self.items):
            at = {"item_id": item.id, "output_index": index}
            emit("response.output_item.added", output_index=index, item=item.added())
            if item.type == "reasoning" and item.summary is not None:
                part = {"type": "summary_text", "text": ""}
                emit("response.reasoning_summary_part.added", **at, summary_index=0, part=part)
                for piece in split_pieces(item.summary):
                    emit(
                        "response.reasoning_summary_text.delta", **at, summary_index=0, delta=piece
                    )
                emit(
                    "response.reasoning_summary_text.done", **at, summary_index=0, text=item.summary
                )
                part = {"type": "summary_text", "text": item.summary}
                emit("response.reasoning_summary_part.done", **at, summary_index=0, part=part)
            elif item.type == "message":
                emit("response.content_part.added", **at, content_index=0, part=item.empty_part())
                if item.refusal is not None:
                    for piece in split_pieces(item.refusal):
                        emit("response.refusal.delta", **at, content_index=0, delta=piece)
                    emit("response.refusal.done", **at, content_index=0, refusal=item.refusal)
                else:
                    text = item.text or ""
                    for piece in split_pieces(text):
                        emit(
                            "response.output_text.delta",
                            **at,
                            content_index=0,
                            delta=piece,
                            logprobs=[],
                        )
                    emit("response.output_text.done", **at, content_index=0, text=text, logprobs=[])
                emit("response.content_part.done", **at, content_index=0, part=item.part())
            elif item.type == "function_call":
                for piece in split_pieces(item.arguments):
                    emit("response.function_call_arguments.delta", **at, delta=piece)
                emit("response.function_call_arguments.done", **at, arguments=item.arguments)
            emit("response.output_item.done", output_index=index, item=item.final())
        if self.ctl.responses_end != "none":
            emit(f"response.{self.status}", response=self.response(self.status))

        def error_frame(sent: int) -> bytes:
            # The documented (flat) fields, plus the nested ``error`` the live API sends (which
            # is also what makes the openai SDK raise ``APIError``).
            error = {
                "type": "server_error",
                "code": "server_error",
                "message": STREAM_ERROR_MESSAGE,
                "param": None,
            }
            data = {
                "type": "error",
                "code": "server_error",
                "message": STREAM_ERROR_MESSAGE,
                "param": None,
                "sequence_number": sent,
                "error": error,
            }
            return event_frame("error", data)

        return StreamReply(frames, error_frame)


def responses_reply(request: dict[str, Any], ctl: Controls, *, model: str | None = None) -> Reply:
    """Answer a Responses API request; ``model`` overrides the body's (Azure deployments)."""
    if model is None:
        model = request.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(
                "Missing required parameter: 'model'.",
                param="model",
                code="missing_required_parameter",
            )
    parsed = _read_input(request.get("input"))
    funcs = _function_tools(request.get("tools"))
    limit = request.get("max_output_tokens")
    if limit is not None:
        if as_int(limit) is None:
            raise ApiError(
                "Invalid type for 'max_output_tokens': expected an integer.",
                param="max_output_tokens",
                code="invalid_type",
            )
        if limit < MIN_OUTPUT_TOKENS:
            raise ApiError(
                "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
                f"{MIN_OUTPUT_TOKENS}, but got {limit} instead.",
                param="max_output_tokens",
                code="integer_below_min_value",
            )
    instructions = request.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise ApiError("Invalid type for 'instructions': expected a string.", param="instructions")

    tool_choice = request.get("tool_choice", "auto")
    forced: str | None = None
    if isinstance(tool_choice, dict) and isinstance(tool_choice.get("name"), str):
        forced = tool_choice["name"]
    use_tools = bool(funcs) and tool_choice != "none" and not parsed.ends_with_tool_output

    reasoning = request.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    summary_mode = (
        (reasoning.get("summary") or reasoning.get("generate_summary"))
        if isinstance(reasoning, dict)
        else None
    )
    reasons = isinstance(reasoning, dict) and effort != "none" and bool(effort or summary_mode)
    reasoning_tokens = REASONING_TOKENS.get(str(effort), 192) if reasons else 0

    items: list[_Item] = []
    status = "completed"
    output_tokens = reasoning_tokens
    calls = plan_tool_args(funcs, forced, parsed.last_user) if use_tools else []
    if request.get("parallel_tool_calls") is False:
        calls = calls[:1]
    if reasons:
        summary = None
        if summary_mode in SUMMARY_MODES:
            tool_name = calls[0][0] if calls else ""
            summary = _summary_text(bool(calls), tool_name, parsed)
        include = request.get("include")
        encrypted = None
        if isinstance(include, list) and "reasoning.encrypted_content" in include:
            seed = hashlib.sha256(f"{effort}:{parsed.last_user}".encode()).digest()
            encrypted = "gAAAAA" + base64.urlsafe_b64encode(seed * 4).decode("ascii")
        items.append(_Item("reasoning", _resp_id("rs"), summary=summary, encrypted=encrypted))
    if ctl.refusal is not None:
        items.append(_Item("message", _resp_id("msg"), refusal=ctl.refusal))
        output_tokens += count_tokens(ctl.refusal)
    elif calls:
        for name, args in calls:
            arguments = json.dumps(args, separators=(",", ":"), ensure_ascii=False)
            call_id = "call_" + rand_alnum(24)
            items.append(
                _Item(
                    "function_call", _resp_id("fc"), call_id=call_id, name=name, arguments=arguments
                )
            )
            output_tokens += count_tokens(f"{name} {arguments}") + 3
    else:
        if ctl.reply is not None:
            text = ctl.reply
        elif parsed.ends_with_tool_output:
            text = "Based on the tools: " + "; ".join(parsed.tool_outputs)
        else:
            text = default_answer(parsed.last_user)
        budget = None if limit is None else limit - reasoning_tokens
        if budget is not None and budget <= 0:
            status = "incomplete"  # the reasoning used up the whole budget: no message at all
        else:
            text, cut = truncate_keep(text, budget)
            message = _Item("message", _resp_id("msg"), text=text)
            if cut:
                status = message.status = "incomplete"
            items.append(message)
            output_tokens += count_tokens(text)
    if ctl.responses_end == "incomplete":
        status = "incomplete"
        for item in items:
            if item.type == "message":
                item.status = "incomplete"
    elif ctl.responses_end == "failed":
        status = "failed"

    prompt = parsed.tokens + count_tokens(instructions or "")
    if request.get("tools"):
        prompt += count_tokens(json.dumps(request["tools"]))
    prompt, cached = cached_split(prompt, ctl)
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": prompt + output_tokens,
    }
    plan = _Plan(
        request=request,
        ctl=ctl,
        model=model,
        response_id=_resp_id("resp"),
        created_at=int(time.time()),
        items=items,
        status=status,
        usage=usage,
    )
    if request.get("stream") is True:
        return plan.stream()
    return JsonReply(plan.response(status))
