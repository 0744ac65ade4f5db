"""OpenAI chat completions (``POST .../chat/completions``), streamed or not."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from llm_devserver import azure
from llm_devserver.common import (
    ApiError,
    Controls,
    JsonReply,
    Reply,
    StreamReply,
    as_int,
    cached_split,
    compact,
    content_text,
    count_tokens,
    data_frame,
    default_answer,
    logprob_entry,
    plan_tool_args,
    rand_alnum,
    required_model,
    split_pieces,
    truncate,
)

__all__ = ["STREAM_ERROR", "chat_reply", "openai_stream_error"]

STREAM_ERROR: dict[str, Any] = {
    "error": {
        "message": "The server had an error while processing your request.",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}


def openai_stream_error(_sent: int) -> bytes:
    """The in-stream error event of OpenAI's ``data:``-only streams."""
    return data_frame(STREAM_ERROR)


@dataclass
class _Choice:
    index: int
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)  # (id, name, args)
    finish_reason: str = "stop"
    completion_tokens: int = 0


def _function_tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        return []
    funcs: list[dict[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        func = tool.get("function")
        if isinstance(func, dict) and isinstance(func.get("name"), str):
            funcs.append(func)
    return funcs


def _plan_tool_calls(
    funcs: list[dict[str, Any]], tool_choice: Any, text: str
) -> list[tuple[str, str, str]]:
    forced: str | None = None
    if isinstance(tool_choice, dict):
        wanted = tool_choice.get("function", {})
        name = wanted.get("name") if isinstance(wanted, dict) else None
        if isinstance(name, str):
            forced = name
    return [
        (
            f"call_{rand_alnum(24)}",
            name,
            json.dumps(args, separators=(",", ":"), ensure_ascii=False),
        )
        for name, args in plan_tool_args(funcs, forced, text)
    ]


def _base_reply(messages: list[Any], last_user: str) -> str:
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if last.get("role") == "tool":
        contents: list[str] = []
        for message in reversed(messages):
            if not isinstance(message, dict) or message.get("role") != "tool":
                break
            contents.append(content_text(message.get("content")))
        return "Based on the tools: " + "; ".join(reversed(contents))
    return default_answer(last_user)


def _prompt_tokens(messages: list[Any], tools: Any) -> int:
    total = 3
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += 4 + count_tokens(content_text(message.get("content")))
        calls = message.get("tool_calls")
        if calls:
            total += count_tokens(json.dumps(calls))
    if tools:
        total += count_tokens(json.dumps(tools))
    return total


def _plan_choices(request: dict[str, Any], ctl: Controls, n: int) -> list[_Choice]:
    messages: list[Any] = request["messages"]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    last_user = ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            last_user = content_text(message.get("content"))
            break
    funcs = _function_tools(request.get("tools"))
    tool_choice = request.get("tool_choice")
    use_tools = bool(funcs) and tool_choice != "none" and last.get("role") != "tool"
    limit = request.get("max_completion_tokens")
    if not isinstance(limit, int):
        limit = request.get("max_tokens")
    limit = as_int(limit)

    choices: list[_Choice] = []
    for i in range(n):
        choice = _Choice(index=i)
        if ctl.refusal is not None:
            choice.refusal = ctl.refusal
            choice.completion_tokens = count_tokens(ctl.refusal)
        elif use_tools:
            choice.tool_calls = _plan_tool_calls(funcs, tool_choice, last_user)
            choice.finish_reason = "tool_calls"
            choice.completion_tokens = sum(
                count_tokens(f"{name} {args}") + 3 for _, name, args in choice.tool_calls
            )
        else:
            text = ctl.reply if ctl.reply is not None else _base_reply(messages, last_user)
            if i > 0:
                text = f"(choice {i}) {text}"
            text, truncated = truncate(text, limit)
            choice.content = text
            choice.finish_reason = "length" if truncated else "stop"
            choice.completion_tokens = count_tokens(text)
        choices.append(choice)
    return choices


def _usage(prompt: int, completion: int, cached: int, reasoning: int = 0) -> dict[str, Any]:
    completion += reasoning  # reasoning tokens are billed as completion tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


@dataclass
class _Chat:
    ctl: Controls
    completion_id: str
    created: int
    model: str
    fingerprint: str
    choices: list[_Choice]
    usage: dict[str, Any]
    logprobs: bool
    top: int
    azure: bool

    def format_content(self, text: str | None) -> Any:
        """``content`` as a string, or as a list of text parts when asked to."""
        if text is None or not self.ctl.list_content:
            return text
        return [{"type": "text", "text": text}]

    def completion(self) -> dict[str, Any]:
        """The whole ``chat.completion`` object."""
        out: list[dict[str, Any]] = []
        for choice in self.choices:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": self.format_content(choice.content),
                "refusal": choice.refusal,
                "annotations": [],
            }
            if choice.tool_calls:
                message["tool_calls"] = [
                    {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                    for cid, name, args in choice.tool_calls
                ]
            lp: dict[str, Any] | None = None
            if self.logprobs:
                content_tokens = split_pieces(choice.content or "")
                refusal_tokens = split_pieces(choice.refusal or "")
                top = self.top
                lp = {
                    "content": [logprob_entry(t, k, top) for k, t in enumerate(content_tokens)],
                    "refusal": [logprob_entry(t, k, top) for k, t in enumerate(refusal_tokens)]
                    if choice.refusal is not None
                    else None,
                }
            item: dict[str, Any] = {
                "index": choice.index,
                "message": message,
                "logprobs": lp,
                "finish_reason": choice.finish_reason,
            }
            if self.azure:
                item["content_filter_results"] = azure.completion_filter_results()
            out.append(item)
        payload: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": out,
            "usage": self.usage,
            "service_tier": "default",
        }
        if self.azure:
            payload["prompt_filter_results"] = azure.prompt_filter_results()
        return payload

    def choice_deltas(self, choice: _Choice) -> Iterator[dict[str, Any]]:
        """Yield the streamed ``choices[i]`` objects for one choice."""
        logprobs, top = self.logprobs, self.top

        def item(
            delta: dict[str, Any], lp: Any = None, finish: str | None = None
        ) -> dict[str, Any]:
            return {"index": choice.index, "delta": delta, "logprobs": lp, "finish_reason": finish}

        empty_lp: dict[str, Any] | None = {"content": [], "refusal": None} if logprobs else None
        if choice.tool_calls:
            for k, (cid, name, args) in enumerate(choice.tool_calls):
                call = {
                    "index": k,
                    "id": cid,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
                if k == 0:
                    delta = {"role": "assistant", "content": None, "tool_calls": [call]}
                    delta["refusal"] = None
                    yield item(delta, empty_lp)
                else:
                    yield item({"tool_calls": [call]}, empty_lp)
                for fragment in split_pieces(args):
                    delta = {"tool_calls": [{"index": k, "function": {"arguments": fragment}}]}
                    yield item(delta, empty_lp)
        elif choice.refusal is not None:
            yield item({"role": "assistant", "content": None, "refusal": ""}, empty_lp)
            for k, piece in enumerate(split_pieces(choice.refusal)):
                lp = {"content": None, "refusal": [logprob_entry(piece, k, top)]}
                yield item({"refusal": piece}, lp if logprobs else None)
        else:
            yield item({"role": "assistant", "content": "", "refusal": None}, empty_lp)
            for k, piece in enumerate(split_pieces(choice.content or "")):
                lp = {"content": [logprob_entry(piece, k, top)], "refusal": None}
                content = self.format_content(piece)
                yield item({"content": content}, lp if logprobs else None)
        yield item({}, None, choice.finish_reason)

    def stream(self, include_usage: bool) -> StreamReply:
        """The chunks, interleaved round-robin, then the usage chunk and ``[DONE]``."""

        def chunk(choice_items: list[dict[str, Any]]) -> dict[str, Any]:
            obj: dict[str, Any] = {
                "id": self.completion_id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "service_tier": "default",
                "system_fingerprint": self.fingerprint,
                "choices": choice_items,
            }
            if include_usage or self.azure:
                obj["usage"] = None
            return obj

        events: list[dict[str, Any]] = []
        if self.azure:  # Azure's first chunk: prompt annotations only, every other field empty
            first = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
            first["prompt_filter_results"] = azure.prompt_filter_results()
            events.append(first)
        # Interleave the choices round-robin, one choice per chunk (like OpenAI with n > 1).
        iterators = [self.choice_deltas(c) for c in self.choices]
        while iterators:
            for it in list(iterators):
                nxt = next(it, None)
                if nxt is None:
                    iterators.remove(it)
                    continue
                if self.azure:
                    delta = nxt["delta"]
                    edge = "role" in delta or nxt["finish_reason"] is not None
                    nxt["content_filter_results"] = (
                        {} if edge else azure.completion_filter_results()
                    )
                events.append(chunk([nxt]))
        if include_usage:
            final = chunk([])
            final["usage"] = self.usage
            events.append(final)
        frames = [f"data: {compact(e)}\n\n".encode() for e in events]
        return StreamReply(frames, openai_stream_error, trailer=b"data: [DONE]\n\n")


def chat_reply(
    request: dict[str, Any],
    ctl: Controls,
    *,
    fingerprint: str,
    model: str | None = None,
    azure_style: bool = False,
) -> Reply:
    """Answer a chat completions request; ``model`` overrides the body's (Azure, Databricks)."""
    model = required_model(request, model)
    messages = request.get("messages")
    if not isinstance(messages, list):
        raise ApiError("Missing required parameter: 'messages'.", param="messages")
    if not messages:
        raise ApiError("[] is too short - 'messages'", param="messages")
    n = request.get("n")
    n = 1 if n is None else n
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
        raise ApiError(f"Invalid 'n': {n!r}. Expected 1..128.", param="n")

    choices = _plan_choices(request, ctl, n)
    prompt, cached = cached_split(_prompt_tokens(messages, request.get("tools")), ctl)
    completion = sum(c.completion_tokens for c in choices)
    usage = _usage(prompt, completion, cached, ctl.reasoning_tokens)
    top = as_int(request.get("top_logprobs"))
    chat = _Chat(
        ctl=ctl,
        completion_id="chatcmpl-" + rand_alnum(29),
        created=int(time.time()),
        model=model,
        fingerprint=fingerprint,
        choices=choices,
        usage=usage,
        logprobs=request.get("logprobs") is True,
        top=top if top is not None and top > 0 else 0,
        azure=azure_style,
    )
    if request.get("stream") is True:
        options = request.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return chat.stream(include_usage)
    return JsonReply(chat.completion())
