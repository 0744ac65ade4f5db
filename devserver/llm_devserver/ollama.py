"""Ollama's native REST API, as the ``ollama`` SDK speaks it.

* ``POST /api/chat`` -- messages, tool calls (``arguments`` as an object), ``think``.
* ``POST /api/generate`` -- a prompt (and ``system``); the answer in ``response``.
* ``POST /api/embed`` -- ``input`` (a string or strings) to ``embeddings``;
  ``POST /api/embeddings`` is the legacy single-``prompt`` form.
* ``GET /api/tags``, ``POST /api/show``, ``GET /api/ps``, ``GET /api/version``.

Chat and generate stream unless the body says ``"stream": false``: newline-delimited JSON
(``application/x-ndjson``), one object per line, the last with ``"done": true``, the
``done_reason`` and the timing/token metrics. Errors are ``{"error": "..."}`` (also as a line
inside a broken stream).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from llm_devserver.common import (
    ApiError,
    Controls,
    JsonReply,
    Reply,
    StreamReply,
    as_int,
    compact,
    content_text,
    count_tokens,
    default_answer,
    fill_arguments,
    plan_tool_args,
    rand_alnum,
    split_pieces,
    truncate_keep,
)
from llm_devserver.embeddings import DEFAULT_DIMENSIONS, MAX_DIMENSIONS, embedding_vector

__all__ = [
    "NDJSON",
    "VERSION",
    "chat_reply",
    "embed_reply",
    "embeddings_reply",
    "generate_reply",
    "ollama_error",
    "ps_reply",
    "show_reply",
    "tags_reply",
    "version_reply",
]

NDJSON = "application/x-ndjson"
VERSION = "0.12.6"
PARSE_ERROR = "invalid character 'x' looking for beginning of value"
STREAM_ERROR = "an error was encountered while running the model: unexpected EOF"
_ERRORS: dict[int, str] = {
    400: "invalid request (simulated by the dev server)",
    401: "unauthorized",
    403: "forbidden",
    408: "request timed out",
    429: "too many requests, please try again later",
    500: "llama runner process has terminated: exit status 2",
    502: "bad gateway",
    503: "server busy, please try again.  maximum pending requests exceeded",
    504: "gateway timeout",
}
_LOAD_NS = 18_734_291
_LIBRARY: tuple[tuple[str, str, str, str, int], ...] = (
    ("llama3.2:latest", "llama", "3.2B", "Q4_K_M", 2019393189),
    ("qwen3:0.6b", "qwen3", "751.63M", "Q4_K_M", 522653767),
    ("gpt-oss:20b", "gptoss", "20.9B", "MXFP4", 13780173839),
    ("nomic-embed-text:latest", "nomic-bert", "137M", "F16", 274302450),
)
_MODIFIED_AT = "2025-09-18T14:02:11.482015713Z"


def ollama_error(status: int, message: str | None = None, *, model: str = "") -> dict[str, Any]:
    """Ollama's error body ``{"error": "..."}`` (404: the model was not found)."""
    if message is None:
        if status == 404:
            message = f"model '{model or 'unknown'}' not found"
        else:
            message = _ERRORS.get(status, f"request failed with status {status}")
    return {"error": message}


def _created_at() -> str:
    """Now in Go's RFC 3339 with nanoseconds (trailing zeros trimmed), UTC."""
    ns = time.time_ns()
    stamp = datetime.fromtimestamp(ns // 10**9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ns % 10**9:09d}".rstrip("0")
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


def _model(request: dict[str, Any]) -> str:
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError("model is required")
    return model


def _metrics(prompt: int, output: int) -> dict[str, int]:
    """The timing and token metrics of a finished answer (deterministic durations, in ns)."""
    prompt_ns = 4_000_000 + 180_000 * prompt
    eval_ns = 12_500_000 * max(1, output)
    return {
        "total_duration": _LOAD_NS + prompt_ns + eval_ns + 1_311_042,
        "load_duration": _LOAD_NS,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": prompt_ns,
        "eval_count": output,
        "eval_duration": eval_ns,
    }


def _thinks(request: dict[str, Any]) -> bool:
    think = request.get("think")
    return think is True or think in ("low", "medium", "high")


def _options(request: dict[str, Any]) -> dict[str, Any]:
    options = request.get("options")
    return options if isinstance(options, dict) else {}


def _format_text(fmt: Any, text: str) -> str:
    """The JSON answer for ``format: "json"`` or a JSON schema."""
    if isinstance(fmt, dict):
        args = fill_arguments(fmt, text)
        if args:
            return json.dumps(args, ensure_ascii=False)
    return json.dumps({"response": text}, ensure_ascii=False)


@dataclass
class _Answer:
    """What the model says: thinking, content, tool calls, and why it stopped."""

    thinking: str = ""
    content: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    done_reason: str = "stop"

    def eval_count(self) -> int:
        """Output tokens: thinking, content and tool calls."""
        tokens = count_tokens(self.thinking) + count_tokens(self.content)
        return tokens + sum(count_tokens(compact(c["function"])) + 3 for c in self.calls)


def _answer(
    request: dict[str, Any],
    ctl: Controls,
    last_user: str,
    *,
    results: list[str] | None = None,
    calls: list[tuple[str, dict[str, Any]]] | None = None,
) -> _Answer:
    answer = _Answer()
    if _thinks(request):
        if results:
            answer.thinking = "The tools returned their results. I should summarise them."
        elif calls:
            answer.thinking = f"To answer this I need to call the {calls[0][0]} tool first."
        else:
            question = " ".join(last_user.split())[:200]
            answer.thinking = f'The user asks: "{question}". I should answer clearly and concisely.'
    if calls:
        answer.calls = [
            {
                "id": "call_" + rand_alnum(8).lower(),
                "function": {"index": k, "name": name, "arguments": args},
            }
            for k, (name, args) in enumerate(calls)
        ]
        return answer
    if ctl.reply is not None:
        text = ctl.reply
    elif results:
        text = "Based on the tools: " + "; ".join(results)
    else:
        text = default_answer(last_user)
        fmt = request.get("format")
        if fmt == "json" or isinstance(fmt, dict):
            text = _format_text(fmt, text)
    options = _options(request)
    stops = options.get("stop")
    for stop in stops if isinstance(stops, list) else []:
        if isinstance(stop, str) and stop and stop in text:
            text = text[: text.index(stop)]
    limit = as_int(options.get("num_predict"))
    text, cut = truncate_keep(text, limit if limit is not None and limit >= 0 else None)
    if cut:
        answer.done_reason = "length"
    answer.content = text
    return answer


# --------------------------------------------------------------------------------------------
# /api/chat
# --------------------------------------------------------------------------------------------


def _function_tools(tools: Any) -> list[dict[str, Any]]:
    funcs: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else []:
        func = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(func, dict) and isinstance(func.get("name"), str):
            funcs.append({"name": func["name"], "parameters": func.get("parameters")})
    return funcs


def _chat_prompt_tokens(messages: list[dict[str, Any]], tools: Any) -> int:
    total = 3
    for message in messages:
        total += 4 + count_tokens(content_text(message.get("content")))
        calls = message.get("tool_calls")
        if calls:
            total += count_tokens(json.dumps(calls))
    if tools:
        total += count_tokens(json.dumps(tools))
    return total


def _message(answer: _Answer, content: str, *, thinking: str = "", calls: bool = False) -> Any:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if calls and answer.calls:
        message["tool_calls"] = answer.calls
    return message


def _ndjson(objects: list[dict[str, Any]]) -> StreamReply:
    frames = [(compact(o) + "\n").encode() for o in objects]
    error = (compact({"error": STREAM_ERROR}) + "\n").encode()
    return StreamReply(frames, lambda _sent: error, content_type=NDJSON)


def chat_reply(request: dict[str, Any], ctl: Controls) -> Reply:
    """Answer ``POST /api/chat`` (streamed as NDJSON unless ``"stream": false``)."""
    model = _model(request)
    raw = request.get("messages")
    if raw is not None and not isinstance(raw, list):
        raise ApiError("json: cannot unmarshal object into Go struct field .messages")
    messages = [m for m in raw or [] if isinstance(m, dict)]
    stream = request.get("stream") is not False
    if not messages:
        reason = "unload" if request.get("keep_alive") in (0, "0", "0s") else "load"
        body = {
            "model": model,
            "created_at": _created_at(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": reason,
        }
        return JsonReply(body)  # plain JSON even when streaming, like Ollama

    last_user = ""
    for message in reversed(messages):
        if message.get("role") == "user":
            last_user = content_text(message.get("content"))
            break
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, content_text(message.get("content")))
    funcs = _function_tools(request.get("tools"))
    calls = plan_tool_args(funcs, None, last_user) if funcs and not results else []
    answer = _answer(request, ctl, last_user, results=results, calls=calls)
    metrics = _metrics(_chat_prompt_tokens(messages, request.get("tools")), answer.eval_count())

    def chunk(message: dict[str, Any], done: bool = False) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "model": model,
            "created_at": _created_at(),
            "message": message,
            "done": done,
        }
        if done:
            obj["done_reason"] = answer.done_reason
            obj.update(metrics)
        return obj

    if not stream:
        message = _message(answer, answer.content, thinking=answer.thinking, calls=True)
        return JsonReply(chunk(message, done=True))
    objects = [chunk(_message(answer, "", thinking=p)) for p in split_pieces(answer.thinking)]
    if answer.calls:
        objects.append(chunk(_message(answer, "", calls=True)))
    objects.extend(chunk(_message(answer, p)) for p in split_pieces(answer.content))
    objects.append(chunk(_message(answer, ""), done=True))
    return _ndjson(objects)


# --------------------------------------------------------------------------------------------
# /api/generate
# --------------------------------------------------------------------------------------------


def _context(prompt: str, answer: str, count: int) -> list[int]:
    """Deterministic token ids standing for the conversation (``context``)."""
    ids: list[int] = []
    block = 0
    while len(ids) < count:
        digest = hashlib.sha256(f"{block}:{prompt}\x00{answer}".encode()).digest()
        ids.extend(int.from_bytes(digest[i : i + 4], "little") % 128000 for i in range(0, 32, 4))
        block += 1
    return ids[:count]


def generate_reply(request: dict[str, Any], ctl: Controls) -> Reply:
    """Answer ``POST /api/generate`` (streamed as NDJSON unless ``"stream": false``)."""
    model = _model(request)
    prompt = request.get("prompt")
    prompt = prompt if isinstance(prompt, str) else ""
    stream = request.get("stream") is not False
    if not prompt:
        reason = "unload" if request.get("keep_alive") in (0, "0", "0s") else "load"
        body = {
            "model": model,
            "created_at": _created_at(),
            "response": "",
            "done": True,
            "done_reason": reason,
        }
        return JsonReply(body)  # plain JSON even when streaming, like Ollama
    system = request.get("system")
    system = system if isinstance(system, str) else ""
    answer = _answer(request, ctl, prompt)
    prompt_tokens = 3 + count_tokens(prompt) + (4 + count_tokens(system) if system else 0)
    metrics = _metrics(prompt_tokens, answer.eval_count())

    def chunk(response: str, *, thinking: str = "", done: bool = False) -> dict[str, Any]:
        obj: dict[str, Any] = {"model": model, "created_at": _created_at(), "response": response}
        if thinking:
            obj["thinking"] = thinking
        obj["done"] = done
        if done:
            obj["done_reason"] = answer.done_reason
            if request.get("raw") is not True:
                count = prompt_tokens + metrics["eval_count"]
                obj["context"] = _context(f"{system}\n{prompt}", answer.content, count)
            obj.update(metrics)
        return obj

    if not stream:
        return JsonReply(chunk(answer.content, thinking=answer.thinking, done=True))
    objects = [chunk("", thinking=p) for p in split_pieces(answer.thinking)]
    objects.extend(chunk(p) for p in split_pieces(answer.content))
    objects.append(chunk("", done=True))
    return _ndjson(objects)


# --------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------


def embed_reply(request: dict[str, Any], ctl: Controls) -> Reply:
    """Answer ``POST /api/embed``: ``input`` (a string or strings) to unit vectors."""
    del ctl
    model = _model(request)
    value = request.get("input")
    if value is None or value == "":
        inputs: list[str] = []
    elif isinstance(value, str):
        inputs = [value]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        inputs = list(value)
    else:
        raise ApiError("invalid input type")
    if not inputs:
        return JsonReply({"model": model, "embeddings": []})
    dims = request.get("dimensions")
    if dims is None:
        dims = DEFAULT_DIMENSIONS
    elif as_int(dims) is None or not 1 <= dims <= MAX_DIMENSIONS:
        raise ApiError(f"dimensions must be between 1 and {MAX_DIMENSIONS}")
    tokens = sum(count_tokens(text) for text in inputs)
    metrics = _metrics(tokens, 0)
    return JsonReply(
        {
            "model": model,
            "embeddings": [embedding_vector(text, dims) for text in inputs],
            "total_duration": metrics["load_duration"] + metrics["prompt_eval_duration"],
            "load_duration": metrics["load_duration"],
            "prompt_eval_count": tokens,
        }
    )


def embeddings_reply(request: dict[str, Any], ctl: Controls) -> Reply:
    """Answer the legacy ``POST /api/embeddings``: one ``prompt`` to one ``embedding``."""
    del ctl
    _model(request)
    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return JsonReply({"embedding": []})
    return JsonReply({"embedding": embedding_vector(prompt, DEFAULT_DIMENSIONS)})


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def _details(family: str, size: str, quantization: str) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": size,
        "quantization_level": quantization,
    }


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def tags_reply() -> dict[str, Any]:
    """The body of ``GET /api/tags``: the locally available models."""
    return {
        "models": [
            {
                "name": name,
                "model": name,
                "modified_at": _MODIFIED_AT,
                "size": size,
                "digest": _digest(name),
                "details": _details(family, params, quant),
            }
            for name, family, params, quant, size in _LIBRARY
        ]
    }


def ps_reply() -> dict[str, Any]:
    """The body of ``GET /api/ps``: no model is loaded in memory."""
    return {"models": []}


def version_reply() -> dict[str, Any]:
    """The body of ``GET /api/version``."""
    return {"version": VERSION}


def show_reply(request: dict[str, Any], ctl: Controls) -> Reply:
    """Answer ``POST /api/show`` for any model name (details guessed from the name)."""
    del ctl
    model = request.get("model") or request.get("name")
    if not isinstance(model, str) or not model:
        raise ApiError("model is required")
    name = model if ":" in model else f"{model}:latest"
    known = next((m for m in _LIBRARY if m[0] == name), None)
    family, params, quant = (known[1], known[2], known[3]) if known else ("llama", "8.0B", "Q4_K_M")
    lower = name.lower()
    if "embed" in lower:
        capabilities = ["embedding"]
    else:
        capabilities = ["completion", "tools"]
        if any(tag in lower for tag in ("qwen3", "deepseek-r1", "gpt-oss", "magistral")):
            capabilities.append("thinking")
    return JsonReply(
        {
            "license": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT",
            "modelfile": f'# Modelfile generated by "ollama show"\nFROM {name}\n',
            "parameters": 'stop                           "<|eot_id|>"',
            "template": "{{ .Prompt }}",
            "details": _details(family, params, quant),
            "model_info": {
                "general.architecture": family,
                "general.parameter_count": 3212749888,
                f"{family}.context_length": 131072,
                f"{family}.embedding_length": 3072,
            },
            "capabilities": capabilities,
            "modified_at": _MODIFIED_AT,
        }
    )
